package packing_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/workorder"
)

func TestOpenBagTakesItsIDFromTheContainerService(t *testing.T) {
	e := newEnv(t)
	scan := e.scan()
	r, err := e.svc.Open(ctx(t), e.op, " sg-h02 ", scan)
	if err != nil {
		t.Fatal(err)
	}
	b := r.Value
	if b.ID == "" || b.NextHop != hop || b.Status != packing.BagOpen || b.StationID != station || b.OpenedBy != "op-1" {
		t.Fatalf("opened %+v", b)
	}
	if e.sim.Calls("AllocateBagID") != 1 {
		t.Fatalf("container calls = %d", e.sim.Calls("AllocateBagID"))
	}
	again, err := e.svc.Open(ctx(t), e.op, hop, scan)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || !bytes.Equal(again.Body, r.Body) || again.Value.ID != b.ID {
		t.Fatalf("replay: %+v\nfirst  %s\nreplay %s", again, r.Body, again.Body)
	}
	if e.sim.Calls("AllocateBagID") != 1 {
		t.Fatal("a replay asked the container service again")
	}
	_, err = e.svc.Open(ctx(t), e.op, hop2, scan)
	wantErr(t, err, workorder.ErrScanIDReused)
	if n := e.count(`SELECT count(*) FROM bags`); n != 1 {
		t.Fatalf("%d bags", n)
	}
	if n := e.count(`SELECT count(*) FROM work_orders WHERE type = 'bag_open' AND subject_id = $1`, b.ID); n != 1 {
		t.Fatalf("%d work orders", n)
	}
}

func TestOpenRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		hop, scan string
		want      error
	}{
		{"SGH02", "s1", packing.ErrInvalidNextHop},
		{"", "s2", packing.ErrInvalidNextHop},
		{station, "s3", packing.ErrInvalidNextHop},
		{"SG-H09", "s4", packing.ErrUnknownNextHop},
		{hop, "", packing.ErrMissingScanID},
		{hop, " padded ", packing.ErrMissingScanID},
	} {
		_, err := e.svc.Open(ctx(t), e.op, tc.hop, tc.scan)
		if !errors.Is(err, tc.want) {
			t.Errorf("Open(%q, %q) = %v, want %v", tc.hop, tc.scan, err, tc.want)
		}
	}
	if n := e.count(`SELECT count(*) FROM bags`) + e.count(`SELECT count(*) FROM work_orders`); n != 0 {
		t.Fatalf("refusals wrote %d rows", n)
	}
}

