package dag_test

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/expresshub/station/dag"
)

func TestMetricsCountOutcomesPerFlowAndNode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := dag.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dag.NewMetrics(reg); err == nil {
		t.Fatal("registering twice on one registry succeeded")
	}
	if m, err := dag.NewMetrics(nil); m != nil || err != nil {
		t.Fatal("nil registerer should mean no metrics")
	}
	p := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)
	for range 3 {
		if _, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1000000001")}, dag.Options{Metrics: m}); err != nil {
			t.Fatal(err)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			key := f.GetName() + labels(metric)
			switch {
			case metric.Counter != nil:
				got[key] = metric.GetCounter().GetValue()
			case metric.Histogram != nil:
				got[key] = float64(metric.GetHistogram().GetSampleCount())
			}
		}
	}
	for key, want := range map[string]float64{
		"dag_node_outcomes_total{flow=sort-sg,node=get_route,outcome=ok,step=get_route}":              3,
		"dag_node_outcomes_total{flow=sort-sg,node=check_billing,outcome=skipped,step=check_billing}": 3,
		"dag_node_duration_seconds{flow=sort-sg,node=get_route,step=get_route}":                       3,
		"dag_node_duration_seconds{flow=sort-sg,node=check_billing,step=check_billing}":               0,
		"dag_runs_total{flow=sort-sg,mode=parallel,outcome=ok}":                                       3,
		"dag_run_duration_seconds{flow=sort-sg,mode=parallel}":                                        3,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v", key, got[key], want)
		}
	}
}

func labels(m *dto.Metric) string {
	s := "{"
	for i, l := range m.GetLabel() {
		if i > 0 {
			s += ","
		}
		s += l.GetName() + "=" + l.GetValue()
	}
	return s + "}"
}
