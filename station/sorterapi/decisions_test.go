package sorterapi_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt/decisionlog"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// recorded is one belt_decisions row.
type recorded struct {
	source, reason string
	late           bool
	budgetUS       int64
}

func decisionsOf(t *testing.T, st *stationtest.Station, tn string) []recorded {
	t.Helper()
	rows, err := st.App.DB().Query(context.Background(), `
		SELECT source, coalesce(reason_code, ''), late, budget_us FROM belt_decisions
		 WHERE station_id = $1 AND tracking_no = $2 ORDER BY decided_at`, station, tn)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []recorded
	for rows.Next() {
		var r recorded
		if err := rows.Scan(&r.source, &r.reason, &r.late, &r.budgetUS); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// A miss that cannot be sorted within the sorter's deadline is answered
// NOT_DECIDED_IN_TIME and recorded late, from the fallback; pre-sorted
// parcels are recorded pre-sorted and on time; a late answer whose parcel
// comes round again (reported recirculated, or resolved again) counts as a
// recirculation after a late answer in the per-sorter report.
func TestLateDecisionsAreRecordedWithTheirSourceAndRecirculations(t *testing.T) {
	t.Parallel()
	// As in TestMissThatCannotFinishInTimeGetsTheRejectChuteBeforeTheDeadline:
	// a wide margin so the answer travels back in time on a loaded machine,
	// and a hanging dependency so no on-the-fly sort can finish.
	st := start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Sorter.SafetyMargin, c.Sorter.DefaultBudget = 250*time.Millisecond, 300*time.Millisecond
	}})
	m := newMachine(t, st, station, "asm1")
	presorted := sim.ViaStation(station, 0)
	m.presortAll(presorted)
	if err := st.Sim.SetFault("GetDeliveryStatus", sim.Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	short := func(tn string) *stationv1.Decision {
		t.Helper()
		ctx, cancel := context.WithTimeout(m.ctx(), 350*time.Millisecond)
		defer cancel()
		r, err := m.cli.Resolve(ctx, &stationv1.ResolveRequest{TrackingNo: tn})
		if err != nil {
			t.Fatalf("resolve %s: %v", tn, err)
		}
		return r.GetDecision()
	}
	confirmed, again, alone := sim.ViaStation(station, 1), sim.ViaStation(station, 2), sim.ViaStation(station, 3)
	for _, tn := range []string{confirmed, again, alone} {
		if d := short(tn); d.GetReasonCode() != sorting.ReasonNotDecidedInTime {
			t.Fatalf("%s: decision %v, want NOT_DECIDED_IN_TIME", tn, d)
		}
	}
	// The machine reports one parcel recirculated; another comes round and
	// is resolved again, this time with a deadline long enough for the
	// hanging step's own timeout to end its sort (on time, with a reject).
	if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: 1, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_RECIRCULATED,
		TrackingNo: confirmed}); err != nil {
		t.Fatal(err)
	}
	m.resolve(again)
	// Pre-sorted parcels, with the test's generous deadline: on time.
	for range 2 {
		if d := m.resolve(presorted); d.GetSource() != stationv1.DecisionSource_DECISION_SOURCE_PRESORTED {
			t.Fatalf("pre-sorted parcel: %v", d)
		}
	}
	if err := st.App.Decisions().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}

	for _, tn := range []string{confirmed, alone} {
		got := decisionsOf(t, st, tn)
		// budget: 350 ms deadline less the 250 ms margin, counted from
		// receipt (the call spent some of it on the way in).
		if len(got) != 1 || got[0].source != "fallback" || !got[0].late || got[0].reason != sorting.ReasonNotDecidedInTime ||
			got[0].budgetUS > 100_000 {
			t.Fatalf("%s recorded %+v, want one late fallback", tn, got)
		}
	}
	if got := decisionsOf(t, st, again); len(got) != 2 || !got[0].late || got[1].late {
		t.Fatalf("%s recorded %+v, want a late decision, then one on time", again, got)
	}
	if got := decisionsOf(t, st, presorted); len(got) != 2 || got[0].source != "presorted" || got[0].late || got[1].late {
		t.Fatalf("pre-sorted parcel recorded %+v, want two on-time pre-sorted", got)
	}

	var rep decisionlog.Report
	st.Do("GET", "/api/v1/stations/"+station+"/sorters/decisions?from=1h", st.Login("sup1"), nil, http.StatusOK, &rep)
	if len(rep.Sorters) != 1 {
		t.Fatalf("report %+v, want one sorter", rep)
	}
	s := rep.Sorters[0]
	// 3 late (confirmed, again's first, alone) of 6; recirculated after a
	// late answer: confirmed (its confirm) and again (its re-resolve);
	// alone is followed by nothing.
	if s.SorterID != "asm1" || s.Decisions != 6 || s.Late != 3 || s.Presorted != 2 || s.Fallback != 4 || s.OnTheFly != 0 ||
		s.RecirculatedAfterLate != 2 || s.LateRate != 0.5 || s.PresortedShare < 0.33 || s.PresortedShare > 0.34 ||
		s.LatencyP99Ms <= 0 || s.LatencyP50Ms > s.LatencyP99Ms {
		t.Fatalf("report %+v", s)
	}
	// The window is the caller's: an hour that ended before the decisions
	// holds none.
	old := time.Now().Add(-2 * time.Hour).UTC()
	var empty decisionlog.Report
	st.Do("GET", "/api/v1/stations/"+station+"/sorters/decisions?from="+old.Format(time.RFC3339)+"&to="+
		old.Add(time.Hour).Format(time.RFC3339), st.Login("ops1"), nil, http.StatusOK, &empty)
	if len(empty.Sorters) != 0 {
		t.Fatalf("report of an earlier hour: %+v", empty)
	}
}

