package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// rampStation judges ramps every 50 ms with small steps. The rate and p99
// guards need more sorts per flow than these tests make, so the match rate
// is what they exercise end to end.
func rampStation(t *testing.T, n int) *stationtest.Station {
	return stationtest.Start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Release.RampEvery = 50 * time.Millisecond
		c.Lease.TTL = 3 * time.Second
		c.Release.Ramp.MinStepTime = 200 * time.Millisecond
		c.Release.Ramp.MinComparisons = n
		c.Release.Ramp.MinMatchRate = 0.99
		c.Release.Ramp.MinSamples = 100000
	}})
}

// startRamp puts SG-H01 on a ramp to the candidate, forced past the raise
// guard (there is no shadow history yet), and returns the rule.
func startRamp(t *testing.T, st *stationtest.Station, ops, candidate string) sorting.Rule {
	t.Helper()
	var rule sorting.Rule
	r := st.Send("PUT", "/api/v1/ops/sites/SG-H01/release", ops, map[string]any{
		"stable_flow": "full", "stable_version": 1, "candidate_flow": candidate, "candidate_version": 1, "mode": "split",
		"force": true, "reason": "ramp test", "ramp": map[string]any{"steps_bp": []int{100, 500, 2500, 10000}},
	}, "If-Match", `"0"`)
	if r.Status != http.StatusOK {
		t.Fatalf("start ramp: %d %s", r.Status, r.Body)
	}
	if err := json.Unmarshal(r.Body, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.Ramp == nil || rule.RatioBP != 100 || rule.RampState != sorting.RampRunning {
		t.Fatalf("ramp not started: %+v", rule)
	}
	return rule
}

// inBand returns the next normal parcel via SG-H01, from *i on, whose bucket is
// shadowed on the rule's current step: [ratio, next step).
func inBand(t *testing.T, st *stationtest.Station, rule sorting.Rule, i *int, want func(tn string) bool) string {
	t.Helper()
	fx := st.Sim.Fixtures()
	next := rule.Ramp.StepsBP[min(rule.RampStep+1, len(rule.Ramp.StepsBP)-1)]
	for ; *i < 200000; *i++ {
		tn := sim.TrackingNo("SG", sim.Normal, *i)
		p, err := fx.Parcel(tn)
		if err != nil || !fx.Via(p.Origin, p.Destination, "SG-H01") {
			continue
		}
		if b := sorting.Bucket(rule.Salt, ident.TrackingNo(tn)); b >= rule.RatioBP && b < next && (want == nil || want(tn)) {
			*i++
			return tn
		}
	}
	t.Fatal("no parcel in the band")
	return ""
}

func TestARampWithAWrongCandidateRollsBackByItselfAndTheAuditSaysWhy(t *testing.T) {
	t.Parallel()
	const n = 100
	st := rampStation(t, n)
	ops, op := st.Login("ops1"), st.Login("op1")
	rule := startRamp(t, st, ops, "full_v2")
	// full_v2 re-homes one destination: 2 parcels in 100 are sent wrong.
	site, _, _ := sim.RehomedV2("SG")
	rehomedParcel := func(tn string) bool { return mustParcel(t, st, tn).Destination == site }
	samePath := func(tn string) bool { return !rehomedParcel(tn) }
	i, parcels := 0, make([]string, n)
	for k := range n {
		want := samePath
		if k == 10 || k == 50 {
			want = rehomedParcel
		}
		parcels[k] = inBand(t, st, rule, &i, want)
	}
	for k, tn := range parcels {
		sortParcel(t, st, op, tn, fmt.Sprintf("ramp-bad-%d", k))
	}
	waitFor(t, "the ramp to roll back", func() bool {
		cur, _ := st.App.Releases().Rule("SG-H01")
		return cur.RampState == sorting.RampRolledBack
	})
	cur, _ := st.App.Releases().Rule("SG-H01")
	if cur.Mode != sorting.ModeOff || cur.RatioBP != 0 {
		t.Fatalf("after the rollback: mode %s at %d bp, want off", cur.Mode, cur.RatioBP)
	}
	var audit struct{ Entries []sorting.AuditEntry }
	st.Do("GET", "/api/v1/ops/audit?site=SG-H01", ops, nil, http.StatusOK, &audit)
	var rollback *sorting.AuditEntry
	for k, e := range audit.Entries {
		if e.Action == "ramp_advance" {
			t.Fatalf("the wrong candidate advanced: %+v", e)
		}
		if e.Action == "ramp_rollback" {
			rollback = &audit.Entries[k]
		}
	}
	if rollback == nil {
		t.Fatalf("no rollback in the audit: %+v", audit.Entries)
	}
	var g struct {
		Guard     string  `json:"guard"`
		Value     float64 `json:"value"`
		Threshold float64 `json:"threshold"`
	}
	if err := json.Unmarshal(rollback.Guard, &g); err != nil {
		t.Fatalf("rollback guard %s: %v", rollback.Guard, err)
	}
	if g.Guard != sorting.GuardMatchRate || g.Threshold != 0.99 || g.Value >= 0.99 || g.Value < 0.95 ||
		rollback.Actor != "ramp" || !strings.Contains(rollback.Reason, "match_rate") {
		t.Fatalf("rollback audit: %+v guard %+v", *rollback, g)
	}
	r := st.Send("GET", "/metrics", ops, nil)
	if !strings.Contains(string(r.Body), `station_release_ramp_rollbacks_total{guard="match_rate",site="SG-H01"} 1`) {
		t.Fatalf("no rollback alert metric in /metrics")
	}
}

func TestACorrectCandidateRampsToAHundredPercentByItself(t *testing.T) {
	t.Parallel()
	const n = 15
	st := rampStation(t, n)
	other := stationtest.Start(t, stationtest.Options{Join: st, Config: func(c *config.Config) { c.Release.RampEvery = 50 * time.Millisecond }})
	ops, op := st.Login("ops1"), st.Login("op1")
	// The candidate is published at runtime: the shipped flow under a new name.
	publish(t, st, ops, "full_c", strings.Replace(shippedFull(t, st, ops), "name: full", "name: full_c", 1), http.StatusCreated)
	startRamp(t, st, ops, "full_c")
	i, sorts := 0, 0
	var status sorting.RampStatus
	deadline := time.Now().Add(60 * time.Second)
	for {
		st.Do("GET", "/api/v1/ops/sites/SG-H01/ramp", ops, nil, http.StatusOK, &status)
		if status.State == sorting.RampDone {
			break
		}
		if status.State != sorting.RampRunning || time.Now().After(deadline) {
			t.Fatalf("ramp stopped or stalled after %d sorts: %+v", sorts, status)
		}
		if status.Comparisons >= n {
			time.Sleep(20 * time.Millisecond) // enough compared: wait for the step's time and the job
			continue
		}
		cur, _ := st.App.Releases().Rule("SG-H01")
		sortParcel(t, st, op, inBand(t, st, cur, &i, nil), fmt.Sprintf("ramp-ok-%d", sorts))
		sorts++
	}
	cur, _ := st.App.Releases().Rule("SG-H01")
	if cur.Mode != sorting.ModeSplit || cur.RatioBP != 10000 || cur.RampStep != 3 {
		t.Fatalf("ramp done at %s %d bp step %d", cur.Mode, cur.RatioBP, cur.RampStep)
	}
	var audit struct{ Entries []sorting.AuditEntry }
	st.Do("GET", "/api/v1/ops/audit?site=SG-H01", ops, nil, http.StatusOK, &audit)
	advances := 0
	for _, e := range audit.Entries {
		if e.Action == "ramp_advance" {
			advances++
		}
		if e.Action == "ramp_rollback" {
			t.Fatalf("a correct candidate was rolled back: %+v", e)
		}
	}
	if advances != 3 {
		t.Fatalf("%d advances, want 3", advances)
	}
	// The other instance serves the same step.
	waitFor(t, "the other instance to be at 100%", func() bool {
		r, _ := other.App.Releases().Rule("SG-H01")
		return r.RatioBP == 10000 && r.RampState == sorting.RampDone
	})
	// Every parcel is now served by the candidate.
	if a := sortParcel(t, st, op, inBand(t, st, sorting.Rule{Salt: cur.Salt, RatioBP: 0, Ramp: cur.Ramp, RampStep: 3}, &i, nil), "ramp-after"); a.Flow != "full_c" {
		t.Fatalf("after the ramp, served by %s", a.Flow)
	}
	var overview struct{ Sites []sorting.SiteOverview }
	st.Do("GET", "/api/v1/ops/releases", ops, nil, http.StatusOK, &overview)
	found := false
	for _, o := range overview.Sites {
		if o.SiteID == "SG-H01" {
			found = true
			if o.Mode != sorting.ModeSplit || o.RatioBP != 10000 || o.Step == nil || *o.Step != 4 || o.MatchRate == nil ||
				*o.MatchRate != 1 || o.LastAction != "ramp_advance" || o.LastChangeBy != "ramp" {
				t.Fatalf("overview row %+v", o)
			}
		}
	}
	if !found || len(overview.Sites) < 4 {
		t.Fatalf("overview: %+v", overview.Sites)
	}
}
