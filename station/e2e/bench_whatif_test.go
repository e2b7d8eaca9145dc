package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/whatif"
)

// BenchmarkWhatifReplay: parcels replayed per second for a window of
// 100,000 recorded parcels with the flow unchanged (the recorded answers
// serve; a candidate chute map moves one next hop), next to live sorts per
// second with persistence (Service.Sort from 8 workers, zero simulated
// latency) measured in the same run. The goal is a replay at least 10
// times as fast as live sorting: a day of a station replays in minutes.
//
// The recorded parcels are made with set-based SQL (a sort result and its
// work order each, with a weight), at SG-H02, in the last hour; the replay
// reads them back through the partitioned parents like any window.
func BenchmarkWhatifReplay(b *testing.B) {
	const workers = 8
	st := benchStation(b, sim.ProfileZero, nil)
	ctx := context.Background()
	recorded := benchCount(100_000, 2_000)
	const station = "SG-H02"
	flow, err := st.App.Sorting().Flows().ForStation(station)
	if err != nil {
		b.Fatal(err)
	}
	live, err := st.App.Sorting().Chutes().Get(ctx, station)
	if err != nil {
		b.Fatal(err)
	}
	hops := make([]string, 0, len(live.NextHops))
	for h := range live.NextHops {
		hops = append(hops, h)
	}
	base := time.Now().Add(-time.Hour).UTC()
	// One work order and one sort result per parcel, set-based: hops in
	// turn, one parcel in 50 an exception.
	if _, err := st.App.DB().Exec(ctx, `
		WITH p AS (
			SELECT i, gen_random_uuid() AS id, $2::timestamptz + i * interval '30 ms' AS at,
			       'SG' || lpad((5000000000 + i)::text, 10, '0') AS tn,
			       ($3::text[])[1 + i % array_length($3::text[], 1)] AS hop
			  FROM generate_series(1, $1::int) AS i),
		w AS (
			INSERT INTO work_orders (id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash, outcome, response, created_at)
			SELECT id, $4, 'sort', tn, 'operator', 'bench', 'whatif-' || i, '\x00', 'ok',
			       convert_to(json_build_object('weight_g', 200 + i % 1800)::text, 'UTF8'), at FROM p)
		INSERT INTO sort_results (id, work_order_id, station_id, tracking_no, next_hop, chute, exception_code, exception_reason,
		                          flow, flow_version, source, created_at, recorded_at)
		SELECT id, id, $4, tn, CASE WHEN i % 50 = 0 THEN NULL ELSE hop END, 1, CASE WHEN i % 50 = 0 THEN 'UNPAID' END,
		       CASE WHEN i % 50 = 0 THEN 'bench' END, $5, $6, 'manual', at, at FROM p`,
		recorded, base, hops, station, flow.Name, flow.Version); err != nil {
		b.Fatal(err)
	}
	cand := live.ChuteMap
	cand.NextHops = map[string][]int{}
	for h, cs := range live.NextHops {
		cand.NextHops[h] = cs
	}
	delete(cand.NextHops, hops[0]) // its parcels become NO_CHUTE
	replayer := whatif.New(st.App.DB(), st.App.Sorting(), nil, whatif.Config{MaxParcels: 200_000})

	var replayTime, sortTime time.Duration
	var replayed, sorted, iter int
	for b.Loop() {
		start := time.Now()
		rep, err := replayer.Replay(ctx, whatif.Input{Station: station, From: base, To: time.Now().Add(time.Minute)},
			whatif.Candidate{ChuteMap: &cand, Flow: &whatif.FlowRef{Name: flow.Name, Version: flow.Version}})
		replayTime += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Parcels != recorded || rep.Rerun != 0 || rep.DiffCount == 0 {
			b.Fatalf("replay: %d parcels, %d rerun, %d differences; want %d, 0, some", rep.Parcels, rep.Rerun, rep.DiffCount, recorded)
		}
		replayed += rep.Parcels

		parcels := benchParcels(b, st.Sim.Fixtures(), "SG-H01", iter*benchCount(1000, 16), benchCount(1000, 16))
		iter++
		start = time.Now()
		benchLoad(parcels, workers, func(i int, tn string) {
			if _, err := st.App.Sorting().Sort(ctx, benchScan("SG-H01", tn, 1_000_000*iter+i), sorting.SortOptions{}); err != nil {
				b.Error(err)
			}
		})
		sortTime += time.Since(start)
		sorted += len(parcels)
	}
	replayRate := float64(replayed) / replayTime.Seconds()
	sortRate := float64(sorted) / sortTime.Seconds()
	b.ReportMetric(replayRate, "replayed/s")
	b.ReportMetric(sortRate, "sorts/s")
	b.ReportMetric(replayRate/sortRate, "replay/live")
}
