package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
	"github.com/expresshub/station/workorder"
)

// BenchmarkManualSort is the origin story: a manual sort (Service.Sort, what
// POST /api/v1/sort calls: flow, then sort result, work order and tracking
// event in one transaction) under the simulator's default latency profile,
// for the legacy flow (sequential, pinned at SG-H02 by a release rule), the
// full market (SG-H01), the lean market (VN-H01) and Brazil's flow (BR-H01).
//
// Reported: p50/p99 of the sort (the goals: legacy 700-800 ms, full
// < 100 ms, lean 20-30 ms); flow-p50, the flow's run alone (the trace's
// duration, without the database write that follows the graph); the p50 of
// the run's critical path (from the trace: the sum of the measured step
// durations along the longest chain, the least any engine could take);
// flow-p50/critical, the figure the goal bounds (<= 1.1 for DAG flows); and
// sort-p50/critical, the same with the recording included.
//
// The basic service's caches (sites, routes, service areas, lanes) are off
// here: the origin story compares the flows' shapes over the same
// downstream calls, and with them repeated sorts would skip those calls,
// which would make the legacy flow something it never was
// (BenchmarkSiteLookup in clients measures the site cache).
func BenchmarkManualSort(b *testing.B) {
	st := benchStation(b, sim.ProfileDefault, func(c *config.Config) { c.Downstream.Cache.Disabled = true })
	benchUseFlow(b, st, "SG-H02", sorting.LegacyFlow)
	var seq atomic.Int64
	for _, tc := range []struct {
		name, station string
		samples       int
		workers       int // legacy: two operators, so its slow samples fit the time budget
	}{
		{"legacy", "SG-H02", benchCount(24, 2), 2},
		{"full", "SG-H01", benchCount(120, 3), 1},
		{"lean", "VN-H01", benchCount(240, 3), 1},
		{"br", "BR-H01", benchCount(60, 2), 1},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			parcels := benchParcels(b, st.Sim.Fixtures(), tc.station, 0, tc.samples)
			// One sort first: the token, connections and the chute map
			// cache are set up once per station, not per sort.
			if _, err := st.App.Sorting().Sort(ctx, benchScan(tc.station, parcels[0], int(seq.Add(1))), sorting.SortOptions{}); err != nil {
				b.Fatal(err)
			}
			var wall, critical, run benchSamples
			var flow atomic.Value
			var exceptions atomic.Int64
			for b.Loop() {
				benchLoad(parcels, tc.workers, func(_ int, tn string) {
					start := time.Now()
					out, err := st.App.Sorting().Sort(ctx, benchScan(tc.station, tn, int(seq.Add(1))), sorting.SortOptions{Trace: true})
					d := time.Since(start)
					if err != nil {
						b.Error(err)
						return
					}
					wall.add(d)
					if out.Value.Exception != nil {
						// A step that overran its timeout on the
						// shared machine: counted, not fatal.
						exceptions.Add(1)
						b.Logf("%s: %+v", tn, out.Value.Exception)
						return
					}
					flow.Store(out.Value.Flow)
					critical.add(out.Value.Trace.CriticalPathDuration)
					run.add(out.Value.Trace.Duration)
				})
			}
			if want := map[string]string{"legacy": "legacy", "full": "full", "lean": "lean", "br": "br"}[tc.name]; flow.Load() != want {
				b.Fatalf("sorted with flow %v, want %s", flow.Load(), want)
			}
			p50, crit := wall.pct(50), critical.pct(50)
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(wall.pct(99), "p99-ms")
			b.ReportMetric(run.pct(50), "flow-p50-ms")
			b.ReportMetric(crit, "critical-p50-ms")
			b.ReportMetric(run.pct(50)/crit, "flow-p50/critical")
			b.ReportMetric(p50/crit, "sort-p50/critical")
			b.ReportMetric(float64(exceptions.Load()), "exceptions")
		})
	}
}

