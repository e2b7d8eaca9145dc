package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/stationtest"
)

type sortAnswer struct {
	sorting.Result
	Trace *struct {
		Flow  string `json:"flow"`
		Nodes []struct {
			Node    string `json:"node"`
			Outcome string `json:"outcome"`
		} `json:"nodes"`
	} `json:"trace"`
}

func sortParcel(t *testing.T, st *stationtest.Station, token, tn, scanID string) sortAnswer {
	t.Helper()
	var a sortAnswer
	st.Do("POST", "/api/v1/sort?trace=1", token, map[string]string{"tracking_no": tn, "scan_id": scanID}, http.StatusOK, &a)
	return a
}

func TestSortAnswersNextHopAndChuteAndRecordsEverything(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	tn := sim.ViaStation("SG-H01", 0)
	a := sortParcel(t, st, token, " "+strings.ToLower(tn)+"\r\n", "scan-1")

	if a.Exception != nil || a.NextHop == nil || a.Chute == 0 {
		t.Fatalf("sort = %+v", a.Result)
	}
	want, _ := st.Sim.Fixtures().Route("SG-H01", mustParcel(t, st, tn).Destination)
	if *a.NextHop != want {
		t.Fatalf("next hop %s, want %s", *a.NextHop, want)
	}
	if a.TrackingNo != tn || a.StationID != "SG-H01" || a.Flow != "full" || a.FlowVersion != 1 || a.WorkOrderID == "" {
		t.Fatalf("answer fields: %+v", a.Result)
	}
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE id = $1 AND type = 'sort' AND actor_id = 'op1' AND outcome = 'ok'`, a.WorkOrderID); n != 1 {
		t.Fatalf("%d work orders", n)
	}
	if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE work_order_id = $1 AND type = 'sorted' AND tracking_no = $2 AND station_id = 'SG-H01'`, a.WorkOrderID, tn); n != 1 {
		t.Fatalf("%d outbox events", n)
	}
	var latest sorting.Result
	st.Do("GET", "/api/v1/sort/"+tn, token, nil, http.StatusOK, &latest)
	if latest.WorkOrderID != a.WorkOrderID {
		t.Fatalf("latest = %+v", latest)
	}
	// Another station's operator does not see it.
	st.ExpectError("GET", "/api/v1/sort/"+tn, st.Login("op2"), nil, http.StatusNotFound, "not_found")
}

