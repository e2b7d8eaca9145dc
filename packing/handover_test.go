package packing_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/workorder"
)

// linehaulTo returns a trip leaving the station that stops at nextHop.
func (e *env) linehaulTo(nextHop string) string {
	e.t.Helper()
	id := e.sim.Fixtures().TripTo(station, nextHop)
	if id == "" {
		e.t.Fatalf("the simulator has no trip from %s to %s", station, nextHop)
	}
	return id
}

func (e *env) openHandover(req packing.HandoverRequest) packing.Handover {
	e.t.Helper()
	r, err := e.svc.OpenHandover(ctx(e.t), e.op, req, e.scan())
	if err != nil {
		e.t.Fatalf("open handover %+v: %v", req, err)
	}
	return r.Value
}

func TestOpenHandoverRules(t *testing.T) {
	e := newEnv(t)
	trip := e.linehaulTo(hop)
	h := e.openHandover(packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: trip})
	if h.Status != packing.HandoverOpen || h.TripID != trip || !slices.Contains(h.TripStops, hop) || h.StationID != station {
		t.Fatalf("opened %+v", h)
	}
	for _, tc := range []struct {
		req  packing.HandoverRequest
		want error
	}{
		{packing.HandoverRequest{Type: "truck", TripID: trip}, packing.ErrInvalidHandover},
		{packing.HandoverRequest{Type: packing.HandoverLinehaul}, packing.ErrInvalidHandover},
		{packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: trip, Carrier: "DHL"}, packing.ErrInvalidHandover},
		{packing.HandoverRequest{Type: packing.HandoverLastMile, TripID: trip}, packing.ErrInvalidHandover},
		{packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: "TR-SG-H01-XXXX"}, packing.ErrUnknownTrip},
		{packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: sim.TripID("SG-H99", 1)}, packing.ErrUnknownTrip},
		{packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: sim.TripID("SG-H02", 1)}, packing.ErrTripOtherStation},
	} {
		_, err := e.svc.OpenHandover(ctx(t), e.op, tc.req, e.scan())
		if !errorsIs(err, tc.want) {
			t.Errorf("OpenHandover(%+v) = %v, want %v", tc.req, err, tc.want)
		}
	}
	if err := e.sim.SetFault("GetTrip", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.OpenHandover(ctx(t), e.op, packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: trip}, e.scan())
	wantErr(t, err, packing.ErrDependencyUnavailable)
	if n := e.count(`SELECT count(*) FROM handovers`); n != 1 {
		t.Fatalf("%d handovers, want only the first", n)
	}
}

func TestHandoverBagRules(t *testing.T) {
	e := newEnv(t)
	h := e.openHandover(packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: e.linehaulTo(hop)})
	onTrip := e.sealedBag(hop, 2)
	offTrip := e.sealedBag(hop2, 1) // a last-mile site: no linehaul trip stops there
	open := e.open(hop)

	add := func(handoverID, bagID string) error {
		_, err := e.svc.AddBagToHandover(ctx(t), e.op, handoverID, bagID, e.scan())
		return err
	}
	wantErr(t, add(h.ID, open.ID), packing.ErrBagNotSealed)
	wantErr(t, add(h.ID, offTrip.ID), packing.ErrNotOnTrip)
	wantErr(t, add(h.ID, "BG-NOPE"), packing.ErrBagNotFound)
	wantErr(t, add("no-such-handover", onTrip.ID), packing.ErrHandoverNotFound)
	r, err := e.svc.AddBagToHandover(ctx(t), e.op, h.ID, onTrip.ID, e.scan())
	if err != nil || r.Value.BagCount != 1 || r.Value.ParcelCount != 2 {
		t.Fatalf("%+v %v", r.Value, err)
	}
	// A bag is on one handover only, this one or another.
	wantErr(t, add(h.ID, onTrip.ID), packing.ErrBagOnHandover)
	rider := e.openHandover(packing.HandoverRequest{Type: packing.HandoverLastMile, RiderID: "rider-7"})
	err = add(rider.ID, onTrip.ID)
	wantErr(t, err, packing.ErrBagOnHandover)
	if d := details(t, err); d["handover_id"] != h.ID {
		t.Fatalf("details %v", d)
	}
	// A rider takes any sealed bag of the station.
	if err := add(rider.ID, offTrip.ID); err != nil {
		t.Fatal(err)
	}
	// Another station's handover.
	stranger := packing.Actor{StationID: "SG-H02", OperatorID: "op-9"}
	_, err = e.svc.AddBagToHandover(ctx(t), stranger, h.ID, onTrip.ID, e.scan())
	wantErr(t, err, packing.ErrOtherStation)
	_, err = e.svc.Handover(ctx(t), "SG-H02", h.ID)
	wantErr(t, err, packing.ErrOtherStation)
}

