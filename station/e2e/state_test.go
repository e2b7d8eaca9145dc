package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/stationtest"
	"github.com/expresshub/station/workorder"
)

// journey takes a parcel through the station over HTTP: received, sorted,
// bagged, sealed and handed over to a carrier.
func journey(t *testing.T, st *stationtest.Station, token, tn, prefix string) (bagID, handoverID string) {
	t.Helper()
	var rc sorting.Receipt
	st.Do("POST", "/api/v1/receive", token, map[string]string{"tracking_no": tn, "scan_id": prefix + "-receive"}, http.StatusOK, &rc)
	if !rc.Accepted || rc.Duplicate {
		t.Fatalf("receive: %+v", rc)
	}
	a := sortParcel(t, st, token, tn, prefix+"-sort")
	if a.NextHop == nil {
		t.Fatalf("sort: %+v", a.Result)
	}
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", token, map[string]string{"next_hop": *a.NextHop, "scan_id": prefix + "-open"}, http.StatusCreated, &bag)
	st.Do("POST", "/api/v1/bags/"+bag.ID+"/items", token, map[string]string{"tracking_no": tn, "scan_id": prefix + "-add"}, http.StatusOK, nil)
	st.Do("POST", "/api/v1/bags/"+bag.ID+"/seal", token, map[string]any{"weight_g": 1200, "scan_id": prefix + "-seal"}, http.StatusOK, nil)
	var h packing.Handover
	st.Do("POST", "/api/v1/handovers", token, map[string]string{"type": "thirdparty", "carrier": "Ninja Van", "scan_id": prefix + "-ho"}, http.StatusCreated, &h)
	st.Do("POST", "/api/v1/handovers/"+h.ID+"/bags", token, map[string]string{"bag_id": bag.ID, "scan_id": prefix + "-ho-add"}, http.StatusOK, nil)
	st.Do("POST", "/api/v1/handovers/"+h.ID+"/close", token, map[string]string{"scan_id": prefix + "-ho-close"}, http.StatusOK, nil)
	return bag.ID, h.ID
}

func parcelView(t *testing.T, st *stationtest.Station, token, tn string) sorting.ParcelView {
	t.Helper()
	var v sorting.ParcelView
	st.Do("GET", "/api/v1/parcels/"+tn, token, nil, http.StatusOK, &v)
	return v
}

// TestDepartedParcelIsRefusedUntilReceivedAgain: a parcel that left on a
// closed handover cannot be sorted or bagged (409 parcel_departed) and
// nothing is written; received again it starts a new visit and sorts.
func TestDepartedParcelIsRefusedUntilReceivedAgain(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	tn := sim.ViaStation("SG-H01", 3)
	bagID, handoverID := journey(t, st, token, tn, "j1")

	v := parcelView(t, st, token, tn)
	if v.State != workorder.StateDeparted || v.HandoverID != handoverID || v.BagID != bagID || v.Visit != 1 {
		t.Fatalf("after the handover: %+v", v.Parcel)
	}
	orders := st.Count(`SELECT count(*) FROM work_orders`)
	e := st.ExpectError("POST", "/api/v1/sort", token, map[string]string{"tracking_no": tn, "scan_id": "again-sort"}, http.StatusConflict, "parcel_departed")
	if e.Error.Details["handover_id"] != handoverID {
		t.Fatalf("refusal details %v", e.Error.Details)
	}
	var bag packing.Bag
	st.Do("POST", "/api/v1/bags", token, map[string]string{"next_hop": v.NextHop, "scan_id": "again-open"}, http.StatusCreated, &bag)
	st.ExpectError("POST", "/api/v1/bags/"+bag.ID+"/items", token, map[string]string{"tracking_no": tn, "scan_id": "again-add"}, http.StatusConflict, "parcel_departed")
	if n := st.Count(`SELECT count(*) FROM work_orders`); n != orders+1 { // the bag's open only
		t.Fatalf("refusals wrote %d work orders", n-orders-1)
	}

	var rc sorting.Receipt
	st.Do("POST", "/api/v1/receive", token, map[string]string{"tracking_no": tn, "scan_id": "back-receive"}, http.StatusOK, &rc)
	if !rc.Accepted || rc.Duplicate {
		t.Fatalf("receive of a returning parcel: %+v", rc)
	}
	if a := sortParcel(t, st, token, tn, "back-sort"); a.NextHop == nil {
		t.Fatalf("sort after the return: %+v", a.Result)
	}
	v = parcelView(t, st, token, tn)
	if v.Visit != 2 || v.State != workorder.StateSorted || v.VisitOrderID.String() != rc.WorkOrderID {
		t.Fatalf("second visit: %+v", v.Parcel)
	}
	types := make([]string, len(v.WorkOrders))
	for i, e := range v.WorkOrders {
		types[i] = e.Type
	}
	want := []string{"receive", "sort", "bag_add", "bag_seal", "handover_close", "receive", "sort"}
	if fmt.Sprint(types) != fmt.Sprint(want) {
		t.Fatalf("work orders %v, want %v", types, want)
	}
	// Another station sees nothing of it.
	st.ExpectError("GET", "/api/v1/parcels/"+tn, st.Login("op2"), nil, http.StatusNotFound, "not_found")
}

