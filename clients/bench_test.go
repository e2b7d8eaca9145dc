package clients_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
)

// BenchmarkSiteLookup: 200 concurrent callers look up the sites a sort needs
// (the station itself and a handful of destinations) against the default
// latency profile (GetSite 64-72 ms): as configured by default (the site
// cache, its misses merged by singleflight), with singleflight alone, and
// direct (neither: every lookup is a downstream call, the baseline).
// Reported: downstream calls per 1,000 lookups, counted by the simulator,
// and lookups per second.
//
// The cached run uses a TTL of 250 ms, not the default 5 s, so that it
// crosses several expiries within the benchmark's second: its figure
// includes the refreshes, when every caller misses at once and singleflight
// merges them into one call per site.
func BenchmarkSiteLookup(b *testing.B) {
	for _, tc := range []struct {
		name         string
		cache, merge bool
	}{
		{"cached", true, true},
		{"singleflight", false, true},
		{"direct", false, false},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := simtest.Start(b, simtest.WithLatency(sim.ProfileDefault))
			set := dial(b, s, func(c *clients.Config) {
				c.DisableSiteSingleflight = !tc.merge
				c.Cache.Disabled = !tc.cache
				c.Cache.TTL = 250 * time.Millisecond
			})
			sites := []string{"SG-H01", "SG-L01", "SG-L02", "SG-L03", "SG-L04", "SG-L07", "SG-H02", "SG-T01"}
			const callers = 200
			s.Reset(false)
			var next atomic.Int64
			var failed atomic.Int64
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if _, err := set.Basic.GetSite(ctx, sites[i%int64(len(sites))]); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d lookups failed", failed.Load())
			}
			b.ReportMetric(float64(s.Calls("GetSite"))*1000/float64(b.N), "downstream_calls/1k_lookups")
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "lookups/s")
		})
	}
}

// BenchmarkMarketCalls replays the downstream calls of one sort under the
// default profile: a full market one call after another (the legacy flow),
// the same calls with the checks side by side (the DAG), and a lean market
// (waybill and route). Reported: ms per sort. This is the origin story the
// simulator's profile must reproduce: ~700-800 ms, < 100 ms, 20-30 ms.
func BenchmarkMarketCalls(b *testing.B) {
	s := simtest.Start(b, simtest.WithLatency(sim.ProfileDefault))
	// Every call reaches the simulator, as in the flows before caching.
	set := dial(b, s, func(c *clients.Config) { c.DisableSiteSingleflight, c.Cache.Disabled = true, true })
	ctx := context.Background()
	no := sim.TrackingNo("BR", sim.COD, 0)
	if _, err := set.OrderCenter.Token(ctx); err != nil {
		b.Fatal(err)
	}
	checks := func(w clients.Waybill) []func() error {
		return []func() error{
			func() error { _, err := set.Basic.GetSite(ctx, "BR-H01"); return err },
			func() error { _, err := set.Basic.GetSite(ctx, w.DestinationSite); return err },
			func() error { _, err := set.Basic.CheckServiceArea(ctx, w.DestinationSite, w.ServiceType); return err },
			func() error { _, err := set.Basic.GetLaneRestrictions(ctx, "BR-H01", w.DestinationSite); return err },
			func() error { _, err := set.Finance.CheckBilling(ctx, no); return err },
			func() error { _, err := set.Finance.CheckCODLimit(ctx, w.DestinationSite, w.CODAmount); return err },
			func() error { _, err := set.Delivery.GetDeliveryStatus(ctx, no); return err },
			func() error { _, err := set.Delivery.ValidateAddress(ctx, no); return err },
			func() error { _, err := set.OrderCenter.GetCustomerStatus(ctx, w.ShipperID); return err },
			func() error { _, err := set.OrderCenter.GetFiscalDocument(ctx, no); return err },
		}
	}
	route := func(w clients.Waybill) error {
		_, err := set.Basic.GetRoute(ctx, "BR-H01", w.DestinationSite, w.ServiceType)
		return err
	}
	run := func(b *testing.B, sort func() error) {
		start := time.Now()
		for b.Loop() {
			if err := sort(); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/sort")
	}
	b.Run("legacy_sequential", func(b *testing.B) {
		run(b, func() error {
			w, err := set.OrderCenter.GetWaybill(ctx, no)
			if err != nil {
				return err
			}
			for _, c := range checks(w) {
				if err := c(); err != nil {
					return err
				}
			}
			return route(w)
		})
	})
	b.Run("dag_parallel", func(b *testing.B) {
		run(b, func() error {
			w, err := set.OrderCenter.GetWaybill(ctx, no)
			if err != nil {
				return err
			}
			var g errgroup.Group
			for _, c := range checks(w) {
				g.Go(c)
			}
			g.Go(func() error { return route(w) })
			return g.Wait()
		})
	})
	b.Run("lean", func(b *testing.B) {
		run(b, func() error {
			w, err := set.OrderCenter.GetWaybill(ctx, no)
			if err != nil {
				return err
			}
			return route(w)
		})
	})
}
