package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
)

// BenchmarkRulePropagation: how long a release rule change takes to reach
// other instances. Three rule stores over one database and one Redis (the
// shape of three station instances, as in TestThreeInstancesApplyAChange);
// one of them makes a change, and each of the other two records when it has
// applied it (Redis pub/sub signal, then a reload from PostgreSQL; the
// periodic resync is an hour, so only the signal can deliver in time).
// Measured from the start of Put (the ops request) to the apply. Goal
// (DESIGN.md section 4): within a second.
func BenchmarkRulePropagation(b *testing.B) {
	st := benchStation(b, sim.ProfileZero, nil)
	rdb, _ := dbtest.Redis(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })

	var mu sync.Mutex
	applied := map[[2]int]time.Time{} // {instance, rule version} -> when
	var stores []*sorting.Releases
	for i := range 3 {
		r := sorting.NewReleases(st.App.DB(), rdb, st.Config.Redis.Prefix, st.App.Sorting().Flows(), sorting.GuardConfig{}, zap.NewNop())
		r.OnApply(func(_ string, version int) {
			mu.Lock()
			applied[[2]int{i, version}] = time.Now()
			mu.Unlock()
		})
		if err := r.Load(ctx); err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { r.Watch(ctx, time.Hour) })
		stores = append(stores, r)
	}
	time.Sleep(200 * time.Millisecond) // let the subscriptions start

	changes := benchCount(60, 3)
	version := 0
	var samples benchSamples
	for b.Loop() {
		for k := range changes {
			mode := sorting.ModeShadow
			if k%2 == 1 {
				mode = sorting.ModeOff
			}
			start := time.Now()
			r, err := stores[0].Put(ctx, sorting.RuleChange{Rule: sorting.Rule{SiteID: "SG-H01", StableFlow: "full", StableVersion: 1,
				CandidateFlow: "full_v2", CandidateVersion: 1, Mode: mode}, ExpectVersion: version, Actor: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			version = r.Version
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				t1, ok1 := applied[[2]int{1, version}]
				t2, ok2 := applied[[2]int{2, version}]
				mu.Unlock()
				if ok1 && ok2 {
					samples.add(t1.Sub(start))
					samples.add(t2.Sub(start))
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("version %d not applied everywhere within 5s", version)
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // changes come one at a time
		}
	}
	b.ReportMetric(samples.pct(50), "p50-ms")
	b.ReportMetric(samples.pct(99), "p99-ms")
}
