package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// shadowFullV2 puts SG-H01 in shadow with the V2 routing candidate.
func shadowFullV2(t *testing.T, st *stationtest.Station, ops string) sorting.Rule {
	t.Helper()
	var rule sorting.Rule
	r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, map[string]any{
		"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 1, "mode": "shadow",
	}, "If-Match", `"0"`)
	if r.Status != http.StatusOK {
		t.Fatalf("put release: %d %s", r.Status, r.Body)
	}
	st.Do("GET", "/api/v1/ops/sites/SG-H01/release", ops, nil, http.StatusOK, &rule)
	return rule
}

// rehomed lists parcels via SG-H01 whose destination V2 re-homes: their next
// hop differs between the two routing tables.
func rehomed(t *testing.T, st *stationtest.Station, n int) []string {
	t.Helper()
	site, _, _ := sim.RehomedV2("SG")
	var out []string
	for i := 0; len(out) < n && i < 5000; i++ {
		tn := sim.ViaStation("SG-H01", i)
		if mustParcel(t, st, tn).Destination == site {
			out = append(out, tn)
		}
	}
	if len(out) < n {
		t.Fatalf("only %d re-homed parcels", len(out))
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestShadowServesStableAndRecordsMismatchesAtTheFirstDifferingStep(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	ops, op := st.Login("ops1"), st.Login("op1")
	shadowFullV2(t, st, ops)

	moved := rehomed(t, st, 3)
	same := []string{}
	for i := 0; len(same) < 5; i++ {
		tn := sim.ViaStation("SG-H01", i)
		site, _, _ := sim.RehomedV2("SG")
		if mustParcel(t, st, tn).Destination != site {
			same = append(same, tn)
		}
	}
	for i, tn := range append(append([]string{}, moved...), same...) {
		a := sortParcel(t, st, op, tn, fmt.Sprintf("shadow-%d", i))
		want, _ := st.Sim.Fixtures().Route("SG-H01", mustParcel(t, st, tn).Destination)
		if a.Flow != "full" || a.NextHop == nil || *a.NextHop != want {
			t.Fatalf("shadow changed the served answer of %s: %+v (want next hop %s from full)", tn, a.Result, want)
		}
	}
	var rep sorting.Report
	waitFor(t, "the shadow comparisons", func() bool {
		st.Do("GET", "/api/v1/ops/reconciliation?site=SG-H01&since=1h", ops, nil, http.StatusOK, &rep)
		return rep.Comparisons >= len(moved)+len(same)
	})
	if rep.Mismatches != len(moved) || rep.ByStep["get_route"] != len(moved) {
		t.Fatalf("report: %d comparisons, %d mismatches, by step %v", rep.Comparisons, rep.Mismatches, rep.ByStep)
	}
	if rep.MatchRate == nil || *rep.MatchRate >= 1 {
		t.Fatalf("match rate %v", rep.MatchRate)
	}
	var m sorting.Mismatch
	st.Do("GET", "/api/v1/ops/reconciliation/"+rep.Recent[0].ID, ops, nil, http.StatusOK, &m)
	if m.FirstDiffNode == nil || *m.FirstDiffNode != "get_route" || m.CandidateFlow != "full_v2" || len(m.StableTrace) < 10 || len(m.CandidateTrace) < 10 {
		t.Fatalf("mismatch detail: %+v", m.MismatchSummary)
	}
	// Shadow wrote no work order, sort result or tracking event of its own.
	n := len(moved) + len(same)
	if got := st.Count(`SELECT count(*) FROM work_orders`); got != n {
		t.Fatalf("%d work orders for %d sorts", got, n)
	}
	if got := st.Count(`SELECT count(*) FROM tracking_outbox`); got != n {
		t.Fatalf("%d events for %d sorts", got, n)
	}
}

func TestAHangingCandidateDoesNotHoldUpTheServedSort(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{
		Config: func(c *config.Config) { c.Release.ShadowDeadline = 300 * time.Millisecond },
	})
	ops, op := st.Login("ops1"), st.Login("op1")
	shadowFullV2(t, st, ops)
	// Only the candidate asks GetRouteV2.
	if err := st.Sim.SetFault("GetRouteV2", sim.Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	tn := sim.ViaStation("SG-H01", 0)
	a := sortParcel(t, st, op, tn, "hang-1")
	if a.Exception != nil || a.NextHop == nil {
		t.Fatalf("served sort failed with a hanging candidate: %+v", a.Result)
	}
	var rep sorting.Report
	waitFor(t, "the timed-out shadow run to be compared", func() bool {
		st.Do("GET", "/api/v1/ops/reconciliation?site=SG-H01", ops, nil, http.StatusOK, &rep)
		return rep.Mismatches == 1
	})
}

func TestGuardRefusesARampBelowTheMatchRateAndForcingIsAudited(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	ops := st.Login("ops1")
	rule := shadowFullV2(t, st, ops)
	split := map[string]any{"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 1,
		"mode": "split", "ratio_bp": 100}
	r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, split, "If-Match", fmt.Sprintf(`"%d"`, rule.Version))
	if r.Status != http.StatusConflict || !contains(r.Body, "match_rate_too_low") || !contains(r.Body, "min_comparisons") {
		t.Fatalf("ramp without comparisons: %d %s", r.Status, r.Body)
	}
	split["force"] = true
	st.ExpectError("PUT", "/api/v1/ops/sites/SG-H01/release", ops, split, http.StatusPreconditionRequired, "precondition_required")
	r = st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, split, "If-Match", fmt.Sprintf(`"%d"`, rule.Version))
	if r.Status != http.StatusBadRequest || !contains(r.Body, "reason_required") {
		t.Fatalf("force without a reason: %d %s", r.Status, r.Body)
	}
	split["reason"] = "V2 verified offline with the lane owner"
	r = st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, split, "If-Match", fmt.Sprintf(`"%d"`, rule.Version))
	if r.Status != http.StatusOK {
		t.Fatalf("forced ramp: %d %s", r.Status, r.Body)
	}
	var audit struct {
		Entries []sorting.AuditEntry `json:"entries"`
	}
	st.Do("GET", "/api/v1/ops/audit?site=SG-H01", ops, nil, http.StatusOK, &audit)
	if len(audit.Entries) != 2 || !audit.Entries[0].Forced || audit.Entries[0].Reason != split["reason"] || audit.Entries[0].Actor != "ops1" ||
		len(audit.Entries[0].Before) < 10 {
		t.Fatalf("audit: %+v", audit.Entries)
	}
	// Not ops: refused.
	st.ExpectError("GET", "/api/v1/ops/sites/SG-H01/release", st.Login("sup1"), nil, http.StatusForbidden, "forbidden")
}

