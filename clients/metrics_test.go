package clients_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/expresshub/station/clients"
)

func TestMetricsPerMethodAndCodeOnTheGivenRegistry(t *testing.T) {
	s := startSim(t)
	reg := prometheus.NewRegistry()
	withReg := func(o *clients.Options) { o.Registerer = reg }
	a := dial(t, s, nil, withReg)
	b := dial(t, s, nil, withReg) // a second set on one registry must not fail
	ctx := ctxTimeout(t, 10*time.Second)
	if _, err := a.Basic.GetSite(ctx, "SG-H01"); err != nil {
		t.Fatal(err)
	}
	_, _ = b.Basic.GetSite(ctx, "SG-H99")

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]uint64{}
	families := map[string]bool{}
	for _, mf := range mfs {
		families[mf.GetName()] = true
		if mf.GetName() != "station_downstream_request_duration_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			seen[l["service"]+"."+l["method"]+"."+l["code"]] += m.GetHistogram().GetSampleCount()
		}
	}
	if seen["basic.GetSite.OK"] != 1 || seen["basic.GetSite.NotFound"] != 1 {
		t.Fatalf("histogram samples %v", seen)
	}
	for _, f := range []string{"station_downstream_breaker_state", "station_singleflight_calls_total"} {
		if !families[f] {
			t.Errorf("metric %s missing", f)
		}
	}
}