func mustParcel(t *testing.T, st *stationtest.Station, tn string) sim.Parcel {
	t.Helper()
	p, err := st.Sim.Fixtures().Parcel(tn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEveryExceptionCode(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	fx := st.Sim.Fixtures()
	sg, br := st.Login("op1"), st.Login("br1")
	cases := []struct {
		kind    sim.Kind
		station string
		token   string
		code    string
	}{
		{sim.Unknown, "SG-H01", sg, sorting.CodeUnknownWaybill},
		{sim.Cancelled, "SG-H01", sg, sorting.CodeCancelled},
		{sim.Intercepted, "SG-H01", sg, sorting.CodeIntercepted},
		{sim.Unpaid, "SG-H01", sg, sorting.CodeUnpaid},
		{sim.Restricted, "SG-H01", sg, sorting.CodeRestricted},
		{sim.Elsewhere, "SG-H01", sg, sorting.CodeWrongStation},
		{sim.CODOverLimit, "SG-H01", sg, sorting.CodeCODLimit},
		{sim.BlockedCustomer, "SG-H01", sg, sorting.CodeCustomerBlocked},
		{sim.BadAddress, "SG-H01", sg, sorting.CodeBadAddress},
		{sim.OutForDelivery, "SG-H01", sg, sorting.CodeAlreadyOut},
		{sim.Delivered, "SG-H01", sg, sorting.CodeAlreadyDelivered},
		{sim.Unserved, "SG-H01", sg, sorting.CodeNoRoute},
		{sim.InactiveDestination, "SG-H01", sg, sorting.CodeNoRoute},
		{sim.NoFiscalDoc, "BR-H01", br, sorting.CodeNoFiscalDoc},
	}
	for i, c := range cases {
		t.Run(c.kind.String(), func(t *testing.T) {
			tn := stationtest.Parcel(fx, c.station, c.kind, 0)
			a := sortParcel(t, st, c.token, tn, fmt.Sprintf("exc-%d", i))
			if a.Exception == nil || a.Exception.Code != c.code {
				t.Fatalf("%s: exception %+v, want %s", tn, a.Exception, c.code)
			}
			m, err := st.App.Sorting().Chutes().Get(context.Background(), c.station)
			if err != nil {
				t.Fatal(err)
			}
			if a.Chute != m.ExceptionChute || a.NextHop != nil || a.Exception.Reason == "" {
				t.Fatalf("exception parcel: chute %d (exception chute %d), next hop %v", a.Chute, m.ExceptionChute, a.NextHop)
			}
			if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE work_order_id = $1 AND type = 'exception' AND payload->>'code' = $2`, a.WorkOrderID, c.code); n != 1 {
				t.Fatalf("exception event missing")
			}
		})
	}
}

func TestEachMarketRunsItsOwnFlow(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	fx := st.Sim.Fixtures()
	cases := []struct {
		operator, station, flow string
		has, hasNot             []string
	}{
		{"op1", "SG-H01", "full", []string{"check_billing", "check_via_station", "check_address", "get_route"}, []string{"check_fiscal_document"}},
		{"vn1", "VN-H01", "lean", []string{"fetch_waybill", "get_route", "resolve_chute"}, []string{"check_billing", "check_station_site"}},
		{"br1", "BR-H01", "br", []string{"check_fiscal_document", "check_billing"}, nil},
	}
	for _, c := range cases {
		t.Run(c.flow, func(t *testing.T) {
			a := sortParcel(t, st, st.Login(c.operator), fx.ViaStation(c.station, 0), "flow-"+c.flow)
			if a.Flow != c.flow || a.Trace == nil || a.Exception != nil {
				t.Fatalf("flow %s, trace %v, exception %+v", a.Flow, a.Trace != nil, a.Exception)
			}
			var ran []string
			for _, n := range a.Trace.Nodes {
				if n.Outcome == "ok" {
					ran = append(ran, n.Node)
				}
			}
			for _, s := range c.has {
				if !slices.Contains(ran, s) {
					t.Errorf("%s did not run %s (ran %v)", c.flow, s, ran)
				}
			}
			for _, s := range c.hasNot {
				if slices.Contains(ran, s) {
					t.Errorf("%s ran %s", c.flow, s)
				}
			}
		})
	}
}

func TestCODConditionRunsTheLimitCheckOnlyForCOD(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	outcome := func(tn string) string {
		a := sortParcel(t, st, token, tn, "cod-"+tn)
		for _, n := range a.Trace.Nodes {
			if n.Node == "check_cod_limit" {
				return n.Outcome
			}
		}
		return "absent"
	}
	if got := outcome(stationtest.Parcel(st.Sim.Fixtures(), "SG-H01", sim.COD, 0)); got != "ok" {
		t.Fatalf("COD parcel: check_cod_limit %s", got)
	}
	if got := outcome(sim.ViaStation("SG-H01", 1)); got != "skipped" {
		t.Fatalf("prepaid parcel: check_cod_limit %s", got)
	}
}

func TestDegradableDependencyDownGivesADegradedSort(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{Sim: []simtest.Option{
		simtest.WithFault("ValidateAddress", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}),
	}})
	a := sortParcel(t, st, st.Login("op1"), sim.ViaStation("SG-H01", 0), "deg-1")
	if a.Exception != nil || a.NextHop == nil {
		t.Fatalf("degraded sort failed: %+v", a.Result)
	}
	if len(a.Degraded) != 1 || a.Degraded[0].Node != "check_address" {
		t.Fatalf("degraded = %+v", a.Degraded)
	}
}

func TestFatalDependencyDownGivesDownstreamUnavailableInTime(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{Sim: []simtest.Option{
		simtest.WithFault("GetDeliveryStatus", sim.Fault{Hang: true}),
	}})
	a := sortParcel(t, st, st.Login("op1"), sim.ViaStation("SG-H01", 0), "down-1")
	if a.Exception == nil || a.Exception.Code != sorting.CodeDownstreamUnavailable {
		t.Fatalf("exception %+v", a.Exception)
	}
	if !strings.Contains(a.Exception.Reason, "check_delivery_status") {
		t.Fatalf("reason %q does not name the step", a.Exception.Reason)
	}
	for _, n := range a.Trace.Nodes {
		if n.Node == "check_delivery_status" && n.Outcome != "timed_out" {
			t.Fatalf("check_delivery_status outcome %s", n.Outcome)
		}
	}
}

func TestReplayReturnsTheOriginalBytesAndWritesNothing(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	tn := sim.ViaStation("SG-H01", 0)
	body := map[string]string{"tracking_no": tn, "scan_id": "replay-1"}
	first := st.Send("POST", "/api/v1/sort", token, body)
	second := st.Send("POST", "/api/v1/sort", token, fmt.Sprintf(`{ "scan_id":"replay-1",  "tracking_no":" %s" }`, strings.ToLower(tn)))
	if first.Status != 200 || second.Status != 200 || string(first.Body) != string(second.Body) {
		t.Fatalf("replay differs:\n%s\n%s", first.Body, second.Body)
	}
	if second.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("replay not flagged")
	}
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = 'replay-1'`); n != 1 {
		t.Fatalf("%d work orders", n)
	}
	if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE tracking_no = $1`, tn); n != 1 {
		t.Fatalf("%d events", n)
	}
	st.ExpectError("POST", "/api/v1/sort", token, map[string]string{"tracking_no": sim.ViaStation("SG-H01", 1), "scan_id": "replay-1"},
		http.StatusConflict, "scan_id_reused")
	// The same scan id at another station is another scan.
	st.Do("POST", "/api/v1/sort", st.Login("op2"), map[string]string{"tracking_no": sim.ViaStation("SG-H02", 0), "scan_id": "replay-1"}, http.StatusOK, nil)
}

// A retry gets the first answer even when the sort could not run now: the
// replay is found by the scan id, not by recording a new answer.
func TestReplayAnswersWhenTheSortCannotRunAnyMore(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	sort := map[string]string{"tracking_no": sim.ViaStation("SG-H01", 0), "scan_id": "before-1"}
	first := st.Send("POST", "/api/v1/sort", token, sort)
	if first.Status != http.StatusOK {
		t.Fatalf("first answer %d %s", first.Status, first.Body)
	}
	if _, err := st.App.DB().Exec(context.Background(), `DELETE FROM chute_maps WHERE station_id = 'SG-H01'`); err != nil {
		t.Fatal(err)
	}
	st.App.Sorting().Chutes().Forget("SG-H01")
	st.ExpectError("POST", "/api/v1/sort", token, map[string]string{"tracking_no": sim.ViaStation("SG-H01", 1), "scan_id": "after-1"},
		http.StatusConflict, "no_chute_map")
	again := st.Send("POST", "/api/v1/sort", token, sort)
	if again.Status != http.StatusOK || string(again.Body) != string(first.Body) || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry without a chute map: %d %s (replayed %q), want the first answer %s",
			again.Status, again.Body, again.Header.Get("Idempotent-Replayed"), first.Body)
	}
	st.ExpectError("POST", "/api/v1/sort", token, map[string]string{"tracking_no": sim.ViaStation("SG-H01", 1), "scan_id": "before-1"},
		http.StatusConflict, "scan_id_reused")
}

func TestConcurrentRequestsWithOneScanIDMakeOneWorkOrder(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	body := map[string]string{"tracking_no": sim.ViaStation("SG-H01", 0), "scan_id": "race-1"}
	var wg sync.WaitGroup
	bodies := make([]string, 50)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := st.Send("POST", "/api/v1/sort", token, body)
			if r.Status != http.StatusOK {
				t.Errorf("status %d: %s", r.Status, r.Body)
			}
			bodies[i] = string(r.Body)
		}()
	}
	wg.Wait()
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("answers differ:\n%s\n%s", bodies[0], b)
		}
	}
	if n := st.Count(`SELECT count(*) FROM work_orders WHERE scan_id = 'race-1'`); n != 1 {
		t.Fatalf("%d work orders", n)
	}
	if n := st.Count(`SELECT count(*) FROM sort_results`); n != 1 {
		t.Fatalf("%d sort results", n)
	}
}

func TestSortResultWorkOrderAndOutboxCommitTogetherOrNotAtAll(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	doomed := sim.ViaStation("SG-H01", 0)
	// Kill the transaction midway: the sort_results insert fails after the
	// work order and the outbox rows were written in the same transaction.
	_, err := st.App.DB().Exec(context.Background(), fmt.Sprintf(`
		CREATE FUNCTION fail_sort() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.tracking_no = '%s' THEN RAISE EXCEPTION 'killed midway'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER fail_sort BEFORE INSERT ON sort_results FOR EACH ROW EXECUTE FUNCTION fail_sort();`, doomed))
	if err != nil {
		t.Fatal(err)
	}
	r := st.Send("POST", "/api/v1/sort", token, map[string]string{"tracking_no": doomed, "scan_id": "doomed"})
	if r.Status != http.StatusInternalServerError {
		t.Fatalf("status %d: %s", r.Status, r.Body)
	}
	for _, q := range []string{
		`SELECT count(*) FROM work_orders WHERE tracking_no = $1`,
		`SELECT count(*) FROM tracking_outbox WHERE tracking_no = $1`,
		`SELECT count(*) FROM sort_results WHERE tracking_no = $1`,
	} {
		if n := st.Count(q, doomed); n != 0 {
			t.Fatalf("%s: %d rows survived a failed transaction", q, n)
		}
	}
	// The scan id was not consumed: the retry after the fault succeeds.
	if _, err := st.App.DB().Exec(context.Background(), `DROP TRIGGER fail_sort ON sort_results`); err != nil {
		t.Fatal(err)
	}
	st.Do("POST", "/api/v1/sort", token, map[string]string{"tracking_no": doomed, "scan_id": "doomed"}, http.StatusOK, nil)
}

func TestBadSortRequestsAreRejectedAndNothingWritten(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	cases := []struct {
		body   string
		status int
		code   string
	}{
		{`{"tracking_no":"SG12","scan_id":"b1"}`, 400, "invalid_tracking_no"},
		{`{"tracking_no":"XX-1000000001","scan_id":"b2"}`, 400, "invalid_tracking_no"},
		{`{"tracking_no":"SG1000000001"}`, 400, "missing_scan_id"},
		{`{"tracking_no":"SG1000000001","scan_id":"b3","station_id":"SG-H02"}`, 400, "invalid_json"},
		{`{"tracking_no":"SG1000000001","scan_id":"b4","operator_id":"boss"}`, 400, "invalid_json"},
		{`{"tracking_no":1000000001,"scan_id":"b5"}`, 400, "invalid_json"},
		{`not json`, 400, "invalid_json"},
	}
	for _, c := range cases {
		st.ExpectError("POST", "/api/v1/sort", token, c.body, c.status, c.code)
	}
	st.ExpectError("POST", "/api/v1/sort", "", `{"tracking_no":"SG1000000001","scan_id":"b6"}`, 401, "unauthenticated")
	if n := st.Count(`SELECT count(*) FROM work_orders`); n != 0 {
		t.Fatalf("%d work orders written by bad requests", n)
	}
}

func TestReceive(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	fx := st.Sim.Fixtures()
	token := st.Login("op1")
	type receipt struct {
		sorting.Receipt
	}
	cases := []struct {
		tn   string
		code string
	}{
		{sim.ViaStation("SG-H01", 0), ""},
		{sim.WrongStation("SG-H01", 0), sorting.CodeWrongStation},
		{stationtest.Parcel(fx, "SG-H01", sim.Cancelled, 0), sorting.CodeCancelled},
		{stationtest.Parcel(fx, "SG-H01", sim.Intercepted, 0), sorting.CodeIntercepted},
		{stationtest.Parcel(fx, "SG-H01", sim.Unknown, 0), sorting.CodeUnknownWaybill},
	}
	for i, c := range cases {
		var r receipt
		st.Do("POST", "/api/v1/receive", token, map[string]string{"tracking_no": c.tn, "scan_id": fmt.Sprintf("rcv-%d", i)}, http.StatusOK, &r)
		if c.code == "" {
			if !r.Accepted || r.Exception != nil {
				t.Fatalf("%s: %+v", c.tn, r.Receipt)
			}
			if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE work_order_id = $1 AND type = 'arrived'`, r.WorkOrderID); n != 1 {
				t.Fatal("no arrived event")
			}
			continue
		}
		if r.Accepted || r.Exception == nil || r.Exception.Code != c.code {
			t.Fatalf("%s: %+v, want %s", c.tn, r.Receipt, c.code)
		}
	}
	if n := st.Count(`SELECT count(*) FROM receipts`); n != len(cases) {
		t.Fatalf("%d receipts", n)
	}
}

func TestChuteMapAPI(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	sup, op := st.Login("sup1"), st.Login("op1")
	var m sorting.StoredChuteMap
	r := st.Do("GET", "/api/v1/stations/SG-H01/chutes", op, nil, http.StatusOK, &m)
	if m.Version != 1 || r.Header.Get("ETag") != `"1"` {
		t.Fatalf("version %d etag %s", m.Version, r.Header.Get("ETag"))
	}
	next := m.ChuteMap
	next.NextHops = map[string][]int{"SG-H02": {1, 2}, "SG-H03": {3}}
	for hop, cs := range m.NextHops {
		if _, ok := next.NextHops[hop]; !ok {
			next.NextHops[hop] = []int{cs[0] + 100}
		}
	}
	st.ExpectError("PUT", "/api/v1/stations/SG-H01/chutes", op, next, http.StatusForbidden, "forbidden")
	st.ExpectError("PUT", "/api/v1/stations/SG-H01/chutes", sup, next, http.StatusPreconditionRequired, "precondition_required")
	ok := st.Send("PUT", "/api/v1/stations/SG-H01/chutes", sup, next, "If-Match", `"1"`)
	if ok.Status != 200 {
		t.Fatalf("put: %d %s", ok.Status, ok.Body)
	}
	stale := st.Send("PUT", "/api/v1/stations/SG-H01/chutes", sup, next, "If-Match", `"1"`)
	if stale.Status != http.StatusPreconditionFailed {
		t.Fatalf("stale write: %d %s", stale.Status, stale.Body)
	}
	bad := next
	bad.NextHops = map[string][]int{"SG-H02": {1}, "SG-H03": {1}, "nope": {}}
	bad.OverflowChute = 0
	var e stationtest.APIError
	resp := st.Send("PUT", "/api/v1/stations/SG-H01/chutes", sup, bad, "If-Match", `"2"`)
	if resp.Status != 400 || json.Unmarshal(resp.Body, &e) != nil || e.Error.Code != "invalid_chute_map" {
		t.Fatalf("invalid map: %d %s", resp.Status, resp.Body)
	}
	if problems, _ := e.Error.Details["problems"].([]any); len(problems) < 3 {
		t.Fatalf("problems not all reported: %v", e.Error.Details)
	}
	// Another station's chute map is off limits.
	st.ExpectError("GET", "/api/v1/stations/SG-H02/chutes", op, nil, http.StatusForbidden, "forbidden")
	// The new map sorts at once on this instance.
	tn := ""
	for i := 0; tn == ""; i++ {
		c := sim.ViaStation("SG-H01", i)
		if hop, _ := st.Sim.Fixtures().Route("SG-H01", mustParcel(t, st, c).Destination); hop == "SG-H02" {
			tn = c
		}
	}
	a := sortParcel(t, st, op, tn, "after-map-change")
	if a.Chute != 1 {
		t.Fatalf("chute %d after the map change, want 1", a.Chute)
	}
}

func stringsContains(s, sub string) bool { return strings.Contains(s, sub) }