// BenchmarkSortThroughput: sorts per second with persistence and zero
// simulated latency, next to a bare pgx loop inserting the same rows (work
// order, tracking event, sort result with the same payloads and the belt's
// tombstone, one transaction each): the database's own limit on this machine. Both run
// from the same number of concurrent workers on the same database,
// alternating in two rounds so drift on the shared machine hits both.
func BenchmarkSortThroughput(b *testing.B) {
	const workers = 8
	st := benchStation(b, sim.ProfileZero, nil)
	ctx := context.Background()
	n := benchCount(600, 16)
	var seq atomic.Int64
	// A real sort gives the bare loop its payloads.
	first, err := st.App.Sorting().Sort(ctx, benchScan("SG-H01", sim.ViaStation("SG-H01", 0), int(seq.Add(1))), sorting.SortOptions{Trace: true})
	if err != nil {
		b.Fatal(err)
	}
	traceJSON, err := json.Marshal(first.Value.Trace)
	if err != nil {
		b.Fatal(err)
	}
	var sortTime, bareTime time.Duration
	var sorts, bares, iter int
	for b.Loop() {
		// Every parcel is new: a sort of a parcel sorted before would
		// wait on its lock or hit a cache.
		parcels := benchParcels(b, st.Sim.Fixtures(), "SG-H01", 1+iter*4*n, 4*n)
		iter++
		for round := range 2 {
			batch := parcels[round*2*n : round*2*n+n]
			start := time.Now()
			benchLoad(batch, workers, func(_ int, tn string) {
				if _, err := st.App.Sorting().Sort(ctx, benchScan("SG-H01", tn, int(seq.Add(1))), sorting.SortOptions{}); err != nil {
					b.Error(err)
				}
			})
			sortTime += time.Since(start)
			sorts += len(batch)

			batch = parcels[round*2*n+n : round*2*n+2*n]
			start = time.Now()
			benchLoad(batch, workers, func(_ int, tn string) {
				if err := bareInsert(ctx, st, tn, int(seq.Add(1)), first.Body, traceJSON); err != nil {
					b.Error(err)
				}
			})
			bareTime += time.Since(start)
			bares += len(batch)
		}
	}
	sortRate := float64(sorts) / sortTime.Seconds()
	bareRate := float64(bares) / bareTime.Seconds()
	b.ReportMetric(sortRate, "sorts/s")
	b.ReportMetric(bareRate, "bare-inserts/s")
	b.ReportMetric(sortRate/bareRate, "sorts/bare")
}

