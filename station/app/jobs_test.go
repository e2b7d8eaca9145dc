package app_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func scrape(t *testing.T, st *stationtest.Station) string {
	t.Helper()
	resp, err := http.Get(st.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Two instances run the scheduled offline reconciliation; exactly one runs
// it, once per period, and its comparisons land in the reconciliation
// tables.
func TestScheduledOfflineReconciliationRunsOnOneInstance(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// The first instance only seeds: stored sorts, then a shadow rule.
	seed := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) { c.Release.OfflineEvery = 0 }})
	op := seed.Login("op1")
	// Two ordinary parcels and two whose destination full_v2 routes
	// differently: each run finds two mismatches.
	rehomedSite, _, _ := sim.RehomedV2("SG")
	var ordinary, rehomed []string
	for i := 0; (len(ordinary) < 2 || len(rehomed) < 2) && i < 5000; i++ {
		tn := sim.ViaStation("SG-H01", i)
		p, err := seed.Sim.Fixtures().Parcel(tn)
		switch {
		case err != nil:
		case p.Destination == rehomedSite && len(rehomed) < 2:
			rehomed = append(rehomed, tn)
		case p.Destination != rehomedSite && len(ordinary) < 2:
			ordinary = append(ordinary, tn)
		}
	}
	if len(rehomed) < 2 || len(ordinary) < 2 {
		t.Fatalf("parcels: %v %v", ordinary, rehomed)
	}
	tns, wantMismatches := append(ordinary, rehomed...), len(rehomed)
	parcels := len(tns)
	for i, tn := range tns {
		seed.Do("POST", "/api/v1/sort", op, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprintf("s-%d", i)}, http.StatusOK, nil)
	}
	if _, err := seed.App.Releases().Put(ctx, sorting.RuleChange{Rule: sorting.Rule{SiteID: "SG-H01", StableFlow: "full", StableVersion: 1,
		CandidateFlow: "full_v2", CandidateVersion: 1, Mode: sorting.ModeShadow}, Actor: "ops1"}); err != nil {
		t.Fatal(err)
	}

	// A short period: the first run comes one period after the first
	// acquisition, then one per period.
	scheduled := func(c *config.Config) {
		c.Release.OfflineEvery = 2 * time.Second
		c.Lease.TTL = time.Second
	}
	a := stationtest.Start(t, stationtest.Options{Join: seed, Config: scheduled})
	b := stationtest.Start(t, stationtest.Options{Join: seed, Config: scheduled})

	const comparisons = `SELECT coalesce(sum(comparisons), 0)::int FROM reconciliation_counts WHERE site_id = 'SG-H01' AND source = 'offline'`
	waitFor(t, "two scheduled runs", func() bool { return seed.Count(comparisons) >= 2*parcels })
	if n := seed.Count(`SELECT fence::int FROM job_leases WHERE name = $1`, app.LeaseOfflineReconciliation); n != 1 {
		t.Fatalf("fence %d: the lease changed hands", n)
	}
	const held = `station_lease_held{name="offline_reconciliation"} 1`
	const ran = `station_lease_job_runs_total{name="offline_reconciliation",result="ok"}`
	const acquired = `station_lease_acquisitions_total{name="offline_reconciliation"}`
	ma, mb := scrape(t, a), scrape(t, b)
	for _, m := range []string{held, ran, acquired} {
		if strings.Contains(ma, m) == strings.Contains(mb, m) {
			t.Fatalf("want %s on exactly one instance;\nA:\n%s\nB:\n%s", m, grepLease(ma), grepLease(mb))
		}
	}
	// Whole runs only: each compared every stored parcel once.
	stopped := func(st *stationtest.Station) {
		if err := st.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	stopped(a)
	stopped(b)
	n := seed.Count(comparisons)
	if n%parcels != 0 {
		t.Fatalf("%d offline comparisons: not a multiple of the %d stored parcels", n, parcels)
	}
	runs := n / parcels
	mismatches := seed.Count(`SELECT coalesce(sum(mismatches), 0)::int FROM reconciliation_counts WHERE site_id = 'SG-H01' AND source = 'offline'`)
	// The re-homed parcels always differ; on a loaded machine a dry run
	// may also degrade (a downstream deadline) and differ elsewhere.
	if mismatches < runs*wantMismatches || mismatches > n {
		t.Fatalf("%d offline mismatches counted over %d runs, want at least %d a run", mismatches, runs, wantMismatches)
	}
	// A run cut short by the stop may have left mismatch rows uncounted.
	if rows := seed.Count(`SELECT count(*)::int FROM reconciliation_mismatches WHERE site_id = 'SG-H01' AND source = 'offline'`); rows < mismatches {
		t.Fatalf("%d mismatch rows for %d counted mismatches", rows, mismatches)
	}
}

func grepLease(metrics string) string {
	var out []string
	for _, l := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(l, "station_lease_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
