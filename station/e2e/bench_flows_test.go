package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
)

// BenchmarkFlowPropagation: how long a published flow version takes to be
// used by two other instances. Three flow sets over one database and one
// Redis (three instances' shape); one publishes, each of the other two
// records when its newest "full" is the new version (Redis signal, then a
// reload from PostgreSQL compiling the one new version; the resync is an
// hour, so only the signal delivers in time). Measured from the start of
// Publish (the ops request, compile included) to the apply. Goal: within a
// second.
func BenchmarkFlowPropagation(b *testing.B) {
	st := benchStation(b, sim.ProfileZero, nil)
	rdb, _ := dbtest.Redis(b)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.Cleanup(func() { cancel(); wg.Wait() })

	var mu sync.Mutex
	applied := map[[2]int]time.Time{} // {instance, flow version} -> when first seen
	var sets []*sorting.FlowSet
	for i := range 3 {
		var fs *sorting.FlowSet
		onApply := func() {
			if fs == nil {
				return // the reload inside NewFlowSet
			}
			f, err := fs.Latest("full")
			if err != nil {
				return
			}
			mu.Lock()
			if _, ok := applied[[2]int{i, f.Version}]; !ok {
				applied[[2]int{i, f.Version}] = time.Now()
			}
			mu.Unlock()
		}
		var err error
		fs, err = sorting.NewFlowSet(ctx, st.App.DB(), sorting.Downstream{}, sorting.NewChuteStore(st.App.DB(), time.Second),
			sorting.WithSignals(rdb, st.Config.Redis.Prefix+"bench:", zap.NewNop()), sorting.WithOnApply(onApply))
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() { fs.Watch(ctx, time.Hour) })
		sets = append(sets, fs)
	}
	time.Sleep(200 * time.Millisecond) // let the subscriptions start
	base, err := sets[0].FlowVersion(ctx, "full", 0)
	if err != nil {
		b.Fatal(err)
	}

	changes := benchCount(60, 3)
	var samples benchSamples
	n := 0
	for b.Loop() {
		for range changes {
			n++
			src := strings.Replace(base.Config, "deadline: 800ms", fmt.Sprintf("deadline: %dms", 800+n), 1)
			start := time.Now()
			p, err := sets[0].Publish(ctx, "full", []byte(src), "bench", "")
			if err != nil {
				b.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				t1, ok1 := applied[[2]int{1, p.Version}]
				t2, ok2 := applied[[2]int{2, p.Version}]
				mu.Unlock()
				if ok1 && ok2 {
					samples.add(t1.Sub(start))
					samples.add(t2.Sub(start))
					break
				}
				if time.Now().After(deadline) {
					b.Fatalf("full v%d not applied everywhere within 5s", p.Version)
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // publications come one at a time
		}
	}
	b.ReportMetric(samples.pct(50), "p50-ms")
	b.ReportMetric(samples.pct(99), "p99-ms")
}
