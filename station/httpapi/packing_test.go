package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/ratelimit"
	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/workorder"
)

// packingHarness is the HTTP edge with packing and the ops outbox API
// wired to a real simulator (container and linehaul over loopback gRPC).
type packingHarness struct {
	*harness
	sim   *sim.Simulator
	op    string // token of an operator at SG-H01
	other string // token of an operator at SG-H02
	ops   string // token of an ops user
	seq   atomic.Int64
}

func newPackingHarness(t *testing.T) *packingHarness {
	t.Helper()
	h := newHarness(t)
	s := simtest.Start(t, simtest.WithZeroLatency())
	set, err := clients.Dial(context.Background(), clients.DefaultConfig().WithAddr(s.Addr()), clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	rdb, prefix := dbtest.Redis(t)
	core, logs := observer.New(zap.DebugLevel)
	h.logs = logs
	h.srv = New(Config{MaxBodyBytes: 1 << 20, LoginPerMinute: 50, RequestsPerSecond: 1000}, Deps{
		Log: zap.New(core), Auth: h.auth, Limiter: ratelimit.New(rdb, prefix),
		Registry: prometheus.NewRegistry(), Ready: h.ready,
		Packing: packing.New(h.db, set.Container, set.Linehaul),
		Outbox:  workorder.NewOutbox(h.db),
	})
	h.http.Close()
	h.http = httptest.NewServer(h.srv.Handler())
	t.Cleanup(h.http.Close)
	ph := &packingHarness{harness: h, sim: s}
	h.addOperator("op-1", "SG-H01", auth.RoleOperator)
	h.addOperator("op-2", "SG-H02", auth.RoleSupervisor)
	h.addOperator("ops-1", "SG-H01", auth.RoleOps)
	ph.op, ph.other, ph.ops = h.login("op-1"), h.login("op-2"), h.login("ops-1")
	return ph
}

func (h *packingHarness) scan() string { return fmt.Sprintf("scan-%d", h.seq.Add(1)) }

// sortedParcel records a sort through the work-order door the way sorting
// does (packing decides on the parcel's state) and returns the parcel.
func (h *packingHarness) sortedParcel(nextHop string) string {
	h.t.Helper()
	no := fmt.Sprintf("SG%012d", 500000000000+h.seq.Add(1))
	o := workorder.Order{ID: workorder.NewID(), StationID: "SG-H01", Type: "sort", TrackingNo: no,
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op-test"}, ScanID: "sort-" + h.scan(),
		RequestHash: []byte{1}, Outcome: "ok", Response: []byte("{}"),
		Moves: []workorder.Move{{Op: workorder.OpSort, TrackingNo: no, To: workorder.StateSorted, NextHop: nextHop, Chute: 4}}}
	if _, err := workorder.Commit[json.RawMessage](context.Background(), h.db, o, nil); err != nil {
		h.t.Fatal(err)
	}
	return no
}

// raw sends a request and returns the response with its body.
func (h *packingHarness) raw(method, path, token string, body any) (*http.Response, []byte) {
	h.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, h.http.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, b
}

type detailedError struct {
	Error struct {
		Code    string         `json:"code"`
		Message string         `json:"message"`
		Details map[string]any `json:"details"`
	} `json:"error"`
}

func (h *packingHarness) refused(method, path, token string, body any, status int, code string) detailedError {
	h.t.Helper()
	var e detailedError
	h.do(method, path, token, body, status, &e)
	if e.Error.Code != code {
		h.t.Fatalf("%s %s: code %q, want %q (%s)", method, path, e.Error.Code, code, e.Error.Message)
	}
	return e
}

func (h *packingHarness) openBag(nextHop string) packing.Bag {
	h.t.Helper()
	var b packing.Bag
	h.do("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": nextHop, "scan_id": h.scan()}, http.StatusCreated, &b)
	return b
}

func (h *packingHarness) addItem(bagID, no string) {
	h.t.Helper()
	h.do("POST", "/api/v1/bags/"+bagID+"/items", h.op, map[string]any{"tracking_no": no, "scan_id": h.scan()}, http.StatusOK, nil)
}

func (h *packingHarness) sealedBag(nextHop string, n int) packing.Bag {
	h.t.Helper()
	b := h.openBag(nextHop)
	for range n {
		h.addItem(b.ID, h.sortedParcel(nextHop))
	}
	var sealed packing.Bag
	h.do("POST", "/api/v1/bags/"+b.ID+"/seal", h.op, map[string]any{"weight_g": 900 * n, "scan_id": h.scan()}, http.StatusOK, &sealed)
	return sealed
}