// bareInsert writes what one sort writes, and nothing else: the database's
// cost of a sort.
func bareInsert(ctx context.Context, st *stationtest.Station, tn string, seq int, body, trace []byte) error {
	id, at := workorder.NewID(), time.Now().UTC()
	payload := fmt.Sprintf(`{"chute": 3, "flow": "full", "flow_version": 1, "next_hop": "SG-L01", "tracking_no": %q}`, tn)
	return pgx.BeginFunc(ctx, st.App.DB(), func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO scan_keys (station_id, scan_id, work_order_id) VALUES ('SG-H01', $1, $2)`,
			fmt.Sprintf("bare-%d", seq), id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO work_orders
			(id, station_id, type, tracking_no, subject_id, actor_kind, actor_id, scan_id, request_hash, outcome, response)
			VALUES ($1, 'SG-H01', 'sort', $2, NULL, 'operator', 'op1', $3, $4, 'ok', $5)`,
			id, tn, fmt.Sprintf("bare-%d", seq), workorder.RequestHash("sort", tn), body); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO tracking_outbox (event_id, work_order_id, tracking_no, station_id, type, actor_id, occurred_at, payload)
			VALUES ($1, $2, $3, 'SG-H01', 'sorted', 'op1', $4, $5)`, workorder.NewID(), id, tn, at, payload); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sort_results (id, work_order_id, station_id, tracking_no, next_hop, chute, exception_code, exception_reason,
			flow, flow_version, degraded, trace, source, created_at)
			VALUES ($1, $1, 'SG-H01', $2, 'SG-L01', 3, NULL, NULL, 'full', 1, '[]', $3, 'manual', $4)`, id, tn, trace, at); err != nil {
			return err
		}
		// The parcel's state and its history.
		if _, err := tx.Exec(ctx, `INSERT INTO parcel_states (station_id, tracking_no, visit, state, next_hop, chute, work_order_id,
			visit_started_at, visit_work_order_id, updated_at) VALUES ('SG-H01', $1, 1, 'sorted', 'SG-L01', 3, $2, $3, $2, $3)
			ON CONFLICT (station_id, tracking_no) DO UPDATE SET state = 'sorted', work_order_id = $2, updated_at = $3`, tn, id, at); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO parcel_state_history (station_id, tracking_no, visit, op, state, next_hop, chute, work_order_id, at)
			VALUES ('SG-H01', $1, 1, 'sort', 'sorted', 'SG-L01', 3, $2, $3)`, tn, id, at); err != nil {
			return err
		}
		// The belt's tombstone of a parcel never pre-sorted.
		_, err := tx.Exec(ctx, `INSERT INTO presort_results (station_id, tracking_no, flow, flow_version, source, sorted_at, expires_at, invalidated_at, redis_pending)
			VALUES ('SG-H01', $1, '', 0, 'presort', '-infinity', $2, $3, false)`, tn, at.Add(time.Hour), at)
		return err
	})
}

// BenchmarkShadowOverhead: the served sort's p50/p99 with shadow on
// (candidate full_v2 beside every served sort of SG-H01, plus the noise
// check on one in 20) versus off, at the same open-loop load (a fixed
// arrival rate). Rounds alternate off/shadow so drift hits both. Goal:
// shadow/off <= 1.05 for p50 and p99.
//
// profile=default is the production-like case (downstream latency
// dominates); profile=zero takes the latency away, so what remains is the
// CPU the candidate's run competes for on this 2-core machine, at a rate
// well below the machine's sort capacity.
func BenchmarkShadowOverhead(b *testing.B) {
	for _, tc := range []struct {
		profile string
		rate    int // sorts per second
		perMode int // samples per mode
	}{
		{sim.ProfileDefault, 40, benchCount(400, 4)},
		// About a quarter of the sort capacity BenchmarkSortThroughput
		// measures here: near capacity any extra work queues, shadow or not.
		// 600 samples a mode, so that p99 is not the 3rd-worst sample.
		{sim.ProfileZero, 30, benchCount(600, 4)},
	} {
		b.Run("profile="+tc.profile, func(b *testing.B) {
			st := benchStation(b, tc.profile, nil)
			ctx := context.Background()
			const rounds = 8
			var seq atomic.Int64
			if _, err := st.App.Sorting().Sort(ctx, benchScan("SG-H01", sim.ViaStation("SG-H01", 0), int(seq.Add(1))), sorting.SortOptions{}); err != nil {
				b.Fatal(err)
			}
			full, err := st.App.Sorting().Flows().Latest("full")
			if err != nil {
				b.Fatal(err)
			}
			v2, err := st.App.Sorting().Flows().Latest("full_v2")
			if err != nil {
				b.Fatal(err)
			}
			version := 0
			setMode := func(mode string) {
				r, err := st.App.Releases().Put(ctx, sorting.RuleChange{Rule: sorting.Rule{SiteID: "SG-H01",
					StableFlow: full.Name, StableVersion: full.Version, CandidateFlow: v2.Name, CandidateVersion: v2.Version, Mode: mode},
					ExpectVersion: version, Actor: "bench"})
				if err != nil {
					b.Fatal(err)
				}
				version = r.Version
			}
			var off, on benchSamples
			per := max(tc.perMode/rounds, 1)
			iter := 0
			for b.Loop() {
				parcels := benchParcels(b, st.Sim.Fixtures(), "SG-H01", 1+iter*2*rounds*per, 2*rounds*per)
				iter++
				for r := range 2 * rounds {
					next := r * per
					mode, into := sorting.ModeOff, &off
					if r%2 == 1 {
						mode, into = sorting.ModeShadow, &on
					}
					setMode(mode)
					openLoop(b, st, parcels[next:next+per], tc.rate, &seq, into)
					// Let this round's shadow runs finish before the next
					// round is measured.
					time.Sleep(300 * time.Millisecond)
				}
			}
			b.ReportMetric(off.pct(50), "off-p50-ms")
			b.ReportMetric(off.pct(99), "off-p99-ms")
			b.ReportMetric(on.pct(50), "shadow-p50-ms")
			b.ReportMetric(on.pct(99), "shadow-p99-ms")
			b.ReportMetric(on.pct(50)/off.pct(50), "p50-shadow/off")
			b.ReportMetric(on.pct(99)/off.pct(99), "p99-shadow/off")
		})
	}
}

// openLoop starts one sort per parcel at a fixed rate, whether or not the
// ones before have finished (the way scans arrive), and records each sort's
// latency.
func openLoop(b *testing.B, st *stationtest.Station, parcels []string, rate int, seq *atomic.Int64, into *benchSamples) {
	ctx := context.Background()
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	var wg sync.WaitGroup
	for i, tn := range parcels {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Go(func() {
			t0 := time.Now()
			out, err := st.App.Sorting().Sort(ctx, benchScan("SG-H01", tn, int(seq.Add(1))), sorting.SortOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			if out.Value.Flow != "full" {
				b.Errorf("served by %s", out.Value.Flow)
			}
			into.add(time.Since(t0))
		})
	}
	wg.Wait()
}
