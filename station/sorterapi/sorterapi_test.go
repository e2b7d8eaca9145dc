package sorterapi_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/expresshub/station/clients/sim"
	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

const station = "SG-H01"

func chuteMap(t *testing.T, st *stationtest.Station) sorting.StoredChuteMap {
	t.Helper()
	m, err := st.App.Sorting().Chutes().Get(context.Background(), station)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func route(t *testing.T, st *stationtest.Station, tn string) string {
	t.Helper()
	fx := st.Sim.Fixtures()
	p, err := fx.Parcel(tn)
	if err != nil {
		t.Fatal(err)
	}
	hop, ok := fx.Route(station, p.Destination)
	if !ok {
		t.Fatalf("%s has no route", tn)
	}
	return hop
}

func TestPreSortThenResolveAnswersFromTheTableWithoutSorting(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	cm := chuteMap(t, st)
	var tns []string
	for i := range 20 {
		tns = append(tns, sim.ViaStation(station, i))
	}
	cancelled := stationtest.Parcel(st.Sim.Fixtures(), station, sim.Cancelled, 0)
	tns = append(tns, cancelled, " "+strings.ToLower(tns[0])+"\r\n")

	ds := m.presortAll(tns...)
	for i, d := range ds[:20] {
		hop := route(t, st, tns[i])
		if d.GetChuteKind() != stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP || d.GetNextHop() != hop ||
			int(d.GetChute()) != cm.NextHops[hop][0] || d.GetFlow() == "" || d.GetFlowVersion() < 1 {
			t.Fatalf("%s: %v", tns[i], d)
		}
	}
	if d := ds[20]; d.GetChuteKind() != stationv1.ChuteKind_CHUTE_KIND_EXCEPTION || d.GetReasonCode() != sorting.CodeCancelled ||
		int(d.GetChute()) != cm.ExceptionChute {
		t.Fatalf("cancelled parcel: %v", d)
	}
	if ds[21].GetTrackingNo() != tns[0] || ds[21].GetChute() != ds[0].GetChute() {
		t.Fatalf("duplicate answered %v, first %v", ds[21], ds[0])
	}
	if n := st.Count(`SELECT count(*) FROM presort_results WHERE station_id = $1 AND source = 'presort'`, station); n != 21 {
		t.Fatalf("%d stored answers, want 21", n)
	}

	waybills := st.Sim.Calls("GetWaybill")
	for i, tn := range tns[:21] {
		d := m.resolve(tn)
		if d.GetSource() != stationv1.DecisionSource_DECISION_SOURCE_PRESORTED || d.GetChute() != ds[i].GetChute() {
			t.Fatalf("resolve %s: %v, pre-sorted %v", tn, d, ds[i])
		}
	}
	if n := st.Sim.Calls("GetWaybill"); n != waybills {
		t.Fatalf("resolving pre-sorted parcels called the order center %d times", n-waybills)
	}
	// Pre-sorting and resolving write no work order: the machine's
	// confirmation does.
	if n := st.Count(`SELECT count(*) FROM work_orders`); n != 0 {
		t.Fatalf("%d work orders", n)
	}
}

func TestMissIsSortedOnTheFlyAndKeptForTheNextPass(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	tn := sim.ViaStation(station, 3)
	d := m.resolve(tn)
	hop := route(t, st, tn)
	if d.GetSource() != stationv1.DecisionSource_DECISION_SOURCE_ON_THE_FLY || d.GetNextHop() != hop ||
		int(d.GetChute()) != chuteMap(t, st).NextHops[hop][0] {
		t.Fatalf("miss: %v", d)
	}
	eventually(t, "on-the-fly answer stored", func() bool {
		return m.resolve(tn).GetSource() == stationv1.DecisionSource_DECISION_SOURCE_PRESORTED
	})
	if n := st.Count(`SELECT count(*) FROM presort_results WHERE tracking_no = $1 AND source = 'on_the_fly'`, tn); n != 1 {
		t.Fatalf("%d stored on-the-fly answers", n)
	}
}

func TestMissThatCannotFinishInTimeGetsTheRejectChuteBeforeTheDeadline(t *testing.T) {
	t.Parallel()
	// A wide safety margin: the answer must still travel back on a loaded
	// test machine. The belt's budget (350 ms deadline - 250 ms margin) stays
	// below the hanging step's own timeout (150 ms), so only the budget can
	// end the wait.
	st := start(t, stationtest.Options{Config: func(c *config.Config) {
		c.Sorter.SafetyMargin, c.Sorter.DefaultBudget = 250*time.Millisecond, 300*time.Millisecond
	}})
	m := newMachine(t, st, station, "asm1")
	presorted := sim.ViaStation(station, 0)
	m.presortAll(presorted)
	if err := st.Sim.SetFault("GetDeliveryStatus", sim.Fault{Hang: true}); err != nil {
		t.Fatal(err)
	}
	cm := chuteMap(t, st)
	for i := 1; i <= 3; i++ {
		ctx, cancel := context.WithTimeout(m.ctx(), 350*time.Millisecond)
		r, err := m.cli.Resolve(ctx, &stationv1.ResolveRequest{TrackingNo: sim.ViaStation(station, i)})
		cancel()
		// An error here (DeadlineExceeded) would mean the belt was not
		// answered before its deadline.
		if err != nil {
			t.Fatalf("resolve under a hanging dependency: %v", err)
		}
		d := r.GetDecision()
		if d.GetChuteKind() != stationv1.ChuteKind_CHUTE_KIND_REJECT || int(d.GetChute()) != cm.RejectChute ||
			d.GetReasonCode() != sorting.ReasonNotDecidedInTime || d.GetReason() == "" ||
			d.GetSource() != stationv1.DecisionSource_DECISION_SOURCE_FALLBACK {
			t.Fatalf("decision %v", d)
		}
	}
	// A pre-sorted parcel is still answered from the table.
	ctx, cancel := context.WithTimeout(m.ctx(), 350*time.Millisecond)
	defer cancel()
	r, err := m.cli.Resolve(ctx, &stationv1.ResolveRequest{TrackingNo: presorted})
	if err != nil || r.GetDecision().GetChuteKind() != stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP {
		t.Fatalf("pre-sorted parcel under the fault: %v %v", r, err)
	}
	// The sorts that did not finish stored nothing: a failure is never
	// cached, the next pass sorts again.
	eventually(t, "background sorts ended", func() bool {
		return st.Count(`SELECT count(*) FROM presort_results`) == 1
	})
}

func TestStreamAnswersEveryParcelInOrder(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	var presorted []string
	for i := range 50 {
		presorted = append(presorted, sim.ViaStation(station, i))
	}
	m.presortAll(presorted...)

	stream, err := m.cli.ResolveStream(m.ctx())
	if err != nil {
		t.Fatal(err)
	}
	// Hits, misses (sorted on the fly, slower) and one unreadable code,
	// interleaved: the answers must still come back in request order.
	var reqs []*stationv1.ResolveStreamRequest
	for i := range 100 {
		tn := sim.ViaStation(station, i) // 0-49 pre-sorted, 50-99 misses
		if i%2 == 1 {
			tn = sim.ViaStation(station, 50+i/2)
		}
		if i == 37 {
			tn = "SG12-garbled"
		}
		// A generous budget: this test is about order, not speed, and the
		// test machine is shared.
		reqs = append(reqs, &stationv1.ResolveStreamRequest{RequestId: uint64(1000 + i), TrackingNo: tn, BudgetMs: 10000})
	}
	go func() {
		for _, r := range reqs {
			if err := stream.Send(r); err != nil {
				return
			}
		}
		_ = stream.CloseSend()
	}()
	for i, want := range reqs {
		r, err := stream.Recv()
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		d := r.GetDecision()
		if r.GetRequestId() != want.GetRequestId() {
			t.Fatalf("answer %d is for request %d, want %d", i, r.GetRequestId(), want.GetRequestId())
		}
		if i == 37 {
			if d.GetChuteKind() != stationv1.ChuteKind_CHUTE_KIND_REJECT || d.GetReasonCode() != sorting.ReasonInvalidTN {
				t.Fatalf("garbled code: %v", d)
			}
			continue
		}
		// A miss may meet a timeout on a loaded test machine and get the
		// reject chute; what matters here is whose answer comes when.
		if d.GetTrackingNo() != want.GetTrackingNo() || d.GetChute() == 0 {
			t.Fatalf("answer %d: %v for %s", i, d, want.GetTrackingNo())
		}
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last answer: %v", err)
	}
}

func TestConfirmIsIdempotentPerSequenceAndRefusesGoingBack(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	tn := sim.ViaStation(station, 0)
	d := m.presortAll(tn)[0]
	sorted := &stationv1.ConfirmRequest{Sequence: 7, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED,
		TrackingNo: tn, Chute: d.GetChute()}

	first, err := m.confirm(sorted)
	if err != nil || first.GetReplayed() || first.GetWorkOrderId() == "" {
		t.Fatalf("confirm: %v %v", first, err)
	}
	again, err := m.confirm(sorted)
	if err != nil || !again.GetReplayed() || again.GetWorkOrderId() != first.GetWorkOrderId() {
		t.Fatalf("replay: %v %v", again, err)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM work_orders WHERE type = 'sorter_confirm' AND actor_kind = 'sorter' AND actor_id = 'asm1'`: 1,
		`SELECT count(*) FROM tracking_outbox WHERE type = 'sorter_confirmed' AND payload->>'outcome' = 'sorted'
		    AND (payload->>'sequence')::int = 7 AND payload->>'next_hop' = '` + d.GetNextHop() + `'`: 1,
		`SELECT count(*) FROM sort_results WHERE source = 'sorter' AND next_hop = '` + d.GetNextHop() + `'`: 1,
		`SELECT count(*) FROM sorter_confirms WHERE sorter_id = 'asm1' AND seq = 7`:                         1,
	} {
		if n := st.Count(q); n != want {
			t.Fatalf("%s: %d, want %d", q, n, want)
		}
	}
	// The confirmed sort is now the parcel's current sort for the terminals.
	var latest sorting.Result
	st.Do("GET", "/api/v1/sort/"+tn, st.Login("op1"), nil, 200, &latest)
	if latest.WorkOrderID != first.GetWorkOrderId() || latest.NextHop == nil || *latest.NextHop != d.GetNextHop() {
		t.Fatalf("latest sort %+v", latest)
	}

	// The same sequence for another event is refused, and so is going back.
	_, err = m.confirm(&stationv1.ConfirmRequest{Sequence: 7, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_REJECTED, TrackingNo: tn})
	wantCode(t, err, codes.AlreadyExists, "SEQUENCE_REUSED")
	_, err = m.confirm(&stationv1.ConfirmRequest{Sequence: 5, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_REJECTED, TrackingNo: tn})
	wantCode(t, err, codes.FailedPrecondition, "SEQUENCE_BACKWARDS")
	// A gap is fine; so is a no-read without a tracking number.
	if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: 9, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_NO_READ}); err != nil {
		t.Fatal(err)
	}
	// Bad events are refused and write nothing.
	for _, bad := range []*stationv1.ConfirmRequest{
		{Sequence: 10},
		{Sequence: 0, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_NO_READ},
		{Sequence: 10, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED, TrackingNo: tn},
		{Sequence: 10, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED, TrackingNo: tn, Chute: 998},
		{Sequence: 10, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_RECIRCULATED},
	} {
		_, err := m.confirm(bad)
		wantCode(t, err, codes.InvalidArgument, "")
	}
	_, err = m.confirm(&stationv1.ConfirmRequest{Sequence: 10, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_RECIRCULATED, TrackingNo: "SG12"})
	wantCode(t, err, codes.InvalidArgument, "INVALID_TRACKING_NO")
	if n := st.Count(`SELECT count(*) FROM sorter_confirms`); n != 2 {
		t.Fatalf("%d confirms recorded, want 2", n)
	}
}

func TestChuteFullSendsParcelsToTheNextChuteThenOverflowUntilCleared(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	tn := sim.ViaStation(station, 0)
	hop := route(t, st, tn)
	// Give the parcel's next hop two chutes.
	cm := chuteMap(t, st)
	next := cm.ChuteMap
	next.NextHops = map[string][]int{}
	for h, cs := range cm.NextHops {
		next.NextHops[h] = cs
	}
	next.NextHops[hop] = []int{cm.NextHops[hop][0], 500}
	if _, err := st.App.Sorting().Chutes().Put(context.Background(), station, next, cm.Version, "test"); err != nil {
		t.Fatal(err)
	}
	first, second := int32(next.NextHops[hop][0]), int32(500)
	m.presortAll(tn)
	seq := uint64(0)
	report := func(outcome stationv1.ConfirmOutcome, chute int32) {
		t.Helper()
		seq++
		if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: seq, Outcome: outcome, Chute: chute}); err != nil {
			t.Fatal(err)
		}
	}
	chute := func() *stationv1.Decision { return m.resolve(tn) }

	if d := chute(); d.GetChute() != first {
		t.Fatalf("before any report: %v", d)
	}
	report(stationv1.ConfirmOutcome_CONFIRM_OUTCOME_CHUTE_FULL, first)
	if d := chute(); d.GetChute() != second || d.GetChuteKind() != stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP {
		t.Fatalf("first chute full: %v", d)
	}
	report(stationv1.ConfirmOutcome_CONFIRM_OUTCOME_CHUTE_FULL, second)
	if d := chute(); int(d.GetChute()) != next.OverflowChute || d.GetReasonCode() != sorting.ReasonChuteFull ||
		d.GetNextHop() != hop {
		t.Fatalf("every chute full: %v", d)
	}
	// A second instance sees the same state (from Redis/PostgreSQL).
	other := start(t, stationtest.Options{Join: st})
	if d := m.on(other).resolve(tn); int(d.GetChute()) != next.OverflowChute {
		t.Fatalf("other instance: %v", d)
	}
	report(stationv1.ConfirmOutcome_CONFIRM_OUTCOME_CHUTE_CLEARED, first)
	if d := chute(); d.GetChute() != first {
		t.Fatalf("first chute cleared: %v", d)
	}
	eventually(t, "other instance hears the clearing", func() bool { return m.on(other).resolve(tn).GetChute() == first })
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE type = 'sorter_confirm' AND subject_id LIKE 'chute:%'`); n != 3 {
		t.Fatalf("%d chute work orders", n)
	}
}

func TestManualResortAndInterceptDropTheBeltAnswerOnEveryInstance(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	other := start(t, stationtest.Options{Join: st})
	m := newMachine(t, st, station, "asm1")
	m2 := m.on(other)
	resorted := sim.ViaStation(station, 0)
	d := m.presortAll(resorted)[0]
	presorted := stationv1.DecisionSource_DECISION_SOURCE_PRESORTED
	// Both instances answer from the table (and cache the answer).
	for range 2 {
		if a, b := m.resolve(resorted), m2.resolve(resorted); a.GetSource() != presorted || b.GetSource() != presorted || a.GetDegraded() {
			t.Fatalf("not answered from the table: %v, %v", a, b)
		}
	}
	// The world changes so that a fresh sort differs from the pre-sort (a
	// degradable check is down: fresh answers are marked degraded), and an
	// operator re-sorts the parcel by hand.
	if err := st.Sim.SetFault("ValidateAddress", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	st.Do("POST", "/api/v1/sort", st.Login("op1"), map[string]string{"tracking_no": resorted, "scan_id": "manual-1"}, 200, nil)
	// On the instance that took the manual sort the old answer is gone at
	// once; the retries only absorb an on-the-fly sort that a loaded test
	// machine could not finish in time (answered with the reject chute).
	eventually(t, "this instance drops its answer", func() bool {
		got := m.resolve(resorted)
		if got.GetSource() == presorted && !got.GetDegraded() {
			t.Fatalf("instance that took the manual sort still answers the old pre-sort: %v", got)
		}
		return got.GetDegraded()
	})
	eventually(t, "other instance drops its answer", func() bool { return m2.resolve(resorted).GetDegraded() })

	// A parcel pre-sorted while it was still normal, intercepted since: its
	// stored answer (written as the pre-sort left it) diverts it to its
	// next hop until the inbound scan finds the intercept.
	intercepted := stationtest.Parcel(st.Sim.Fixtures(), station, sim.Intercepted, 0)
	hop := route(t, st, sim.ViaStation(station, 0))
	if _, err := st.App.DB().Exec(context.Background(), `
		INSERT INTO presort_results (station_id, tracking_no, next_hop, flow, flow_version, source, sorted_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, 'presort', now() - interval '1 minute', now() + interval '1 hour')`,
		station, intercepted, hop, d.GetFlow(), d.GetFlowVersion()); err != nil {
		t.Fatal(err)
	}
	if got := m2.resolve(intercepted); got.GetNextHop() != hop || got.GetSource() != presorted {
		t.Fatalf("stale answer not served before the intercept was known: %v", got)
	}
	token := st.Login("op1")
	for i := 0; ; i++ {
		var rc sorting.Receipt
		st.Do("POST", "/api/v1/receive", token, map[string]string{"tracking_no": intercepted, "scan_id": fmt.Sprint("rcv-", i)}, 200, &rc)
		if rc.Exception != nil && rc.Exception.Code == sorting.CodeIntercepted {
			break
		}
		if i == 10 { // a loaded machine may time the check out; a scanner would scan again
			t.Fatalf("receipt %+v", rc)
		}
	}
	for _, mm := range []*machine{m, m2} {
		eventually(t, "intercepted parcel to the exception chute", func() bool {
			got := mm.resolve(intercepted)
			return got.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_EXCEPTION && got.GetReasonCode() == sorting.CodeIntercepted
		})
	}
}

func TestAuthAndBadInput(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	other := newMachine(t, st, "SG-H02", "asm2")
	tn := sim.ViaStation(station, 0)

	// Health and reflection need no key.
	conn := healthpb.NewHealthClient(dialConn(t, st.GRPCAddr))
	if r, err := conn.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil || r.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v %v", r, err)
	}
	_, err := m.cli.Resolve(context.Background(), &stationv1.ResolveRequest{TrackingNo: tn})
	wantCode(t, err, codes.Unauthenticated, "")
	bad := &machine{t: t, key: "sk_" + strings.Repeat("A", 43), cli: m.cli}
	_, err = bad.cli.Resolve(bad.ctx(), &stationv1.ResolveRequest{TrackingNo: tn})
	wantCode(t, err, codes.Unauthenticated, "")
	_, err = other.cli.Resolve(other.ctx(), &stationv1.ResolveRequest{StationId: station, TrackingNo: tn})
	wantCode(t, err, codes.PermissionDenied, "OTHER_STATION")
	_, err = other.cli.PreSort(other.ctx(), &stationv1.PreSortRequest{StationId: station, TrackingNos: []string{tn}})
	wantCode(t, err, codes.PermissionDenied, "OTHER_STATION")
	_, err = other.confirm(&stationv1.ConfirmRequest{StationId: station, Sequence: 1, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_NO_READ})
	wantCode(t, err, codes.PermissionDenied, "OTHER_STATION")
	_, err = m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{StationId: "SG-H77", TrackingNo: tn})
	wantCode(t, err, codes.NotFound, "UNKNOWN_STATION")
	_, err = m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{StationId: "sg h01", TrackingNo: tn})
	wantCode(t, err, codes.InvalidArgument, "INVALID_STATION_ID")
	_, err = m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{TrackingNo: "SG12"})
	wantCode(t, err, codes.InvalidArgument, "INVALID_TRACKING_NO")

	// A batch with bad codes names each one; one over the limit is refused.
	_, err = m.cli.PreSort(m.ctx(), &stationv1.PreSortRequest{TrackingNos: []string{tn, "SG1", "XX-1", sim.ViaStation(station, 1)}})
	s := wantCode(t, err, codes.InvalidArgument, "INVALID_TRACKING_NO")
	if !strings.Contains(fmt.Sprint(s.Details()), "tracking_nos[1]") || !strings.Contains(fmt.Sprint(s.Details()), "tracking_nos[2]") {
		t.Fatalf("details %v", s.Details())
	}
	big := make([]string, 10001)
	for i := range big {
		big[i] = tn
	}
	_, err = m.cli.PreSort(m.ctx(), &stationv1.PreSortRequest{TrackingNos: big})
	wantCode(t, err, codes.InvalidArgument, "BATCH_SIZE")
	_, err = m.cli.PreSort(m.ctx(), &stationv1.PreSortRequest{})
	wantCode(t, err, codes.InvalidArgument, "BATCH_SIZE")
	for _, q := range []string{`SELECT count(*) FROM presort_results`, `SELECT count(*) FROM work_orders`, `SELECT count(*) FROM sorter_confirms`} {
		if n := st.Count(q); n != 0 {
			t.Fatalf("%s: %d rows written by refused calls", q, n)
		}
	}
	// Another station's stream ends with PermissionDenied.
	stream, err := other.cli.ResolveStream(other.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stationv1.ResolveStreamRequest{StationId: station, TrackingNo: tn}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, err, codes.PermissionDenied, "OTHER_STATION")
}