func TestOpenWhenContainerServiceIsDownWritesNothing(t *testing.T) {
	e := newEnv(t)
	if err := e.sim.SetFault("AllocateBagID", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	_, err := e.svc.Open(ctx(t), e.op, hop, "down-1")
	wantErr(t, err, packing.ErrDependencyUnavailable)
	if n := e.count(`SELECT count(*) FROM bags`) + e.count(`SELECT count(*) FROM work_orders`); n != 0 {
		t.Fatalf("wrote %d rows while the container service was down", n)
	}
	// Back up: the same scan id now opens the bag.
	if err := e.sim.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.Open(ctx(t), e.op, hop, "down-1"); err != nil {
		t.Fatal(err)
	}
}

func TestAddItemRules(t *testing.T) {
	e := newEnv(t)
	b := e.open(hop)
	other := e.open(hop)

	t.Run("malformed tracking number", func(t *testing.T) {
		_, err := e.svc.AddItem(ctx(t), e.op, b.ID, "SG12", e.scan())
		wantErr(t, err, packing.ErrInvalidTrackingNo)
	})
	t.Run("never sorted here", func(t *testing.T) {
		no := e.parcel()
		e.sorted("SG-H02", no, hop) // sorted elsewhere does not count
		_, err := e.svc.AddItem(ctx(t), e.op, b.ID, no, e.scan())
		wantErr(t, err, packing.ErrNotSorted)
	})
	t.Run("sorted as an exception", func(t *testing.T) {
		no := e.parcel()
		e.sorted(station, no, "")
		_, err := e.svc.AddItem(ctx(t), e.op, b.ID, no, e.scan())
		wantErr(t, err, workorder.ErrParcelAside)
		if d := details(t, err); d["exception_code"] != "RESTRICTED_GOODS" {
			t.Fatalf("details %v", d)
		}
	})
	t.Run("wrong next hop", func(t *testing.T) {
		no := e.sortedParcel(hop2)
		_, err := e.svc.AddItem(ctx(t), e.op, b.ID, no, e.scan())
		wantErr(t, err, packing.ErrWrongNextHop)
		if d := details(t, err); d["parcel_next_hop"] != hop2 || d["bag_next_hop"] != hop {
			t.Fatalf("details %v", d)
		}
	})
	t.Run("the newest sort decides", func(t *testing.T) {
		no := e.sortedParcel(hop2)
		e.sorted(station, no, hop) // re-sorted
		e.add(b.ID, no)
	})
	t.Run("normalised tracking number", func(t *testing.T) {
		no := e.sortedParcel(hop)
		r, err := e.svc.AddItem(ctx(t), e.op, b.ID, " "+"sg"+no[2:]+"\r\n", e.scan())
		if err != nil || r.Value.TrackingNo != no {
			t.Fatalf("%+v %v", r.Value, err)
		}
	})
	t.Run("already bagged names the bag", func(t *testing.T) {
		no := e.sortedParcel(hop)
		e.add(b.ID, no)
		_, err := e.svc.AddItem(ctx(t), e.op, other.ID, no, e.scan())
		wantErr(t, err, packing.ErrAlreadyBagged)
		if d := details(t, err); d["bag_id"] != b.ID {
			t.Fatalf("details %v, want bag %s", d, b.ID)
		}
	})
	t.Run("into the bag it is in is a repeat", func(t *testing.T) {
		no := e.sortedParcel(hop)
		e.add(b.ID, no)
		orders := e.count(`SELECT count(*) FROM work_orders`)
		r, err := e.svc.AddItem(ctx(t), e.op, b.ID, no, e.scan())
		if err != nil || r.Value.Action != "already_in_this_bag" || r.Value.BagID != b.ID || r.Replayed {
			t.Fatalf("%+v %v", r.Value, err)
		}
		if n := e.count(`SELECT count(*) FROM work_orders`); n != orders {
			t.Fatalf("a repeat recorded %d work orders", n-orders)
		}
	})
	t.Run("already bagged at another station keeps that bag's id there", func(t *testing.T) {
		ours := e.open(hop)
		no := e.sortedParcel(hop)
		e.add(ours.ID, no)
		// The parcel turns up at SG-H02 without a handover; an operator
		// there sorts it and tries to bag it.
		stranger := packing.Actor{StationID: hop, OperatorID: "op-9"}
		theirs, err := e.svc.Open(ctx(t), stranger, station, e.scan())
		if err != nil {
			t.Fatal(err)
		}
		e.sorted(hop, no, station)
		_, err = e.svc.AddItem(ctx(t), stranger, theirs.Value.ID, no, e.scan())
		wantErr(t, err, packing.ErrAlreadyBagged)
		if d := details(t, err); d["bag_id"] != nil || d["tracking_no"] != no {
			t.Fatalf("details %v name another station's bag", d)
		}
		if msg := err.Error(); strings.Contains(msg, ours.ID) {
			t.Fatalf("message %q names another station's bag", msg)
		}
	})
	t.Run("unknown bag", func(t *testing.T) {
		_, err := e.svc.AddItem(ctx(t), e.op, "BG-NOPE", e.sortedParcel(hop), e.scan())
		wantErr(t, err, packing.ErrBagNotFound)
	})
	t.Run("another station's bag", func(t *testing.T) {
		stranger := packing.Actor{StationID: "SG-H03", OperatorID: "op-9"}
		_, err := e.svc.AddItem(ctx(t), stranger, b.ID, e.sortedParcel(hop), e.scan())
		wantErr(t, err, packing.ErrOtherStation)
		_, err = e.svc.Bag(ctx(t), "SG-H03", b.ID)
		wantErr(t, err, packing.ErrOtherStation)
	})
	t.Run("sealed bag refuses parcels", func(t *testing.T) {
		s := e.sealedBag(hop, 1)
		_, err := e.svc.AddItem(ctx(t), e.op, s.ID, e.sortedParcel(hop), e.scan())
		wantErr(t, err, packing.ErrBagSealed)
	})
	got, err := e.svc.Bag(ctx(t), station, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.ItemCount != 4 || len(got.Items) != 4 {
		t.Fatalf("bag holds %d (%v), want the 4 accepted parcels", got.ItemCount, got.Items)
	}
}

func TestAddReplayIsByteForByteAndWritesOnce(t *testing.T) {
	e := newEnv(t)
	b := e.open(hop)
	no := e.sortedParcel(hop)
	first, err := e.svc.AddItem(ctx(t), e.op, b.ID, no, "scan-add")
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.AddItem(ctx(t), e.op, b.ID, no, "scan-add")
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || !bytes.Equal(first.Body, again.Body) || again.Value != first.Value {
		t.Fatalf("replay differs:\n%s\n%s", first.Body, again.Body)
	}
	if got := e.events(no); !slices.Equal(got, []string{"bagged"}) {
		t.Fatalf("events %v", got)
	}
	_, err = e.svc.AddItem(ctx(t), e.op, b.ID, e.sortedParcel(hop), "scan-add")
	wantErr(t, err, workorder.ErrScanIDReused)
}

func TestConcurrentReplaysOfOneScanWriteOnce(t *testing.T) {
	e := newEnv(t)
	b := e.open(hop)
	no := e.sortedParcel(hop)
	var wg sync.WaitGroup
	bodies := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range bodies {
		wg.Go(func() {
			r, err := e.svc.AddItem(context.Background(), e.op, b.ID, no, "same-scan")
			bodies[i], errs[i] = r.Body, err
		})
	}
	wg.Wait()
	for i := range bodies {
		if errs[i] != nil || !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("request %d: %v %s vs %s", i, errs[i], bodies[i], bodies[0])
		}
	}
	if got := e.events(no); len(got) != 1 {
		t.Fatalf("events %v", got)
	}
}

func TestRemoveItem(t *testing.T) {
	e := newEnv(t)
	b := e.open(hop)
	no := e.sortedParcel(hop)
	e.add(b.ID, no)

	_, err := e.svc.RemoveItem(ctx(t), e.op, b.ID, e.sortedParcel(hop), e.scan())
	wantErr(t, err, packing.ErrNotInBag)
	r, err := e.svc.RemoveItem(ctx(t), e.op, b.ID, no, e.scan())
	if err != nil || r.Value.Action != "removed" || r.Value.ItemCount != 0 {
		t.Fatalf("%+v %v", r.Value, err)
	}
	// Out of the bag it may go into another one.
	other := e.open(hop)
	e.add(other.ID, no)
	if got := e.events(no); !slices.Equal(got, []string{"bagged", "unbagged", "bagged"}) {
		t.Fatalf("events %v", got)
	}
	if _, err := e.svc.Seal(ctx(t), e.op, other.ID, 500, e.scan()); err != nil {
		t.Fatal(err)
	}
	_, err = e.svc.RemoveItem(ctx(t), e.op, other.ID, no, e.scan())
	wantErr(t, err, packing.ErrBagSealed)
	_, err = e.svc.RemoveItem(ctx(t), e.op, other.ID, "nope", e.scan())
	wantErr(t, err, packing.ErrInvalidTrackingNo)
}

func TestSealRules(t *testing.T) {
	e := newEnv(t)
	b := e.open(hop)
	_, err := e.svc.Seal(ctx(t), e.op, b.ID, 500, e.scan())
	wantErr(t, err, packing.ErrBagEmpty)
	parcels := []string{e.sortedParcel(hop), e.sortedParcel(hop)}
	for _, no := range parcels {
		e.add(b.ID, no)
	}
	for _, w := range []int{-1, 0, 9, 50_001} {
		_, err := e.svc.Seal(ctx(t), e.op, b.ID, w, e.scan())
		wantErr(t, err, packing.ErrWeightOutOfBounds)
	}
	_, err = e.svc.Seal(ctx(t), e.op, "BG-NOPE", 500, e.scan())
	wantErr(t, err, packing.ErrBagNotFound)

	r, err := e.svc.Seal(ctx(t), e.op, b.ID, 12_345, e.scan())
	if err != nil {
		t.Fatal(err)
	}
	s := r.Value
	if s.Status != packing.BagSealed || s.WeightG != 12_345 || s.SealedAt == nil || s.SealedBy != "op-1" || !slices.Equal(s.Items, parcels) {
		t.Fatalf("sealed %+v", s)
	}
	_, err = e.svc.Seal(ctx(t), e.op, b.ID, 12_345, e.scan())
	wantErr(t, err, packing.ErrBagSealed)
	for _, no := range parcels {
		if got := e.events(no); !slices.Equal(got, []string{"bagged", "bag_sealed"}) {
			t.Fatalf("events of %s: %v", no, got)
		}
	}
	open, err := e.svc.Bags(ctx(t), station, packing.BagOpen)
	if err != nil || len(open) != 0 {
		t.Fatalf("open bags %v %v", open, err)
	}
	sealed, err := e.svc.Bags(ctx(t), station, packing.BagSealed)
	if err != nil || len(sealed) != 1 || sealed[0].ID != b.ID || sealed[0].ItemCount != 2 {
		t.Fatalf("sealed bags %+v %v", sealed, err)
	}
	_, err = e.svc.Bags(ctx(t), station, "lost")
	wantErr(t, err, packing.ErrInvalidBagStatus)
}

// TestFiftyConcurrentAddsRaceASeal: every add either lands before the seal
// (and is in the sealed bag) or is refused with ErrBagSealed; nothing gets
// in after the seal, nothing that succeeded is missing.
func TestFiftyConcurrentAddsRaceASeal(t *testing.T) {
	e := newEnv(t)
	b := e.open(hop)
	first := e.sortedParcel(hop)
	e.add(b.ID, first)
	parcels := make([]string, 50)
	for i := range parcels {
		parcels[i] = e.sortedParcel(hop)
	}

	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, len(parcels))
	for i, no := range parcels {
		wg.Go(func() {
			<-start
			_, errs[i] = e.svc.AddItem(context.Background(), e.op, b.ID, no, "add-"+no)
		})
	}
	var sealed packing.Bag
	var sealErr error
	wg.Go(func() {
		<-start
		var r packing.Receipt[packing.Bag]
		r, sealErr = e.svc.Seal(context.Background(), e.op, b.ID, 4000, "seal")
		sealed = r.Value
	})
	close(start)
	wg.Wait()
	if sealErr != nil {
		t.Fatal(sealErr)
	}
	want := []string{first}
	for i, err := range errs {
		switch {
		case err == nil:
			want = append(want, parcels[i])
		case errors.Is(err, packing.ErrBagSealed):
		default:
			t.Fatalf("add %d: %v", i, err)
		}
	}
	final, err := e.svc.Bag(ctx(t), station, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	got := slices.Sorted(slices.Values(final.Items))
	sealedItems := slices.Sorted(slices.Values(sealed.Items))
	if !slices.Equal(got, want) || !slices.Equal(sealedItems, want) || final.ItemCount != len(want) {
		t.Fatalf("bag holds %d %v\nsealed with %v\nsucceeded %d %v", final.ItemCount, got, sealedItems, len(want), want)
	}
	if n := e.count(`SELECT count(*) FROM tracking_outbox WHERE type = 'bag_sealed'`); n != len(want) {
		t.Fatalf("%d bag_sealed events for %d parcels", n, len(want))
	}
	if n := e.count(`SELECT count(*) FROM tracking_outbox WHERE type = 'bagged'`); n != len(want) {
		t.Fatalf("%d bagged events for %d parcels", n, len(want))
	}
	t.Logf("%d of 50 adds beat the seal", len(want)-1)
}

// TestSameParcelIntoTwoBagsAtOnce: one add wins, the other is refused
// naming the winner's bag, every time.
func TestSameParcelIntoTwoBagsAtOnce(t *testing.T) {
	e := newEnv(t)
	a, b := e.open(hop), e.open(hop)
	for range 10 {
		no := e.sortedParcel(hop)
		start := make(chan struct{})
		var wg sync.WaitGroup
		bags := []string{a.ID, b.ID}
		errs := make([]error, 2)
		for i := range bags {
			wg.Go(func() {
				<-start
				_, errs[i] = e.svc.AddItem(context.Background(), e.op, bags[i], no, e.scan())
			})
		}
		close(start)
		wg.Wait()
		var won, lost []int
		for i, err := range errs {
			if err == nil {
				won = append(won, i)
			} else {
				wantErr(t, err, packing.ErrAlreadyBagged)
				lost = append(lost, i)
			}
		}
		if len(won) != 1 || len(lost) != 1 {
			t.Fatalf("won %v lost %v: %v", won, lost, errs)
		}
		if d := details(t, errs[lost[0]]); d["bag_id"] != bags[won[0]] {
			t.Fatalf("refusal names %v, winner is %s", d["bag_id"], bags[won[0]])
		}
		if n := e.count(`SELECT count(*) FROM bag_items WHERE tracking_no = $1`, no); n != 1 {
			t.Fatalf("parcel in %d bags", n)
		}
	}
}
