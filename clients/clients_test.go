package clients_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

func TestClientsAnswerWhatTheFixturesSay(t *testing.T) {
	s := startSim(t)
	set := dial(t, s, nil)
	fx := s.Fixtures()
	ctx := ctxTimeout(t, 30*time.Second)
	for _, m := range []string{"SG", "BR"} {
		for _, k := range sim.Kinds() {
			no := sim.TrackingNo(m, k, 2)
			w, err := set.OrderCenter.GetWaybill(ctx, no)
			if k == sim.Unknown {
				if !errors.Is(err, clients.ErrNotFound) {
					t.Fatalf("%s: want ErrNotFound, got %v", no, err)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %v", no, err)
			}
			p, _ := fx.Parcel(no)
			if w.TrackingNo != no || w.OriginSite != p.Origin || w.DestinationSite != p.Destination ||
				string(w.ServiceType) != p.ServiceType || string(w.Status) != p.Status || string(w.GoodsCategory) != p.Goods ||
				w.CODAmount != p.CODAmount || w.ShipperID != p.CustomerID || w.WeightG != p.WeightG || string(w.Size) != p.SizeClass() {
				t.Fatalf("%s: waybill %+v, fixture %+v", no, w, p)
			}
			billing, err := set.Finance.CheckBilling(ctx, no)
			if err != nil || string(billing) != p.Billing {
				t.Fatalf("%s billing %q %v, want %q", no, billing, err, p.Billing)
			}
			ds, err := set.Delivery.GetDeliveryStatus(ctx, no)
			if err != nil || string(ds.State) != p.Delivery || ds.Reason != p.DeliveryReason {
				t.Fatalf("%s delivery %+v %v", no, ds, err)
			}
			addr, err := set.Delivery.ValidateAddress(ctx, no)
			if err != nil || addr.Valid != p.AddressValid {
				t.Fatalf("%s address %+v %v", no, addr, err)
			}
			cust, err := set.OrderCenter.GetCustomerStatus(ctx, w.ShipperID)
			if err != nil || (cust.State == clients.CustomerBlocked) != (k == sim.BlockedCustomer) {
				t.Fatalf("%s customer %+v %v", no, cust, err)
			}
			fd, err := set.OrderCenter.GetFiscalDocument(ctx, no)
			if err != nil || fd.OK() != (m != "BR" || k != sim.NoFiscalDoc) {
				t.Fatalf("%s fiscal %+v %v", no, fd, err)
			}
			area, err := set.Basic.CheckServiceArea(ctx, w.DestinationSite, w.ServiceType)
			if err != nil || area.Served != (k != sim.Unserved && k != sim.InactiveDestination) {
				t.Fatalf("%s area %+v %v", no, area, err)
			}
			lane, err := set.Basic.GetLaneRestrictions(ctx, w.OriginSite, w.DestinationSite)
			if err != nil || lane.Allows(w.GoodsCategory) != (k != sim.Restricted) {
				t.Fatalf("%s lane %+v %v", no, lane, err)
			}
			if w.IsCOD() {
				lim, err := set.Finance.CheckCODLimit(ctx, w.DestinationSite, w.CODAmount)
				if err != nil || lim.Allowed != (k == sim.COD) || lim.Currency != w.Currency {
					t.Fatalf("%s COD %+v %v", no, lim, err)
				}
			}
		}
	}
}

func TestSitesAndRoutes(t *testing.T) {
	s := startSim(t)
	set := dial(t, s, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	site, err := set.Basic.GetSite(ctx, "sg-l07")
	if err != nil || site.ID != "SG-L07" || site.Type != clients.SiteLastMile || site.ParentHub != "SG-H02" || !site.Active {
		t.Fatalf("site %+v %v", site, err)
	}
	if _, err := set.Basic.GetSite(ctx, "SG-H99"); !errors.Is(err, clients.ErrNotFound) {
		t.Fatalf("unknown site: %v", err)
	}
	if s, _ := set.Basic.GetSite(ctx, sim.InactiveSite("SG")); s.Active {
		t.Fatal("inactive site reported active")
	}
	next, err := set.Basic.GetRoute(ctx, "SG-H01", "SG-L07", clients.ServiceStandard)
	if err != nil || next != "SG-H02" {
		t.Fatalf("route %q %v", next, err)
	}
	re, v1hub, v2hub := sim.RehomedV2("SG")
	v1, err1 := set.Basic.GetRoute(ctx, "SG-H03", re, clients.ServiceExpress)
	v2, err2 := set.Basic.GetRouteV2(ctx, "SG-H03", re, clients.ServiceExpress)
	if err1 != nil || err2 != nil || v1 != v1hub || v2 != v2hub {
		t.Fatalf("V1 %q %v, V2 %q %v", v1, err1, v2, err2)
	}
	if _, err := set.Basic.GetRoute(ctx, "SG-H01", "MY-L01", clients.ServiceStandard); !errors.Is(err, clients.ErrNotFound) {
		t.Fatalf("cross-market route: %v", err)
	}
}

func TestBatchTripsAndBags(t *testing.T) {
	s := startSim(t)
	set := dial(t, s, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	nos := []string{sim.TrackingNo("SG", sim.Normal, 0), sim.TrackingNo("SG", sim.Unknown, 0), " " + sim.TrackingNo("MY", sim.COD, 0)}
	got, err := set.OrderCenter.BatchGetWaybills(ctx, nos)
	if err != nil || len(got) != 2 || got[sim.TrackingNo("MY", sim.COD, 0)].CODAmount == 0 {
		t.Fatalf("batch %v %v", got, err)
	}
	if _, err := set.OrderCenter.BatchGetWaybills(ctx, []string{"bogus"}); !errors.Is(err, clients.ErrInvalidArgument) {
		t.Fatalf("malformed batch: %v", err)
	}
	tripID := s.Fixtures().TripTo("SG-H01", "SG-H02")
	trip, err := set.Linehaul.GetTrip(ctx, tripID)
	if err != nil || !trip.HasStop("SG-H02") || trip.Type != clients.TripLinehaul || trip.Vehicle.Plate == "" || trip.DepartureAt.IsZero() {
		t.Fatalf("trip %+v %v", trip, err)
	}
	if _, err := set.Linehaul.GetTrip(ctx, "TR-SG-H77-0001"); !errors.Is(err, clients.ErrNotFound) {
		t.Fatalf("unknown trip: %v", err)
	}
	a, err1 := set.Container.AllocateBagID(ctx, "SG-H01", "SG-L03", "req-1")
	b, err2 := set.Container.AllocateBagID(ctx, "SG-H01", "SG-L03", "req-1")
	c, err3 := set.Container.AllocateBagID(ctx, "SG-H01", "SG-L03", "req-2")
	if err := errors.Join(err1, err2, err3); err != nil || a != b || a == c || a == "" {
		t.Fatalf("bags %q %q %q %v", a, b, c, err)
	}
}

func TestTrackingEventsAreRecordedOnceInArrivalOrder(t *testing.T) {
	s := startSim(t)
	set := dial(t, s, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	no := sim.ViaStation("SG-H01", 0)
	at := time.Date(2026, 3, 1, 8, 0, 0, 0, time.UTC)
	events := []clients.TrackingEvent{
		{EventID: "e1", TrackingNo: no, StationID: "SG-H01", Type: clients.EventArrived, OccurredAt: at, OperatorID: "op-7"},
		{EventID: "e2", TrackingNo: no, StationID: "SG-H01", Type: clients.EventSorted, OccurredAt: at.Add(time.Minute), SorterID: "asm-1", PayloadJSON: `{"chute":"12"}`},
	}
	acks, err := set.OrderCenter.PushTrackingEvents(ctx, events)
	if err != nil || len(acks) != 2 || acks[0].Status != clients.AckAccepted || acks[1].Status != clients.AckAccepted {
		t.Fatalf("first push %+v %v", acks, err)
	}
	// A relay resending the batch plus a new event and a broken one.
	again := append(slices.Clone(events),
		clients.TrackingEvent{EventID: "e3", TrackingNo: no, StationID: "SG-H01", Type: clients.EventBagged, OccurredAt: at.Add(2 * time.Minute)},
		clients.TrackingEvent{EventID: "", TrackingNo: no, StationID: "SG-H01", Type: clients.EventBagged})
	acks, err = set.OrderCenter.PushTrackingEvents(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	want := []clients.AckStatus{clients.AckDuplicate, clients.AckDuplicate, clients.AckAccepted, clients.AckRejected}
	for i, a := range acks {
		if a.Status != want[i] {
			t.Fatalf("ack %d: %+v, want %s", i, a, want[i])
		}
	}
	resp, err := admin(t, s).GetTrackingEvents(ctx, &downstreamv1.GetTrackingEventsRequest{TrackingNo: no})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range resp.GetEvents() {
		ids = append(ids, fmt.Sprintf("%s/%s/%d", e.GetEvent().GetEventId(), e.GetEvent().GetType(), e.GetDuplicates()))
	}
	if !slices.Equal(ids, []string{"e1/TRACKING_EVENT_TYPE_ARRIVED/1", "e2/TRACKING_EVENT_TYPE_SORTED/1", "e3/TRACKING_EVENT_TYPE_BAGGED/0"}) {
		t.Fatalf("recorded %v", ids)
	}
	if resp.GetTotalAccepted() != 3 || resp.GetTotalDuplicates() != 2 {
		t.Fatalf("totals %d %d", resp.GetTotalAccepted(), resp.GetTotalDuplicates())
	}
	if ev := s.TrackingEvents(no); ev[1].SorterID != "asm-1" || ev[1].PayloadJSON != `{"chute":"12"}` || !ev[0].OccurredAt.Equal(at) {
		t.Fatalf("event details lost: %+v", ev)
	}
}

func TestMalformedInputIsInvalidArgument(t *testing.T) {
	s := startSim(t)
	set := dial(t, s, nil)
	ctx := ctxTimeout(t, 10*time.Second)
	_, err := set.OrderCenter.GetWaybill(ctx, "not-a-number")
	var ce *clients.CallError
	if !errors.Is(err, clients.ErrInvalidArgument) || !errors.As(err, &ce) || ce.Service != clients.ServiceOrderCenter || ce.Method != "GetWaybill" {
		t.Fatalf("got %v", err)
	}
	if errors.Is(err, clients.ErrUnavailable) || errors.Is(err, clients.ErrNotFound) {
		t.Fatalf("error matches more than one kind: %v", err)
	}
}

func TestDialNeedsAnAddressPerService(t *testing.T) {
	cfg := clients.DefaultConfig()
	cfg.Basic.Addr = "127.0.0.1:1"
	if _, err := clients.Dial(context.Background(), cfg, clients.Options{}); err == nil {
		t.Fatal("dial without addresses succeeded")
	}
	cfg.Addr = "127.0.0.1:2"
	if cfg.AddrOf(clients.ServiceBasic) != "127.0.0.1:1" || cfg.AddrOf(clients.ServiceFinance) != "127.0.0.1:2" {
		t.Fatal("per-service address does not override the shared one")
	}
	cfg.Deadlines = map[string]time.Duration{"NoSuchMethod": time.Second}
	if err := cfg.Validate(); err == nil {
		t.Fatal("unknown method deadline accepted")
	}
	cfg.Token.ClientSecret = "s3cret"
	if cfg.Redacted().Token.ClientSecret == "s3cret" {
		t.Fatal("secret not masked")
	}
}

func TestDialToADeadAddressFailsCallsNotDial(t *testing.T) {
	cfg := clients.DefaultConfig().WithAddr("127.0.0.1:1")
	cfg.Retry.MaxAttempts = 1
	set, err := clients.Dial(context.Background(), cfg, clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	_, err = set.Basic.GetSite(ctxTimeout(t, 5*time.Second), "SG-H01")
	if !errors.Is(err, clients.ErrUnavailable) {
		t.Fatalf("got %v", err)
	}
}