func TestCloseHandoverDepartsEveryParcel(t *testing.T) {
	e := newEnv(t)
	h := e.openHandover(packing.HandoverRequest{Type: packing.HandoverThirdParty, Carrier: "Ninja Van"})
	_, err := e.svc.CloseHandover(ctx(t), e.op, h.ID, e.scan())
	wantErr(t, err, packing.ErrHandoverEmpty)

	b1, b2 := e.sealedBag(hop, 3), e.sealedBag(hop2, 2)
	for _, b := range []packing.Bag{b1, b2} {
		if _, err := e.svc.AddBagToHandover(ctx(t), e.op, h.ID, b.ID, e.scan()); err != nil {
			t.Fatal(err)
		}
	}
	scan := e.scan()
	r, err := e.svc.CloseHandover(ctx(t), e.op, h.ID, scan)
	if err != nil {
		t.Fatal(err)
	}
	c := r.Value
	if c.Status != packing.HandoverClosed || c.ClosedAt == nil || c.BagCount != 2 || c.ParcelCount != 5 || c.WeightG != 5000 {
		t.Fatalf("closed %+v", c)
	}
	again, err := e.svc.CloseHandover(ctx(t), e.op, h.ID, scan)
	if err != nil || !again.Replayed || !bytes.Equal(again.Body, r.Body) {
		t.Fatalf("replay of close: %v %s", err, again.Body)
	}
	_, err = e.svc.CloseHandover(ctx(t), e.op, h.ID, e.scan())
	wantErr(t, err, packing.ErrHandoverClosed)
	late := e.sealedBag(hop, 1)
	_, err = e.svc.AddBagToHandover(ctx(t), e.op, h.ID, late.ID, e.scan())
	wantErr(t, err, packing.ErrHandoverClosed)

	for _, b := range []packing.Bag{b1, b2} {
		got, err := e.svc.Bag(ctx(t), station, b.ID)
		if err != nil || got.Status != packing.BagDeparted {
			t.Fatalf("bag %s: %+v %v", b.ID, got, err)
		}
		for _, no := range got.Items {
			if ev := e.events(no); !slices.Equal(ev, []string{"bagged", "bag_sealed", "departed"}) {
				t.Fatalf("events of %s: %v", no, ev)
			}
		}
		_, err = e.svc.AddItem(ctx(t), e.op, b.ID, e.sortedParcel(b.NextHop), e.scan())
		wantErr(t, err, packing.ErrBagSealed)
	}
	if n := e.count(`SELECT count(*) FROM work_orders WHERE type = 'handover_close'`); n != 1 {
		t.Fatalf("%d close work orders", n)
	}
	if n := e.count(`SELECT count(*) FROM tracking_outbox o JOIN work_orders w ON w.id = o.work_order_id
		WHERE w.type = 'handover_close' AND o.type = 'departed'`); n != 5 {
		t.Fatalf("%d departed events in the close work order", n)
	}
	// A departed parcel is neither sorted nor bagged again until it is
	// received again: a parcel that comes back starts a new visit.
	back := b1.Items[0]
	_, err = e.svc.AddItem(ctx(t), e.op, e.open(hop).ID, back, e.scan())
	wantErr(t, err, workorder.ErrParcelDeparted)
	e.received(station, back)
	e.sorted(station, back, hop)
	e.add(e.open(hop).ID, back)
}

func TestManifest(t *testing.T) {
	e := newEnv(t)
	h := e.openHandover(packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: e.linehaulTo(hop)})
	b := e.sealedBag(hop, 3)
	if _, err := e.svc.AddBagToHandover(ctx(t), e.op, h.ID, b.ID, e.scan()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CloseHandover(ctx(t), e.op, h.ID, e.scan()); err != nil {
		t.Fatal(err)
	}
	m, err := e.svc.Manifest(ctx(t), station, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Status != packing.HandoverClosed || m.BagCount != 1 || m.ParcelCount != 3 || len(m.Bags) != 1 ||
		!slices.Equal(m.Bags[0].Parcels, b.Items) || m.CarrierRef != h.TripID {
		t.Fatalf("manifest %+v", m)
	}
	if lines := bytes.Count(m.CSV(), []byte("\r\n")); lines != 4 {
		t.Fatalf("csv has %d lines:\n%s", lines, m.CSV())
	}
	_, err = e.svc.Manifest(ctx(t), "SG-H02", h.ID)
	wantErr(t, err, packing.ErrOtherStation)
}

func TestManifestCSVGolden(t *testing.T) {
	closed := time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)
	h := packing.Handover{ID: "0195f3a2-0000-7000-8000-000000000001", StationID: station, Type: packing.HandoverThirdParty,
		Carrier: "=HYPERLINK(\"x\")", Status: packing.HandoverClosed, ClosedBy: "op-1", ClosedAt: &closed,
		Bags: []packing.HandoverBag{{BagID: "BGSGH01A", NextHop: hop, WeightG: 4200}, {BagID: "BGSGH01B", NextHop: hop2, WeightG: 800}}}
	m := packing.BuildManifest(h, map[string][]string{
		"BGSGH01A": {"SG1000000001", "SG1000000002"},
		"BGSGH01B": {"SG1000000003"},
	})
	golden(t, "manifest.csv.golden", m.CSV())
}

