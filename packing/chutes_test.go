package packing_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/workorder"
)

// atChute records a sorter confirm that put a parcel into chute, as the
// belt does: the parcel is sorted there and in no bag.
func (e *env) atChute(chute int, tn, nextHop string, weightG int) {
	e.t.Helper()
	o := workorder.Order{ID: workorder.NewID(), StationID: station, Type: "sorter_confirm", TrackingNo: tn,
		Actor: workorder.Actor{Kind: workorder.ActorSorter, ID: "asm1"}, ScanID: "confirm-" + e.scan(),
		RequestHash: []byte{1}, Outcome: "sorted", Response: []byte("{}"),
		Moves: []workorder.Move{{Op: workorder.OpConfirm, TrackingNo: tn, To: workorder.StateSorted, NextHop: nextHop, Chute: chute, WeightG: weightG}}}
	if _, err := workorder.Commit[json.RawMessage](context.Background(), e.db, o, nil); err != nil {
		e.t.Fatal(err)
	}
}

// inTx runs a chute operation in its own work order, as the belt does.
func inTx[T any](e *env, scanID string, fn func(ctx context.Context, tx *workorder.Tx) (T, workorder.Order, error)) (T, error) {
	r, err := workorder.Transact(context.Background(), e.db, workorder.Request{StationID: station, ScanID: scanID,
		Hash: []byte(scanID), Type: "test", Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op-1"}}, fn)
	return r.Value, err
}

func (e *env) bind(chute int, chuteHop, bagID string) (packing.ChuteBinding, error) {
	return inTx(e, e.scan(), func(ctx context.Context, tx *workorder.Tx) (packing.ChuteBinding, workorder.Order, error) {
		return e.svc.BindTx(ctx, tx, "op-1", chute, chuteHop, bagID)
	})
}

func (e *env) confirmInto(chute int, tn string) packing.ChuteAdd {
	e.t.Helper()
	scan := e.scan()
	add, err := inTx(e, scan, func(ctx context.Context, tx *workorder.Tx) (packing.ChuteAdd, workorder.Order, error) {
		p, err := tx.Parcel(ctx, tn)
		if err != nil {
			return packing.ChuteAdd{}, workorder.Order{}, err
		}
		add, also, err := e.svc.AddAtChuteTx(ctx, tx, scan, workorder.Actor{Kind: workorder.ActorSorter, ID: "asm1"}, chute, p)
		o := workorder.Order{Type: "sorter_confirm"}
		if also != nil {
			o.Also = []workorder.Order{*also}
		}
		return add, o, err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return add
}

func TestBindingABagTakesTheParcelsWaitingAtTheChute(t *testing.T) {
	e := newEnv(t)
	right, wrong := e.parcel(), e.parcel()
	e.atChute(5, right, hop, 1200)
	e.atChute(5, wrong, "SG-H03", 800)
	b := e.open(hop)
	got, err := e.bind(5, hop, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Added) != 1 || got.Added[0] != right || len(got.Left) != 1 || got.Left[0].Reason != "wrong_next_hop" {
		t.Fatalf("bind: %+v", got)
	}
	if got.Fill.Parcels != 1 || got.Fill.Grams != 1200 {
		t.Fatalf("fill %+v", got.Fill)
	}
	p, err := workorder.ParcelState(ctx(t), e.db, station, right)
	if err != nil || p.State != workorder.StateBagged || p.BagID != b.ID {
		t.Fatalf("state of the bagged parcel: %+v %v", p, err)
	}
	if ev := e.events(right); len(ev) != 1 || ev[0] != "bagged" {
		t.Fatalf("events %v", ev)
	}
}

func TestBindRefusals(t *testing.T) {
	e := newEnv(t)
	b, other := e.open(hop), e.open(hop)
	if _, err := e.bind(5, "SG-H03", b.ID); !errorsIs(err, packing.ErrWrongNextHop) {
		t.Fatalf("bag for another hop: %v", err)
	}
	if _, err := e.bind(5, hop, b.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := e.bind(5, hop, b.ID); err != nil || !got.Bound || got.BagID != b.ID {
		t.Fatalf("the same bag again is a repeat: %+v %v", got, err)
	}
	if _, err := e.bind(5, hop, other.ID); !errorsIs(err, packing.ErrChuteHasBag) {
		t.Fatalf("second bag at the chute: %v", err)
	}
	if _, err := e.bind(6, hop, b.ID); !errorsIs(err, packing.ErrBagAtChute) {
		t.Fatalf("bag at two chutes: %v", err)
	}
	sealed := e.sealedBag(hop, 1)
	if _, err := e.bind(7, hop, sealed.ID); !errorsIs(err, packing.ErrBagSealed) {
		t.Fatalf("sealed bag: %v", err)
	}
}

func TestConfirmsFillTheBoundBagUntilSealNow(t *testing.T) {
	e := newEnv(t, packing.WithBagLimits(packing.BagLimits{MaxParcels: 3, MaxGrams: 100_000, SealSoon: 0.6}))
	b := e.open(hop)
	if _, err := e.bind(4, hop, b.ID); err != nil {
		t.Fatal(err)
	}
	var levels []packing.FillLevel
	for range 3 {
		tn := e.parcel()
		e.atChute(4, tn, hop, 500)
		add := e.confirmInto(4, tn)
		if !add.Added || add.BagID != b.ID {
			t.Fatalf("confirm: %+v", add)
		}
		levels = append(levels, add.Fill.Level)
	}
	if levels[0] != packing.FillOK || levels[1] != packing.FillSealSoon || levels[2] != packing.FillSealNow {
		t.Fatalf("levels %v", levels)
	}
	got, err := e.svc.Bag(ctx(t), station, b.ID)
	if err != nil || got.ItemCount != 3 || got.ContentsG != 1500 {
		t.Fatalf("bag %+v %v", got, err)
	}
	if n := e.count(`SELECT count(*) FROM work_orders WHERE type = 'bag_add' AND actor_kind = 'sorter'`); n != 3 {
		t.Fatalf("%d bag-add work orders by the sorter", n)
	}
	// A parcel for another hop into that chute stays there, not forced in.
	stray := e.parcel()
	e.atChute(4, stray, "SG-H03", 0)
	if add := e.confirmInto(4, stray); add.Added || add.Reason != "wrong_next_hop" {
		t.Fatalf("stray: %+v", add)
	}
	// Sealing unbinds: the next confirm finds no bag.
	if _, err := e.svc.Seal(ctx(t), e.op, b.ID, 2000, e.scan()); err != nil {
		t.Fatal(err)
	}
	late := e.parcel()
	e.atChute(4, late, hop, 0)
	if add := e.confirmInto(4, late); add.Added || add.Reason != "no_bag" {
		t.Fatalf("after the seal: %+v", add)
	}
	bags, _, err := e.svc.ChuteBags(ctx(t), station)
	if err != nil || len(bags) != 0 {
		t.Fatalf("chute bags after the seal: %+v %v", bags, err)
	}
}

func TestFillOf(t *testing.T) {
	l := packing.BagLimits{MaxParcels: 10, MaxGrams: 10_000, SealSoon: 0.9}
	for _, c := range []struct {
		n, g int
		want packing.FillLevel
	}{{0, 0, packing.FillOK}, {8, 0, packing.FillOK}, {9, 0, packing.FillSealSoon}, {1, 9_500, packing.FillSealSoon},
		{10, 0, packing.FillSealNow}, {2, 10_000, packing.FillSealNow}, {12, 0, packing.FillSealNow}} {
		if got := packing.FillOf(c.n, c.g, l).Level; got != c.want {
			t.Errorf("%d parcels, %d g: %s, want %s", c.n, c.g, got, c.want)
		}
	}
}

// TestBindingTheBagAlreadyThereAnswersItsRealFill: a supervisor who scans
// the bag under its chute again (a new scan id) is told how full it is,
// not an empty fill with no level, and is given no work order that was
// never written.
func TestBindingTheBagAlreadyThereAnswersItsRealFill(t *testing.T) {
	e := newEnv(t)
	e.atChute(5, e.parcel(), hop, 1200)
	b := e.open(hop)
	first, err := e.bind(5, hop, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.bind(5, hop, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fill != first.Fill || again.Fill.Level != packing.FillOK || again.Fill.Parcels != 1 {
		t.Fatalf("fill again %+v, first %+v", again.Fill, first.Fill)
	}
	if again.WorkOrderID != "" || len(again.Added) != 0 {
		t.Fatalf("a repeat names work order %q and adds %v", again.WorkOrderID, again.Added)
	}
}