// Decisions on a stream are recorded like unary ones, each with its own
// message's budget.
func TestStreamDecisionsAreRecorded(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	tn := sim.ViaStation(station, 0)
	m.presortAll(tn)
	stream, err := m.cli.ResolveStream(m.ctx())
	if err != nil {
		t.Fatal(err)
	}
	for i, raw := range []string{tn, "not-a-parcel"} {
		if err := stream.Send(&stationv1.ResolveStreamRequest{RequestId: uint64(i), TrackingNo: raw, BudgetMs: 5000}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
	}
	_ = stream.CloseSend()
	if err := st.App.Decisions().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := decisionsOf(t, st, tn); len(got) != 1 || got[0].source != "presorted" || got[0].late ||
		got[0].budgetUS < 4_000_000 {
		t.Fatalf("stream decision recorded %+v", got)
	}
	if got := decisionsOf(t, st, "not-a-parcel"); len(got) != 1 || got[0].source != "fallback" ||
		got[0].reason != sorting.ReasonInvalidTN || got[0].late {
		t.Fatalf("malformed code recorded %+v", got)
	}
}

// The report is for the station's supervisors and ops: an operator, and a
// supervisor of another station, are refused.
func TestSorterDecisionsReportIsForTheStationsSupervisorsAndOps(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	if err := st.App.Auth().AddOperator(context.Background(), auth.Operator{ID: "sup2", Name: "sup2", StationID: "SG-H02",
		Role: auth.RoleSupervisor}, stationtest.Password); err != nil {
		t.Fatal(err)
	}
	path := "/api/v1/stations/" + station + "/sorters/decisions"
	st.ExpectError("GET", path, st.Login("op1"), nil, http.StatusForbidden, "forbidden")
	st.ExpectError("GET", path, st.Login("sup2"), nil, http.StatusForbidden, "forbidden")
	st.Do("GET", path, st.Login("sup1"), nil, http.StatusOK, nil)
	st.Do("GET", path, st.Login("ops1"), nil, http.StatusOK, nil)
	st.ExpectError("GET", path+"?from=2h&to=nonsense", st.Login("sup1"), nil, http.StatusBadRequest, "invalid_window")
	st.ExpectError("GET", path+"?from=2026-01-01T00:00:00Z&to=2025-01-01T00:00:00Z", st.Login("sup1"), nil,
		http.StatusBadRequest, "invalid_window")
}
