package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/whatif"
	"github.com/expresshub/station/station/stationtest"
)

// whatifDay is a station with a window of recorded receives and sorts
// (through the API), bag limits of 3 parcels, and a live chute map that
// gives every next hop enough chutes for its parcels.
type whatifDay struct {
	st       *stationtest.Station
	ops      string
	from, to time.Time
	live     sorting.ChuteMap
	hop      string       // the busiest next hop
	byHop    []sortAnswer // its parcels' answers, in the order they reach a chute
	parcels  []string     // every parcel sorted
	answers  map[string]sortAnswer
}

const whatifStation = "SG-H01"

func recordWhatifDay(t *testing.T) *whatifDay {
	t.Helper()
	st := stationtest.Start(t, stationtest.Options{})
	ctx := context.Background()
	op, sup := st.Login("op1"), st.Login("sup1")
	d := &whatifDay{st: st, ops: st.Login("ops1"), answers: map[string]sortAnswer{}}
	fx := st.Sim.Fixtures()
	// The parcels and their next hops by the network's routes, so the live
	// map can be set before they are sorted.
	hops := map[string][]string{}
	for i := range 40 {
		tn := stationtest.Parcel(fx, whatifStation, sim.Normal, i)
		d.parcels = append(d.parcels, tn)
		p, err := fx.Parcel(tn)
		if err != nil {
			t.Fatal(err)
		}
		hop, _ := fx.Route(whatifStation, p.Destination)
		hops[hop] = append(hops[hop], tn)
	}
	for h, tns := range hops {
		if len(tns) > len(hops[d.hop]) || len(tns) == len(hops[d.hop]) && h < d.hop {
			d.hop = h
		}
	}
	if len(hops[d.hop]) < 5 {
		t.Fatalf("the busiest next hop %s has %d parcels; the test needs 5", d.hop, len(hops[d.hop]))
	}
	st.Do("PUT", "/api/v1/stations/"+whatifStation+"/bag-limits", sup, map[string]int{"max_parcels": 3, "max_grams": 1_000_000}, http.StatusOK, nil)
	cur, err := st.App.Sorting().Chutes().Get(ctx, whatifStation)
	if err != nil {
		t.Fatal(err)
	}
	d.live = cur.ChuteMap
	d.live.NextHops = map[string][]int{}
	for h, cs := range cur.NextHops {
		d.live.NextHops[h] = slices.Clone(cs)
	}
	// Every next hop gets a chute for each bag of 3 its parcels fill.
	extra := 700
	for h, tns := range hops {
		for range (len(tns)+2)/3 - 1 {
			d.live.NextHops[h] = append(d.live.NextHops[h], extra)
			extra++
		}
	}
	if _, err := st.App.Sorting().Chutes().Put(ctx, whatifStation, d.live, cur.Version, "test"); err != nil {
		t.Fatal(err)
	}

	d.from = time.Now().Add(-time.Minute)
	for i, tn := range d.parcels {
		st.Do("POST", "/api/v1/receive", op, map[string]string{"tracking_no": tn, "scan_id": fmt.Sprintf("rcv-%d", i)}, http.StatusOK, nil)
	}
	for i, tn := range d.parcels {
		a := sortParcel(t, st, op, tn, fmt.Sprintf("sort-%d", i))
		if a.Exception != nil || a.NextHop == nil {
			t.Fatalf("%s: %+v", tn, a.Exception)
		}
		d.answers[tn] = a
		if *a.NextHop == d.hop {
			d.byHop = append(d.byHop, a)
		}
	}
	if len(d.byHop) != len(hops[d.hop]) {
		t.Fatalf("%d parcels sorted to %s, the routes said %d", len(d.byHop), d.hop, len(hops[d.hop]))
	}
	sort.SliceStable(d.byHop, func(i, j int) bool {
		a, b := d.byHop[i], d.byHop[j]
		return a.SortedAt.Before(b.SortedAt) || a.SortedAt.Equal(b.SortedAt) && a.TrackingNo < b.TrackingNo
	})
	d.to = time.Now().Add(time.Minute)
	return d
}

func (d *whatifDay) replay(t *testing.T, token string, body map[string]any, want int) whatif.Report {
	t.Helper()
	body["station"], body["from"], body["to"] = whatifStation, d.from, d.to
	var rep whatif.Report
	d.st.Do("POST", "/api/v1/ops/whatif", token, body, want, &rep)
	return rep
}

func chuteRow(t *testing.T, rep whatif.Report, chute int) whatif.ChuteRow {
	t.Helper()
	for _, c := range rep.Chutes {
		if c.Chute == chute {
			return c
		}
	}
	t.Fatalf("chute %d is not in the report", chute)
	return whatif.ChuteRow{}
}

