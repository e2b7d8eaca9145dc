package e2e

import (
	"context"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
	"github.com/expresshub/station/workorder"
)

// The station benchmarks measure whole operations on a real station
// (stationtest: the app's wiring, PostgreSQL, Redis, the simulator over
// loopback gRPC). Each one does a fixed amount of work per b.Loop iteration
// (the sample counts below), so one iteration already outlasts the default
// -benchtime and `make bench` stays bounded; with -short (the CI smoke run,
// together with -benchtime=1x) the counts shrink to a handful.

// benchCount is full for `make bench` and short for the smoke run.
func benchCount(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

// benchSamples collects figures (latencies in milliseconds, or ratios) from
// concurrent workers.
type benchSamples struct {
	mu sync.Mutex
	v  []float64
}

// add records a latency in milliseconds.
func (s *benchSamples) add(d time.Duration) { s.addValue(ms(d)) }

func (s *benchSamples) addValue(v float64) {
	s.mu.Lock()
	s.v = append(s.v, v)
	s.mu.Unlock()
}

// pct is the nearest-rank percentile (p in 0..100); 0 without samples.
func (s *benchSamples) pct(p float64) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.v) == 0 {
		return 0
	}
	sorted := slices.Clone(s.v)
	slices.Sort(sorted)
	rank := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchStation starts a station whose simulator answers with the named
// latency profile.
func benchStation(b *testing.B, profile string, cfg func(*config.Config)) *stationtest.Station {
	b.Helper()
	return stationtest.Start(b, stationtest.Options{
		Sim: []simtest.Option{simtest.WithLatency(profile)},
		Config: func(c *config.Config) {
			// The relay has its own benchmarks (station/relay); here it
			// would only compete with the measured path for the two
			// cores. It runs once at start and then sleeps.
			c.Relay.Interval = time.Hour
			c.Log.Level = "warn"
			if cfg != nil {
				cfg(c)
			}
		},
	})
}

// benchParcels returns n distinct Normal parcels of the station's market
// whose route passes the station, skipping the first skip of them. One pass
// over the numbers (sim.ViaStation searches from the start on every call).
func benchParcels(tb testing.TB, fx *sim.Fixtures, station string, skip, n int) []string {
	tb.Helper()
	site, ok := fx.Site(station)
	if !ok {
		tb.Fatalf("unknown station %s", station)
	}
	out := make([]string, 0, n)
	for j := 0; len(out) < n && j < 50*(skip+n)+10_000; j++ {
		no := sim.TrackingNo(site.Market, sim.Normal, j)
		p, err := fx.Parcel(no)
		if err != nil || !fx.Via(p.Origin, p.Destination, station) {
			continue
		}
		if skip > 0 {
			skip--
			continue
		}
		out = append(out, no)
	}
	if len(out) < n {
		tb.Fatalf("only %d parcels via %s", len(out), station)
	}
	return out
}

// benchScan is one operator scan of a parcel with a fresh scan id.
func benchScan(station, tn string, seq int) sorting.Scan {
	return sorting.Scan{StationID: station, TrackingNo: tn, ScanID: "bench-" + strconv.Itoa(seq),
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op1"}}
}

// benchUseFlow makes a station sort with one flow version (a release rule,
// mode off), the way ops pin a site to a flow.
func benchUseFlow(b *testing.B, st *stationtest.Station, station, flow string) {
	b.Helper()
	f, err := st.App.Sorting().Flows().Latest(flow)
	if err != nil {
		b.Fatal(err)
	}
	cur, _ := st.App.Releases().Rule(station)
	_, err = st.App.Releases().Put(context.Background(), sorting.RuleChange{
		Rule:          sorting.Rule{SiteID: station, StableFlow: f.Name, StableVersion: f.Version, Mode: sorting.ModeOff},
		ExpectVersion: cur.Version, Actor: "bench"})
	if err != nil {
		b.Fatal(err)
	}
}

// benchLoad runs fn for every item from workers goroutines at once and
// waits for them.
func benchLoad[T any](items []T, workers int, fn func(i int, item T)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				fn(i, items[i])
			}
		})
	}
	for i := range items {
		next <- i
	}
	close(next)
	wg.Wait()
}

// vmRSS reads a process's resident set size in bytes from /proc ("self" for
// this one).
func vmRSS(pid string) (int64, error) {
	raw, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, os.ErrNotExist
}