func TestSplitServesTheCandidateAndTheKillSwitchStopsIt(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	ops, op := st.Login("ops1"), st.Login("op1")
	r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, map[string]any{
		"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 1,
		"mode": "split", "ratio_bp": 10000, "force": true, "reason": "test: everyone on V2",
	}, "If-Match", `"0"`)
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	moved := rehomed(t, st, 1)[0]
	a := sortParcel(t, st, op, moved, "split-1")
	_, _, hubV2 := sim.RehomedV2("SG")
	if a.Flow != "full_v2" || a.NextHop == nil || *a.NextHop != hubV2 {
		t.Fatalf("split answer %+v, want full_v2 via %s", a.Result, hubV2)
	}
	var wo string
	if err := st.App.DB().QueryRow(context.Background(), `SELECT convert_from(response, 'UTF8') FROM work_orders WHERE id = $1`, a.WorkOrderID).Scan(&wo); err != nil || !contains([]byte(wo), `"flow":"full_v2"`) {
		t.Fatalf("work order does not name the flow: %s %v", wo, err)
	}
	st.Do("POST", "/api/v1/ops/sites/SG-H01/release/kill", ops, map[string]string{"reason": "mis-sorts on the belt"}, http.StatusOK, nil)
	b := sortParcel(t, st, op, moved, "split-2")
	if b.Flow != "full" {
		t.Fatalf("after the kill switch the candidate still serves: %+v", b.Result)
	}
}