// TestDuplicateReceiveWritesNothing: a second receive of a parcel that is
// here answers duplicate with the first receive, and records nothing.
func TestDuplicateReceiveWritesNothing(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	tn := sim.ViaStation("SG-H01", 4)
	var first, second sorting.Receipt
	st.Do("POST", "/api/v1/receive", token, map[string]string{"tracking_no": tn, "scan_id": "r1"}, http.StatusOK, &first)
	sortParcel(t, st, token, tn, "s1")
	orders, events := st.Count(`SELECT count(*) FROM work_orders`), st.Count(`SELECT count(*) FROM tracking_outbox`)
	r := st.Do("POST", "/api/v1/receive", token, map[string]string{"tracking_no": tn, "scan_id": "r2"}, http.StatusOK, &second)
	if !second.Duplicate || !second.Accepted || second.WorkOrderID != first.WorkOrderID || !second.ReceivedAt.Equal(first.ReceivedAt) || second.State != "sorted" {
		t.Fatalf("duplicate receive: %s (first %+v)", r.Body, first)
	}
	if o, e := st.Count(`SELECT count(*) FROM work_orders`), st.Count(`SELECT count(*) FROM tracking_outbox`); o != orders || e != events {
		t.Fatalf("a duplicate receive wrote %d work orders and %d events", o-orders, e-events)
	}
	// The replay of the first scan is still the first answer, byte for byte.
	again := st.Send("POST", "/api/v1/receive", token, map[string]string{"tracking_no": tn, "scan_id": "r1"})
	if again.Status != http.StatusOK || again.Header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s", again.Status, again.Body)
	}
}

// TestConcurrentBagOpensWithOneScanID: twelve terminals retrying one open
// at once get one bag and its answer, never a 500.
func TestConcurrentBagOpensWithOneScanID(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("op1")
	hop := st.Sim.Fixtures().NextHops("SG-H01")[0]
	for round := range 10 {
		var wg sync.WaitGroup
		res := make([]stationtest.Response, 12)
		for i := range res {
			wg.Go(func() {
				res[i] = st.Send("POST", "/api/v1/bags", token, map[string]string{"next_hop": hop, "scan_id": fmt.Sprintf("open-%d", round)})
			})
		}
		wg.Wait()
		for i, r := range res {
			if r.Status != http.StatusCreated && r.Status != http.StatusOK || string(r.Body) != string(res[0].Body) {
				t.Fatalf("round %d request %d: %d %s (first %s)", round, i, r.Status, r.Body, res[0].Body)
			}
		}
	}
	if n := st.Count(`SELECT count(*) FROM bags`); n != 10 {
		t.Fatalf("%d bags, want 10", n)
	}
}