func TestHandoversListsOneStatusNewestFirstWithCounts(t *testing.T) {
	e := newEnv(t)
	trip := e.linehaulTo(hop)
	first := e.openHandover(packing.HandoverRequest{Type: packing.HandoverLinehaul, TripID: trip})
	for _, b := range []packing.Bag{e.sealedBag(hop, 2), e.sealedBag(hop, 1)} {
		if _, err := e.svc.AddBagToHandover(ctx(t), e.op, first.ID, b.ID, e.scan()); err != nil {
			t.Fatal(err)
		}
	}
	second := e.openHandover(packing.HandoverRequest{Type: packing.HandoverLastMile, RiderID: "rider-7"})
	closed := e.openHandover(packing.HandoverRequest{Type: packing.HandoverThirdParty, Carrier: "DHL"})
	if _, err := e.svc.AddBagToHandover(ctx(t), e.op, closed.ID, e.sealedBag(hop, 1).ID, e.scan()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CloseHandover(ctx(t), e.op, closed.ID, e.scan()); err != nil {
		t.Fatal(err)
	}
	// Another station's open handover is not listed.
	stranger := packing.Actor{StationID: "SG-H02", OperatorID: "op-9"}
	if _, err := e.svc.OpenHandover(ctx(t), stranger, packing.HandoverRequest{Type: packing.HandoverLastMile, RiderID: "rider-9"}, e.scan()); err != nil {
		t.Fatal(err)
	}

	open, err := e.svc.Handovers(ctx(t), station, packing.HandoverOpen)
	if err != nil {
		t.Fatal(err)
	}
	if len(open) != 2 || open[0].ID != second.ID || open[1].ID != first.ID {
		t.Fatalf("open handovers %+v, want %s then %s", open, second.ID, first.ID)
	}
	if h := open[1]; h.BagCount != 2 || h.ParcelCount != 3 || h.WeightG != 3000 || h.TripID != trip || h.Status != packing.HandoverOpen {
		t.Fatalf("first handover listed as %+v", h)
	}
	if h := open[0]; h.BagCount != 0 || h.ParcelCount != 0 || h.RiderID != "rider-7" {
		t.Fatalf("empty handover listed as %+v", h)
	}
	all, err := e.svc.Handovers(ctx(t), station, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[2].ID != first.ID {
		t.Fatalf("all handovers %+v", all)
	}
	for _, h := range all {
		if h.ID == closed.ID && (h.Status != packing.HandoverClosed || h.ClosedAt == nil || h.Carrier != "DHL" || h.BagCount != 1) {
			t.Fatalf("closed handover listed as %+v", h)
		}
	}
	_, err = e.svc.Handovers(ctx(t), station, "departed")
	wantErr(t, err, packing.ErrInvalidHandoverStatus)
}

// TestDepartedBagsListNewestFirst: open and sealed bags are a work queue,
// longest waiting first; departed bags are history, newest first, so a
// busy station's capped list shows today's bags, not its first thousand.
func TestDepartedBagsListNewestFirst(t *testing.T) {
	e := newEnv(t)
	older, newer := e.sealedBag(hop, 1), e.sealedBag(hop, 1)
	h := e.openHandover(packing.HandoverRequest{Type: packing.HandoverThirdParty, Carrier: "DHL"})
	for _, b := range []packing.Bag{older, newer} {
		if _, err := e.svc.AddBagToHandover(ctx(t), e.op, h.ID, b.ID, e.scan()); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.svc.CloseHandover(ctx(t), e.op, h.ID, e.scan()); err != nil {
		t.Fatal(err)
	}
	waitingLong, waitingLess := e.sealedBag(hop, 1), e.sealedBag(hop, 1)
	open := e.open(hop)

	ids := func(status packing.BagStatus) []string {
		t.Helper()
		bags, err := e.svc.Bags(ctx(t), station, status)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, b := range bags {
			out = append(out, b.ID)
		}
		return out
	}
	if got, want := ids(packing.BagDeparted), []string{newer.ID, older.ID}; !slices.Equal(got, want) {
		t.Fatalf("departed bags %v, want newest first %v", got, want)
	}
	if got, want := ids(packing.BagSealed), []string{waitingLong.ID, waitingLess.ID}; !slices.Equal(got, want) {
		t.Fatalf("sealed bags %v, want longest waiting first %v", got, want)
	}
	if got, want := ids(""), []string{open.ID, waitingLess.ID, waitingLong.ID, newer.ID, older.ID}; !slices.Equal(got, want) {
		t.Fatalf("all bags %v, want newest first %v", got, want)
	}
}