func TestInvalidRulesAreRejected(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	ops := st.Login("ops1")
	for _, body := range []map[string]any{
		{"stable_flow": "nope", "stable_version": 1, "mode": "off"},
		{"stable_flow": "full", "stable_version": 1, "mode": "shadow"},
		{"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 9, "mode": "shadow"},
		{"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 1, "mode": "split", "ratio_bp": 10001},
		{"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 1, "mode": "half"},
	} {
		r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, body, "If-Match", `"0"`)
		if r.Status != http.StatusBadRequest || !contains(r.Body, "invalid_release_rule") {
			t.Fatalf("%v: %d %s", body, r.Status, r.Body)
		}
	}
	r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, map[string]any{"stable_flow": "full", "stable_version": 1, "mode": "off", "version": 3}, "If-Match", `"0"`)
	if r.Status != http.StatusBadRequest {
		t.Fatalf("server-owned field accepted: %d %s", r.Status, r.Body)
	}
	if n := st.Count(`SELECT count(*) FROM release_rules`); n != 0 {
		t.Fatalf("%d rules stored by rejected requests", n)
	}
}

func TestThreeInstancesApplyAChange(t *testing.T) {
	t.Parallel()
	// Three rule stores over one database and one Redis: the shape of three
	// station instances; a change made on one reaches the others by pub/sub.
	st := stationtest.Start(t, stationtest.Options{})
	rdb, _ := dbtest.Redis(t)
	var mu sync.Mutex
	applied := map[int]int{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	var stores []*sorting.Releases
	for i := 0; i < 3; i++ {
		r := sorting.NewReleases(st.App.DB(), rdb, st.Config.Redis.Prefix, st.App.Sorting().Flows(), sorting.GuardConfig{}, zaptest.NewLogger(t))
		r.OnApply(func(site string, version int) {
			mu.Lock()
			applied[i] = version
			mu.Unlock()
		})
		if err := r.Load(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Go(func() { r.Watch(ctx, time.Hour) }) // an hour: only pub/sub can deliver in time
		stores = append(stores, r)
	}
	time.Sleep(200 * time.Millisecond) // let the subscriptions start
	_, err := stores[0].Put(ctx, sorting.RuleChange{Rule: sorting.Rule{SiteID: "SG-H01", StableFlow: "full", StableVersion: 1,
		CandidateFlow: "full_v2", CandidateVersion: 1, Mode: sorting.ModeShadow}, Actor: "ops1"})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every instance to apply version 1", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return applied[0] == 1 && applied[1] == 1 && applied[2] == 1
	})
	for _, s := range stores {
		if rule, ok := s.Rule("SG-H01"); !ok || rule.Mode != sorting.ModeShadow {
			t.Fatalf("instance rule %+v", rule)
		}
	}
}

func contains(b []byte, s string) bool { return len(b) > 0 && stringsContains(string(b), s) }

func TestOfflineReconciliationChecksACandidateAgainstStoredSorts(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	ops, op := st.Login("ops1"), st.Login("op1")
	moved := rehomed(t, st, 2)
	parcels := append([]string{sim.ViaStation("SG-H01", 0), sim.ViaStation("SG-H01", 1)}, moved...)
	for i, tn := range parcels {
		sortParcel(t, st, op, tn, fmt.Sprintf("offline-%d", i))
	}
	var rep sorting.OfflineReport
	st.Do("POST", "/api/v1/ops/reconciliation/offline", ops, map[string]any{
		"site": "SG-H01", "candidate_flow": "full_v2", "candidate_version": 1, "since": "1h",
	}, http.StatusOK, &rep)
	wantMismatches := 0
	site, _, _ := sim.RehomedV2("SG")
	for _, tn := range parcels {
		if mustParcel(t, st, tn).Destination == site {
			wantMismatches++
		}
	}
	if rep.Parcels != len(parcels) || rep.Comparisons != len(parcels) || rep.Mismatches != wantMismatches || rep.ByStep["get_route"] != wantMismatches {
		t.Fatalf("offline report %+v, want %d mismatches at get_route", rep, wantMismatches)
	}
	// The site report shows the offline run beside (not inside) the shadow figures.
	var site1 sorting.Report
	st.Do("GET", "/api/v1/ops/reconciliation?site=SG-H01", ops, nil, http.StatusOK, &site1)
	if site1.Offline == nil || site1.Offline.Mismatches != wantMismatches || site1.Comparisons != 0 {
		t.Fatalf("site report after offline: %+v", site1)
	}
}

func TestNoiseCheckComparesTheStableFlowWithItself(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) { c.Release.NoiseEvery = 1 }})
	ops, op := st.Login("ops1"), st.Login("op1")
	shadowFullV2(t, st, ops)
	for i := 0; i < 4; i++ {
		sortParcel(t, st, op, sim.ViaStation("SG-H01", i), fmt.Sprintf("noise-%d", i))
	}
	var rep sorting.Report
	waitFor(t, "the noise comparisons", func() bool {
		st.Do("GET", "/api/v1/ops/reconciliation?site=SG-H01", ops, nil, http.StatusOK, &rep)
		return rep.Noise.Comparisons == 4
	})
	// On a loaded machine a rerun can time out where the served run did not:
	// that is exactly the noise this check exists to measure. Each one is
	// recorded as a noise mismatch, never counted against the candidate.
	if rep.Noise.Rate == nil {
		t.Fatal("no noise rate")
	}
	if n := st.Count(`SELECT count(*) FROM reconciliation_mismatches WHERE source = 'noise'`); n != rep.Noise.Mismatches {
		t.Fatalf("%d noise mismatch rows, report says %d", n, rep.Noise.Mismatches)
	}
	if n := st.Count(`SELECT count(*) FROM reconciliation_mismatches WHERE source = 'noise' AND candidate_flow <> 'full'`); n != 0 {
		t.Fatal("a noise comparison ran something other than the stable flow twice")
	}
}