func TestOverloadIsRefusedNotQueued(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{Config: func(c *config.Config) { c.Sorter.PerSorter = 1 }})
	m := newMachine(t, st, station, "asm1")
	calm := newMachine(t, st, station, "asm2")
	// An open stream holds the sorter's only slot.
	stream, err := m.cli.ResolveStream(m.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stationv1.ResolveStreamRequest{TrackingNo: sim.ViaStation(station, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	_, err = m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{TrackingNo: sim.ViaStation(station, 1)})
	wantCode(t, err, codes.ResourceExhausted, "SORTER_OVERLOADED")
	// Another sorter has its own budget.
	calm.resolve(sim.ViaStation(station, 1))
	_ = stream.CloseSend()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	eventually(t, "slot released", func() bool {
		_, err := m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{TrackingNo: sim.ViaStation(station, 1)})
		return err == nil
	})
}

func TestGracefulShutdownEndsOpenStreamsAfterTheirAnswers(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm1")
	stream, err := m.cli.ResolveStream(m.ctx())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&stationv1.ResolveStreamRequest{RequestId: 1, TrackingNo: sim.ViaStation(station, 0)}); err != nil {
		t.Fatal(err)
	}
	if r, err := stream.Recv(); err != nil || r.GetRequestId() != 1 {
		t.Fatalf("first answer: %v %v", r, err)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- st.Stop() }()
	// The stream ends with Unavailable/SHUTTING_DOWN (reconnect elsewhere),
	// not with a cut connection after the grace period.
	_, err = stream.Recv()
	wantCode(t, err, codes.Unavailable, "SHUTTING_DOWN")
	if err := <-stopped; err != nil {
		t.Fatalf("station stopped with %v", err)
	}
}