func TestWhatifPredictsOverflowForATooSmallChuteAndListsTheParcelsThatMove(t *testing.T) {
	t.Parallel()
	d := recordWhatifDay(t)
	// The candidate gives the busiest next hop one chute where the live
	// map gives it enough for its parcels at 3 a bag.
	cand := d.live
	cand.NextHops = map[string][]int{}
	for h, cs := range d.live.NextHops {
		cand.NextHops[h] = cs
	}
	first := d.live.NextHops[d.hop][0]
	cand.NextHops[d.hop] = []int{first}
	rep := d.replay(t, d.ops, map[string]any{"chute_map": cand, "bag_swap": "1h"}, http.StatusOK)

	n := len(d.byHop)
	if rep.Parcels != len(d.parcels) || rep.Received != len(d.parcels) || rep.Recorded != len(d.parcels) || rep.Rerun != 0 {
		t.Fatalf("parcels %d received %d recorded %d rerun %d; want %d, %d, %d, 0",
			rep.Parcels, rep.Received, rep.Recorded, rep.Rerun, len(d.parcels), len(d.parcels), len(d.parcels))
	}
	row := chuteRow(t, rep, first)
	if row.Candidate.Overflow != n-3 || row.Candidate.PeakParcels != 3 || row.Candidate.FullAt == nil || row.Candidate.PeakRatio != 1 {
		t.Fatalf("chute %d candidate: %+v; want overflow %d, peak 3, full", first, row.Candidate, n-3)
	}
	if row.Actual.Parcels != 3 {
		t.Fatalf("chute %d actual: %+v; want 3 parcels", first, row.Actual)
	}
	over := chuteRow(t, rep, d.live.OverflowChute)
	if over.Candidate.Parcels != n-3 || over.Actual.Parcels != 0 {
		t.Fatalf("overflow chute: actual %d, candidate %d; want 0, %d", over.Actual.Parcels, over.Candidate.Parcels, n-3)
	}
	// Exactly the parcels that move: the busiest hop's parcels after its
	// first bag, each from its own chute to the overflow chute.
	var want, got []string
	for _, a := range d.byHop[3:] {
		want = append(want, a.TrackingNo)
	}
	for _, diff := range rep.Differences {
		got = append(got, diff.TrackingNo)
		if diff.Candidate.Chute != d.live.OverflowChute || diff.Actual.NextHop != d.hop || diff.Candidate.NextHop != d.hop ||
			diff.Actual.Chute == first || diff.Candidate.Exception != "" {
			t.Errorf("difference %+v: want %s from a chute of its own to the overflow chute %d", diff, d.hop, d.live.OverflowChute)
		}
	}
	sort.Strings(want)
	sort.Strings(got)
	if !slices.Equal(got, want) || rep.DiffCount != n-3 {
		t.Fatalf("differences %v (count %d), want %v", got, rep.DiffCount, want)
	}

	// The per-chute CSV, the same figures.
	r := d.st.Send("POST", "/api/v1/ops/whatif?format=csv", d.ops, map[string]any{"station": whatifStation, "from": d.from, "to": d.to,
		"chute_map": cand, "bag_swap": "1h"})
	if r.Status != http.StatusOK || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("csv: %d %s", r.Status, r.Header.Get("Content-Type"))
	}
	lines := strings.Split(strings.TrimSpace(string(r.Body)), "\n")
	if lines[0] != strings.Join(whatif.CSVHeader, ",") || len(lines) != len(rep.Chutes)+1 {
		t.Fatalf("csv: %d lines, header %q", len(lines), lines[0])
	}
	if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, fmt.Sprintf("%d,next_hop,%s,", first, d.hop)) }) {
		t.Fatalf("csv has no row for chute %d", first)
	}
}

func TestWhatifOfTheLiveSetupShowsNoDifference(t *testing.T) {
	t.Parallel()
	d := recordWhatifDay(t)
	flow, err := d.st.App.Sorting().Flows().ForStation(whatifStation)
	if err != nil {
		t.Fatal(err)
	}
	rep := d.replay(t, d.ops, map[string]any{"chute_map": d.live, "flow": map[string]any{"name": flow.Name, "version": flow.Version}},
		http.StatusOK)
	if rep.DiffCount != 0 || len(rep.Differences) != 0 || rep.Rerun != 0 || rep.Recorded != len(d.parcels) {
		t.Fatalf("live setup: %d differences (%v), %d rerun, %d recorded", rep.DiffCount, rep.Differences, rep.Rerun, rep.Recorded)
	}
	for _, c := range rep.Chutes {
		a, b := c.Actual, c.Candidate
		if a.Parcels != b.Parcels || a.PeakParcels != b.PeakParcels || a.Overflow != b.Overflow || a.Bags != b.Bags {
			t.Errorf("chute %d: actual %+v, candidate %+v", c.Chute, a, b)
		}
	}
	if rep.Late == nil || rep.Late.Flow.Name != flow.Name || rep.Late.Samples == 0 || len(rep.Late.CriticalPath) == 0 {
		t.Fatalf("late prediction: %+v", rep.Late)
	}
}