func TestBagLifecycleOverHTTP(t *testing.T) {
	h := newPackingHarness(t)
	scan := h.scan()
	resp, first := h.raw("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "SG-H02", "scan_id": scan})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != "false" {
		t.Fatalf("open: %d %s", resp.StatusCode, first)
	}
	resp, again := h.raw("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "SG-H02", "scan_id": scan})
	if resp.StatusCode != http.StatusCreated || resp.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(first, again) {
		t.Fatalf("replay: %d\n%s\n%s", resp.StatusCode, first, again)
	}
	var b packing.Bag
	if err := json.Unmarshal(first, &b); err != nil {
		t.Fatal(err)
	}
	h.refused("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "SG-L01", "scan_id": scan}, http.StatusConflict, "scan_id_reused")

	no := h.sortedParcel("SG-H02")
	addScan := h.scan()
	_, added := h.raw("POST", "/api/v1/bags/"+b.ID+"/items", h.op, map[string]any{"tracking_no": strings.ToLower(no), "scan_id": addScan})
	resp, addedAgain := h.raw("POST", "/api/v1/bags/"+b.ID+"/items", h.op, map[string]any{"tracking_no": strings.ToLower(no), "scan_id": addScan})
	if resp.StatusCode != http.StatusOK || !bytes.Equal(added, addedAgain) {
		t.Fatalf("add replay: %d\n%s\n%s", resp.StatusCode, added, addedAgain)
	}
	second := h.sortedParcel("SG-H02")
	h.addItem(b.ID, second)
	var ch packing.ItemChange
	h.do("DELETE", "/api/v1/bags/"+b.ID+"/items/"+second+"?scan_id="+h.scan(), h.op, nil, http.StatusOK, &ch)
	if ch.Action != "removed" || ch.ItemCount != 1 {
		t.Fatalf("remove: %+v", ch)
	}
	h.do("DELETE", "/api/v1/bags/"+b.ID+"/items/"+second, h.op, map[string]any{"scan_id": h.scan()}, http.StatusNotFound, nil)

	var list struct{ Bags []packing.Bag }
	h.do("GET", "/api/v1/bags?status=open", h.op, nil, http.StatusOK, &list)
	if len(list.Bags) != 1 || list.Bags[0].ID != b.ID || list.Bags[0].ItemCount != 1 {
		t.Fatalf("open bags: %+v", list)
	}
	h.refused("GET", "/api/v1/bags/"+b.ID+"/label", h.op, nil, http.StatusConflict, "bag_not_sealed")

	var sealed packing.Bag
	h.do("POST", "/api/v1/bags/"+b.ID+"/seal", h.op, map[string]any{"weight_g": 2500, "scan_id": h.scan()}, http.StatusOK, &sealed)
	if sealed.Status != packing.BagSealed || sealed.WeightG != 2500 || len(sealed.Items) != 1 {
		t.Fatalf("sealed: %+v", sealed)
	}
	var got packing.Bag
	h.do("GET", "/api/v1/bags/"+b.ID, h.op, nil, http.StatusOK, &got)
	if got.Status != packing.BagSealed || got.Items[0] != no {
		t.Fatalf("get: %+v", got)
	}

	resp, zpl := h.raw("GET", "/api/v1/bags/"+b.ID+"/label?format=zpl", h.op, nil)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/zpl") ||
		!bytes.Contains(zpl, []byte("^BC")) || !bytes.Contains(zpl, []byte(b.ID)) {
		t.Fatalf("zpl: %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), zpl)
	}
	resp, pic := h.raw("GET", "/api/v1/bags/"+b.ID+"/label?format=png", h.op, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("png: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if _, err := png.Decode(bytes.NewReader(pic)); err != nil {
		t.Fatal(err)
	}
	h.refused("GET", "/api/v1/bags/"+b.ID+"/label?format=pdf", h.op, nil, http.StatusBadRequest, "invalid_format")
}

func TestBagErrorCodesOverHTTP(t *testing.T) {
	h := newPackingHarness(t)
	b := h.openBag("SG-H02")
	items := "/api/v1/bags/" + b.ID + "/items"
	add := func(no string) map[string]any { return map[string]any{"tracking_no": no, "scan_id": h.scan()} }

	h.refused("POST", "/api/v1/bags", "", map[string]any{"next_hop": "SG-H02", "scan_id": h.scan()}, 401, "unauthenticated")
	h.refused("POST", "/api/v1/bags", h.op, `{"next_hop":`, 400, "invalid_json")
	h.refused("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "SG-H02", "scan_id": h.scan(), "station_id": "SG-H02"}, 400, "invalid_json")
	h.refused("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "SG-H02"}, 400, "missing_scan_id")
	h.refused("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "nowhere", "scan_id": h.scan()}, 400, "invalid_next_hop")
	h.refused("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "SG-H09", "scan_id": h.scan()}, 400, "unknown_next_hop")

	h.refused("POST", items, h.op, add("SG12"), 400, "invalid_tracking_no")
	h.refused("POST", items, h.op, add("SG999999999999"), 409, "not_sorted")
	h.refused("POST", items, h.op, add(h.sortedParcel("SG-L01")), 409, "wrong_next_hop")
	no := h.sortedParcel("SG-H02")
	h.addItem(b.ID, no)
	other := h.openBag("SG-H02")
	e := h.refused("POST", "/api/v1/bags/"+other.ID+"/items", h.op, add(no), 409, "already_bagged")
	if e.Error.Details["bag_id"] != b.ID || !strings.Contains(e.Error.Message, b.ID) {
		t.Fatalf("already_bagged does not name the bag: %+v", e.Error)
	}
	h.refused("POST", "/api/v1/bags/BG-NOPE/items", h.op, add(h.sortedParcel("SG-H02")), 404, "bag_not_found")
	h.refused("POST", items, h.other, add(h.sortedParcel("SG-H02")), 403, "forbidden")
	h.refused("GET", "/api/v1/bags/"+b.ID, h.other, nil, 403, "forbidden")
	h.refused("DELETE", items+"/"+h.sortedParcel("SG-H02")+"?scan_id="+h.scan(), h.op, nil, 404, "not_in_bag")
	h.refused("DELETE", items+"/"+no, h.op, nil, 400, "missing_scan_id")

	seal := "/api/v1/bags/" + other.ID + "/seal"
	h.refused("POST", seal, h.op, map[string]any{"weight_g": 500, "scan_id": h.scan()}, 409, "bag_empty")
	h.refused("POST", seal, h.op, map[string]any{"weight_g": 0, "scan_id": h.scan()}, 400, "invalid_weight")
	h.refused("POST", seal, h.op, map[string]any{"weight_g": "heavy", "scan_id": h.scan()}, 400, "invalid_json")
	h.do("POST", "/api/v1/bags/"+b.ID+"/seal", h.op, map[string]any{"weight_g": 700, "scan_id": h.scan()}, 200, nil)
	h.refused("POST", items, h.op, add(h.sortedParcel("SG-H02")), 409, "bag_sealed")
	h.refused("DELETE", items+"/"+no+"?scan_id="+h.scan(), h.op, nil, 409, "bag_sealed")
	h.refused("POST", "/api/v1/bags/"+b.ID+"/seal", h.op, map[string]any{"weight_g": 700, "scan_id": h.scan()}, 409, "bag_sealed")
	h.refused("GET", "/api/v1/bags?status=lost", h.op, nil, 400, "invalid_status")
}

func TestOpenBagWhenContainerServiceIsDown(t *testing.T) {
	h := newPackingHarness(t)
	if err := h.sim.SetFault("AllocateBagID", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	resp, body := h.raw("POST", "/api/v1/bags", h.op, map[string]any{"next_hop": "SG-H02", "scan_id": h.scan()})
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" ||
		!bytes.Contains(body, []byte(`"dependency_unavailable"`)) {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	var n int
	if err := h.db.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM bags) + (SELECT count(*) FROM work_orders)`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("wrote %d rows: %v", n, err)
	}
}

func TestHandoverOverHTTP(t *testing.T) {
	h := newPackingHarness(t)
	trip := h.sim.Fixtures().TripTo("SG-H01", "SG-H02")
	var ho packing.Handover
	h.do("POST", "/api/v1/handovers", h.op, map[string]any{"type": "linehaul", "trip_id": trip, "scan_id": h.scan()}, http.StatusCreated, &ho)
	path := "/api/v1/handovers/" + ho.ID

	h.refused("POST", "/api/v1/handovers", h.op, map[string]any{"type": "boat", "trip_id": trip, "scan_id": h.scan()}, 400, "invalid_handover")
	h.refused("POST", "/api/v1/handovers", h.op, map[string]any{"type": "linehaul", "trip_id": "TR-SG-H01-9X", "scan_id": h.scan()}, 400, "unknown_trip")
	h.refused("POST", "/api/v1/handovers", h.op, map[string]any{"type": "linehaul", "trip_id": sim.TripID("SG-H02", 1), "scan_id": h.scan()}, 409, "trip_other_station")
	h.refused("POST", path+"/close", h.op, map[string]any{"scan_id": h.scan()}, 409, "handover_empty")
	h.refused("GET", "/api/v1/handovers/nope", h.op, nil, 404, "handover_not_found")
	h.refused("GET", path, h.other, nil, 403, "forbidden")

	good := h.sealedBag("SG-H02", 2)
	h.refused("POST", path+"/bags", h.op, map[string]any{"bag_id": h.openBag("SG-H02").ID, "scan_id": h.scan()}, 409, "bag_not_sealed")
	h.refused("POST", path+"/bags", h.op, map[string]any{"bag_id": h.sealedBag("SG-L01", 1).ID, "scan_id": h.scan()}, 409, "next_hop_not_on_trip")
	var added packing.HandoverBagAdded
	h.do("POST", path+"/bags", h.op, map[string]any{"bag_id": good.ID, "scan_id": h.scan()}, 200, &added)
	if added.BagCount != 1 || added.ParcelCount != 2 {
		t.Fatalf("added %+v", added)
	}
	var rider packing.Handover
	h.do("POST", "/api/v1/handovers", h.op, map[string]any{"type": "lastmile", "rider_id": "R-17", "scan_id": h.scan()}, 201, &rider)
	e := h.refused("POST", "/api/v1/handovers/"+rider.ID+"/bags", h.op, map[string]any{"bag_id": good.ID, "scan_id": h.scan()}, 409, "bag_on_handover")
	if e.Error.Details["handover_id"] != ho.ID {
		t.Fatalf("details %v", e.Error.Details)
	}

	// Open handovers are listed, newest first, with their counts; a
	// terminal resumes one from this list.
	var list struct {
		Handovers []packing.HandoverSummary `json:"handovers"`
	}
	h.do("GET", "/api/v1/handovers?status=open", h.op, nil, 200, &list)
	if len(list.Handovers) != 2 || list.Handovers[0].ID != rider.ID || list.Handovers[1].ID != ho.ID ||
		list.Handovers[1].BagCount != 1 || list.Handovers[1].ParcelCount != 2 || list.Handovers[1].TripID != trip {
		t.Fatalf("open handovers %+v", list.Handovers)
	}
	h.do("GET", "/api/v1/handovers?status=open", h.other, nil, 200, &list)
	if len(list.Handovers) != 0 {
		t.Fatalf("another station sees %+v", list.Handovers)
	}
	h.refused("GET", "/api/v1/handovers?status=lost", h.op, nil, 400, "invalid_status")

	var closed packing.Handover
	h.do("POST", path+"/close", h.op, map[string]any{"scan_id": h.scan()}, 200, &closed)
	h.do("GET", "/api/v1/handovers?status=open", h.op, nil, 200, &list)
	if len(list.Handovers) != 1 || list.Handovers[0].ID != rider.ID {
		t.Fatalf("open handovers after a close %+v", list.Handovers)
	}
	if closed.Status != packing.HandoverClosed || closed.ParcelCount != 2 {
		t.Fatalf("closed %+v", closed)
	}
	h.refused("POST", path+"/close", h.op, map[string]any{"scan_id": h.scan()}, 409, "handover_closed")
	h.refused("POST", path+"/bags", h.op, map[string]any{"bag_id": h.sealedBag("SG-H02", 1).ID, "scan_id": h.scan()}, 409, "handover_closed")

	var m packing.Manifest
	h.do("GET", path+"/manifest", h.op, nil, 200, &m)
	if m.ParcelCount != 2 || len(m.Bags) != 1 || m.Bags[0].BagID != good.ID {
		t.Fatalf("manifest %+v", m)
	}
	resp, csv := h.raw("GET", path+"/manifest?format=csv", h.op, nil)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" || bytes.Count(csv, []byte("\r\n")) != 3 {
		t.Fatalf("csv %d %s\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), csv)
	}
	h.refused("GET", path+"/manifest?format=xml", h.op, nil, 400, "invalid_format")
	var departed int
	if err := h.db.QueryRow(context.Background(), `SELECT count(*) FROM tracking_outbox WHERE type = 'departed'`).Scan(&departed); err != nil || departed != 2 {
		t.Fatalf("%d departed events: %v", departed, err)
	}
}

func TestOutboxOpsAPI(t *testing.T) {
	h := newPackingHarness(t)
	h.sealedBag("SG-H02", 2) // 2 bagged + 2 bag_sealed events, pending
	var st workorder.Stats
	h.do("GET", "/api/v1/ops/outbox", h.ops, nil, 200, &st)
	if st.Pending != 4 || st.Dead != 0 || st.OldestPendingAt == nil {
		t.Fatalf("stats %+v", st)
	}
	h.refused("GET", "/api/v1/ops/outbox", h.op, nil, 403, "forbidden")
	h.refused("GET", "/api/v1/ops/outbox/dead", h.op, nil, 403, "forbidden")
	h.refused("POST", "/api/v1/ops/outbox/dead/1/retry", h.op, nil, 403, "forbidden")

	if _, err := h.db.Exec(context.Background(),
		`UPDATE tracking_outbox SET status = 'dead', attempts = 10, last_error = 'push failed' WHERE id IN (SELECT id FROM tracking_outbox ORDER BY id LIMIT 2)`); err != nil {
		t.Fatal(err)
	}
	var dead struct{ Events []workorder.OutboxEvent }
	h.do("GET", "/api/v1/ops/outbox/dead?limit=1", h.ops, nil, 200, &dead)
	if len(dead.Events) != 1 || dead.Events[0].Attempts != 10 || dead.Events[0].LastError != "push failed" {
		t.Fatalf("dead %+v", dead)
	}
	first := dead.Events[0].ID
	h.do("GET", fmt.Sprintf("/api/v1/ops/outbox/dead?after_id=%d", first), h.ops, nil, 200, &dead)
	if len(dead.Events) != 1 || dead.Events[0].ID <= first {
		t.Fatalf("second page %+v", dead)
	}
	h.refused("GET", "/api/v1/ops/outbox/dead?limit=0", h.ops, nil, 400, "invalid_query")

	var out struct {
		Event    workorder.OutboxEvent
		Redriven bool
	}
	h.do("POST", fmt.Sprintf("/api/v1/ops/outbox/dead/%d/retry", first), h.ops, nil, 200, &out)
	if !out.Redriven || out.Event.Status != "pending" || out.Event.Attempts != 0 || out.Event.RedrivenBy != "ops-1" {
		t.Fatalf("retry %+v", out)
	}
	h.do("POST", fmt.Sprintf("/api/v1/ops/outbox/dead/%d/retry", first), h.ops, nil, 200, &out)
	if out.Redriven {
		t.Fatal("a second retry re-drove again")
	}
	h.refused("POST", "/api/v1/ops/outbox/dead/x/retry", h.ops, nil, 400, "invalid_id")
	h.refused("POST", "/api/v1/ops/outbox/dead/999999/retry", h.ops, nil, 404, "event_not_found")
	h.do("GET", "/api/v1/ops/outbox", h.ops, nil, 200, &st)
	if st.Pending != 3 || st.Dead != 1 {
		t.Fatalf("stats after re-drive %+v", st)
	}
}

// TestOutboxOpsActionsOverHTTP drives a relay against the simulator's
// fault injection: a transient failure shows in the outbox summary with its
// last error and "retry now" sends it without waiting out the backoff; a
// permanent one is dead at once and a bulk re-drive sends it; both actions
// are audited with who and how many.
func TestOutboxOpsActionsOverHTTP(t *testing.T) {
	h := newPackingHarness(t)
	ctx := context.Background()
	set, err := clients.Dial(ctx, clients.DefaultConfig().WithAddr(h.sim.Addr()), clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	r := relay.New(h.db, set.OrderCenter, relay.Config{MaxAttempts: 10, BaseBackoff: time.Hour, MaxBackoff: time.Hour}, nil, nil)
	runOnce := func() relay.BatchResult {
		t.Helper()
		res, err := r.RunOnce(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, path := range []string{"/api/v1/ops/outbox/pending/retry", "/api/v1/ops/outbox/dead/retry"} {
		h.refused("POST", path, h.op, nil, 403, "forbidden")
		h.refused("POST", path, h.ops, map[string]any{"ids": []int{0}}, 400, "invalid_ids")
	}
	h.refused("GET", "/api/v1/ops/outbox/pending", h.op, nil, 403, "forbidden")
	h.refused("GET", "/api/v1/ops/outbox/audit", h.op, nil, 403, "forbidden")
	h.refused("GET", "/api/v1/ops/outbox/pending?failing=maybe", h.ops, nil, 400, "invalid_query")

	// Transient: pending, its error shown, retried now on request.
	h.sealedBag("SG-H02", 1) // bagged + bag_sealed
	if err := h.sim.SetFault("PushTrackingEvents", sim.Fault{ErrorRate: 1, Code: codes.Internal}); err != nil {
		t.Fatal(err)
	}
	if res := runOnce(); res.Failed != 2 {
		t.Fatalf("with the fault: %+v", res)
	}
	var summary struct {
		workorder.Stats
		FailingEvents []workorder.OutboxEvent `json:"failing_events"`
	}
	h.do("GET", "/api/v1/ops/outbox", h.ops, nil, 200, &summary)
	if summary.Pending != 2 || summary.Failing != 2 || len(summary.FailingEvents) != 2 ||
		!strings.Contains(summary.FailingEvents[0].LastError, "Internal") || summary.FailingEvents[0].Attempts != 1 {
		t.Fatalf("summary %+v", summary)
	}
	var pending struct{ Events []workorder.OutboxEvent }
	h.do("GET", "/api/v1/ops/outbox/pending?failing=true&limit=1", h.ops, nil, 200, &pending)
	if len(pending.Events) != 1 || pending.Events[0].LastError == "" {
		t.Fatalf("pending %+v", pending)
	}
	if err := h.sim.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	if res := runOnce(); res.Claimed != 0 {
		t.Fatalf("went before its backoff: %+v", res)
	}
	var retried struct{ Retried int64 }
	h.do("POST", "/api/v1/ops/outbox/pending/retry", h.ops, map[string]any{"reason": "order center fixed"}, 200, &retried)
	if retried.Retried != 2 {
		t.Fatalf("retried %+v", retried)
	}
	if res := runOnce(); res.Delivered != 2 {
		t.Fatalf("after retry now: %+v", res)
	}

	// Permanent: dead at once, re-driven in bulk.
	h.sealedBag("SG-H02", 1)
	if err := h.sim.SetFault("PushTrackingEvents", sim.Fault{ErrorRate: 1, Code: codes.FailedPrecondition}); err != nil {
		t.Fatal(err)
	}
	if res := runOnce(); res.Dead != 2 {
		t.Fatalf("permanent: %+v", res)
	}
	var dead struct{ Events []workorder.OutboxEvent }
	h.do("GET", "/api/v1/ops/outbox/dead", h.ops, nil, 200, &dead)
	if len(dead.Events) != 2 || dead.Events[0].Attempts != 1 || !strings.Contains(dead.Events[0].LastError, "FailedPrecondition") {
		t.Fatalf("dead %+v", dead)
	}
	if err := h.sim.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	var redriven struct{ Redriven int64 }
	h.do("POST", "/api/v1/ops/outbox/dead/retry", h.ops, nil, 200, &redriven)
	if redriven.Redriven != 2 {
		t.Fatalf("redriven %+v", redriven)
	}
	if res := runOnce(); res.Delivered != 2 {
		t.Fatalf("after the re-drive: %+v", res)
	}
	h.do("POST", "/api/v1/ops/outbox/dead/retry", h.ops, map[string]any{"ids": []int64{dead.Events[0].ID}}, 200, &redriven)
	if redriven.Redriven != 0 {
		t.Fatalf("a delivered event was re-driven: %+v", redriven)
	}

	var audit struct{ Entries []workorder.OutboxAuditEntry }
	h.do("GET", "/api/v1/ops/outbox/audit", h.ops, nil, 200, &audit)
	if len(audit.Entries) != 3 {
		t.Fatalf("audit %+v", audit)
	}
	got := make([]string, len(audit.Entries))
	for i, e := range audit.Entries {
		if e.Actor != "ops-1" || e.CreatedAt.IsZero() {
			t.Fatalf("audit entry %+v", e)
		}
		got[i] = fmt.Sprintf("%s %d %v %q", e.Action, e.Changed, e.EventIDs, e.Reason)
	}
	want := []string{
		fmt.Sprintf("redrive 0 [%d] \"\"", dead.Events[0].ID),
		`redrive 2 [] ""`,
		`retry_now 2 [] "order center fixed"`,
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("audit %q, want %q", got, want)
	}
}
