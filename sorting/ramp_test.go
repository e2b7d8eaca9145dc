package sorting

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/expresshub/station/workorder"
)

// rampSite puts SG-H01 on a ramp to full_v2 whose rate and p99 guards judge
// from 10 sorts per flow, with the given reaction to a breach.
func rampSite(t *testing.T, onBreach string, stepBP int) (*Releases, func(flow string, n, exceptions int, code string, ms int)) {
	t.Helper()
	ctx := context.Background()
	svc, db := offlineService(t, 0)
	r := NewReleases(db, nil, "t:", svc.Flows(), GuardConfig{}, zap.NewNop(), WithRamp(Ramp{MinStepTime: Duration(time.Hour),
		MinComparisons: 1000, MinSamples: 10, MaxP99Ratio: 2, OnBreach: onBreach}, nil))
	if err := r.Load(ctx); err != nil {
		t.Fatal(err)
	}
	rule, err := r.Put(ctx, RuleChange{Rule: Rule{SiteID: "SG-H01", StableFlow: "full", StableVersion: 1, CandidateFlow: "full_v2",
		CandidateVersion: 1, Mode: ModeSplit, RatioBP: stepBP, Ramp: &Ramp{}}, Actor: "ops1", Force: true, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if rule.RampState != RampRunning || rule.RatioBP != stepBP {
		t.Fatalf("ramp did not start at %d: %+v", stepBP, rule)
	}
	seq := 0
	sorts := func(flow string, n, exceptions int, code string, ms int) {
		for i := range n {
			var exc *string
			if i < exceptions {
				exc = &code
			}
			trace, _ := json.Marshal(map[string]any{"duration_ns": int64(ms) * int64(time.Millisecond)})
			seq++
			if _, err := db.Exec(ctx, `INSERT INTO sort_results (id, station_id, tracking_no, chute, exception_code, flow, flow_version, trace)
				VALUES ($1, 'SG-H01', $2, 1, $3, $4, 1, $5)`, workorder.NewID(), fmt.Sprintf("SG%010d", seq), exc, flow, trace); err != nil {
				t.Fatal(err)
			}
		}
	}
	return r, sorts
}

func TestARampRollsBackOnTheCandidatesExceptionRate(t *testing.T) {
	r, sorts := rampSite(t, BreachOff, 100)
	sorts("full", 10, 0, "", 5)
	sorts("full_v2", 10, 1, CodeNoRoute, 5) // 10 % against 0 %, margin 0.5 %
	acts, err := r.AdvanceRamps(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 || acts[0].Action != "ramp_rollback" || acts[0].Guard.Guard != GuardExceptionRate ||
		acts[0].Guard.Value != 0.1 || acts[0].Guard.Threshold != 0.005 {
		t.Fatalf("actions %+v", acts)
	}
	rule, _ := r.Rule("SG-H01")
	if rule.Mode != ModeOff || rule.RampState != RampRolledBack {
		t.Fatalf("after the rollback %+v", rule)
	}
	audit, err := r.Audit(context.Background(), "SG-H01", 1)
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]any
	if err := json.Unmarshal(audit[0].Guard, &g); err != nil || g["guard"] != GuardExceptionRate || g["value"] != 0.1 || g["threshold"] != 0.005 {
		t.Fatalf("audit %+v (%v)", audit[0], err)
	}
}

func TestARampRollsBackOneStepOnTheCandidatesP99(t *testing.T) {
	r, sorts := rampSite(t, BreachPrevious, 500)
	sorts("full", 10, 0, "", 10)
	sorts("full_v2", 10, 0, "", 50) // five times stable's p99, allowed twice
	acts, err := r.AdvanceRamps(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(acts) != 1 || acts[0].Guard == nil || acts[0].Guard.Guard != GuardP99 || acts[0].To != 100 {
		t.Fatalf("actions %+v", acts)
	}
	rule, _ := r.Rule("SG-H01")
	if rule.Mode != ModeSplit || rule.RatioBP != 100 || rule.RampStep != 0 || rule.RampState != RampRolledBack {
		t.Fatalf("after the rollback %+v", rule)
	}
}

func TestARampWaitsForItsStepTimeAndComparisons(t *testing.T) {
	r, sorts := rampSite(t, BreachOff, 100)
	sorts("full", 10, 1, CodeNoChute, 5)
	sorts("full_v2", 10, 1, CodeNoChute, 5) // the same rates as stable: within the margins
	acts, err := r.AdvanceRamps(context.Background(), nil)
	if err != nil || len(acts) != 0 {
		t.Fatalf("actions %+v, %v", acts, err)
	}
	st, err := r.RampStatus(context.Background(), "SG-H01")
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready || st.Breach != nil || st.NextRatioBP != 500 || len(st.Guards) != 4 {
		t.Fatalf("status %+v", st)
	}
	for _, g := range st.Guards {
		if g.Guard != GuardMatchRate && !g.Judged {
			t.Errorf("guard %s not judged with 10 sorts each: %+v", g.Guard, g)
		}
	}
}