// A stream opened before its key was revoked does not outlive the key: it
// ends with Unauthenticated, as a new call with that key would, while
// another machine's stream keeps answering.
func TestARevokedKeyClosesTheStreamItOpened(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{Config: func(c *config.Config) { c.Sorter.KeyCacheTTL = 20 * time.Millisecond }})
	gone, kept := newMachine(t, st, station, "asm-gone"), newMachine(t, st, station, "asm-kept")
	open := func(m *machine) stationv1.SorterService_ResolveStreamClient {
		t.Helper()
		s, err := m.cli.ResolveStream(m.ctx())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&stationv1.ResolveStreamRequest{RequestId: 1, TrackingNo: sim.ViaStation(station, 0)}); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Recv(); err != nil || r.GetRequestId() != 1 {
			t.Fatalf("first answer: %v %v", r, err)
		}
		return s
	}
	goneStream, keptStream := open(gone), open(kept)
	if err := st.App.Sorters().RevokeSorter(context.Background(), "asm-gone"); err != nil {
		t.Fatal(err)
	}
	_, err := goneStream.Recv()
	wantCode(t, err, codes.Unauthenticated, "")
	// The other stream has been checked again meanwhile (every 10 ms here)
	// and still answers.
	for i := range 3 {
		id := uint64(2 + i)
		if err := keptStream.Send(&stationv1.ResolveStreamRequest{RequestId: id, TrackingNo: sim.ViaStation(station, i+1)}); err != nil {
			t.Fatal(err)
		}
		if r, err := keptStream.Recv(); err != nil || r.GetRequestId() != id {
			t.Fatalf("kept stream, answer %d: %v %v", id, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := keptStream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

func TestRevokedAndRotatedKeysAreRefused(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{Config: func(c *config.Config) { c.Sorter.KeyCacheTTL = 10 * time.Millisecond }})
	m := newMachine(t, st, station, "asm-leaked")
	tn := sim.ViaStation(station, 0)
	m.resolve(tn)
	sorters := st.App.Sorters()

	// The key leaked: rotate it. The machine keeps its id with a new key;
	// the old one is refused once the instance's cache entry has aged out.
	key, err := sorters.RotateSorterKey(context.Background(), "asm-leaked")
	if err != nil {
		t.Fatal(err)
	}
	if key == m.key {
		t.Fatal("rotation returned the old key")
	}
	eventually(t, "the old key refused", func() bool {
		_, err := m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{TrackingNo: tn})
		return status.Code(err) == codes.Unauthenticated
	})
	rotated := &machine{t: t, st: st, key: key, cli: m.cli}
	rotated.resolve(tn)

	// Decommissioned: revoke; nothing answers the key any more.
	if err := sorters.RevokeSorter(context.Background(), "asm-leaked"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revoked key refused", func() bool {
		_, err := rotated.cli.Resolve(rotated.ctx(), &stationv1.ResolveRequest{TrackingNo: tn})
		return status.Code(err) == codes.Unauthenticated
	})
	for _, id := range []string{"asm-nope"} {
		if err := sorters.RevokeSorter(context.Background(), id); !errors.Is(err, auth.ErrSorterNotFound) {
			t.Fatalf("revoke %s: %v", id, err)
		}
		if _, err := sorters.RotateSorterKey(context.Background(), id); !errors.Is(err, auth.ErrSorterNotFound) {
			t.Fatalf("rotate %s: %v", id, err)
		}
	}
}