// TestWhatifWritesNothing replays through every path (recorded answers, a
// candidate flow run against the simulator, an upload) and finds every
// table and every Redis key as it was.
func TestWhatifWritesNothing(t *testing.T) {
	t.Parallel()
	d := recordWhatifDay(t)
	ctx := context.Background()
	tables := []string{"work_orders", "tracking_outbox", "sort_results", "parcel_states", "parcel_state_history", "scan_keys",
		"reconciliation_mismatches", "reconciliation_counts", "presort_results", "flow_audit", "sorting_flows", "chute_maps"}
	counts := func() map[string]int {
		out := map[string]int{}
		for _, tbl := range tables {
			out[tbl] = d.st.Count("SELECT count(*) FROM " + tbl)
		}
		return out
	}
	rdb := redis.NewClient(&redis.Options{Addr: d.st.Config.Redis.Addr})
	defer rdb.Close()
	prefix := d.st.Config.Redis.Prefix
	keys := func() []string {
		ks, err := rdb.Keys(ctx, prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		// The rate limiter counts the requests themselves, per operator.
		ks = slices.DeleteFunc(ks, func(k string) bool { return strings.HasPrefix(k, prefix+"rl:") })
		sort.Strings(ks)
		return ks
	}
	beforeRows, beforeKeys := counts(), keys()

	cand := d.live
	cand.NextHops = map[string][]int{d.hop: {1}}
	d.replay(t, d.ops, map[string]any{"chute_map": cand}, http.StatusOK)
	rep := d.replay(t, d.ops, map[string]any{"flow": map[string]any{"name": "full_v2", "version": 1}}, http.StatusOK)
	if rep.Rerun != len(d.parcels) {
		t.Fatalf("a candidate flow reran %d parcels, want %d", rep.Rerun, len(d.parcels))
	}
	var nd strings.Builder
	for _, tn := range d.parcels {
		fmt.Fprintf(&nd, `{"kind":"sort","at":%q,"tracking_no":%q}`+"\n", time.Now().UTC().Format(time.RFC3339Nano), tn)
	}
	q := url.Values{"station": {whatifStation}, "flow": {"full_v2@1"}}
	r := d.st.Send("POST", "/api/v1/ops/whatif?"+q.Encode(), d.ops, nd.String(), "Content-Type", "application/x-ndjson")
	if r.Status != http.StatusOK {
		t.Fatalf("upload: %d %s", r.Status, r.Body)
	}

	if after := counts(); !mapsEqual(after, beforeRows) {
		t.Fatalf("rows before %v, after %v", beforeRows, after)
	}
	if after := keys(); !slices.Equal(after, beforeKeys) {
		t.Fatalf("redis keys before %v, after %v", beforeKeys, after)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestWhatifIsForOpsOnly(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	body := map[string]any{"station": whatifStation, "from": time.Now().Add(-time.Hour), "to": time.Now(),
		"flow": map[string]any{"name": "full", "version": 1}}
	for _, who := range []string{"op1", "sup1"} {
		st.ExpectError("POST", "/api/v1/ops/whatif", st.Login(who), body, http.StatusForbidden, "forbidden")
	}
	ops := st.Login("ops1")
	st.Do("POST", "/api/v1/ops/whatif", ops, body, http.StatusOK, nil)
	// Bad input is refused with a stable code.
	long := map[string]any{"station": whatifStation, "from": time.Now().Add(-72 * time.Hour), "to": time.Now(),
		"flow": map[string]any{"name": "full", "version": 1}}
	st.ExpectError("POST", "/api/v1/ops/whatif", ops, long, http.StatusBadRequest, "window_too_long")
	st.ExpectError("POST", "/api/v1/ops/whatif", ops, map[string]any{"station": whatifStation, "from": time.Now().Add(-time.Hour),
		"to": time.Now(), "flow": map[string]any{"name": "nope", "version": 1}}, http.StatusBadRequest, "unknown_flow")
	st.ExpectError("POST", "/api/v1/ops/whatif", ops, map[string]any{"station": whatifStation, "from": time.Now().Add(-time.Hour),
		"to": time.Now()}, http.StatusBadRequest, "no_candidate")
	r := st.Send("POST", "/api/v1/ops/whatif?station=SG-H01&flow=full@1", ops, "{\"kind\":\"sort\"}\n", "Content-Type", "application/x-ndjson")
	if r.Status != http.StatusBadRequest || !strings.Contains(string(r.Body), "invalid_scans") {
		t.Fatalf("bad upload: %d %s", r.Status, r.Body)
	}
}
