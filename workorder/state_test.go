package workorder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/workorder"
)

// stateWorld records operations on parcels through the door, as sorting and
// packing do.
type stateWorld struct {
	t   *testing.T
	db  *pgxpool.Pool
	seq atomic.Int64
}

func (w *stateWorld) record(tn string, moves ...workorder.Move) error {
	n := w.seq.Add(1)
	o := workorder.Order{ID: workorder.NewID(), StationID: "SG-H01", Type: "test", TrackingNo: tn,
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op1"}, ScanID: fmt.Sprintf("scan-%d", n),
		RequestHash: []byte{byte(n)}, Outcome: "ok", Response: []byte("{}"), Moves: moves}
	_, err := workorder.Commit[json.RawMessage](context.Background(), w.db, o, nil)
	return err
}

// into brings a new parcel into state s by the way a parcel physically
// gets there.
func (w *stateWorld) into(s workorder.State) string {
	w.t.Helper()
	tn := fmt.Sprintf("SG%010d", 1_000_000_000+w.seq.Add(1))
	steps := map[workorder.State][]workorder.Move{
		workorder.StateNone:     nil,
		workorder.StateReceived: {{Op: workorder.OpReceive, To: workorder.StateReceived}},
		workorder.StateSorted:   {{Op: workorder.OpReceive, To: workorder.StateReceived}, {Op: workorder.OpSort, To: workorder.StateSorted, NextHop: "SG-L01", Chute: 3}},
		workorder.StateAside:    {{Op: workorder.OpReceive, To: workorder.StateReceived}, {Op: workorder.OpSort, To: workorder.StateAside, ExceptionCode: "RESTRICTED", Chute: 99}},
	}
	bagged := append(steps[workorder.StateSorted], workorder.Move{Op: workorder.OpBagAdd, To: workorder.StateBagged, NextHop: "SG-L01", BagID: "BG0001"})
	steps[workorder.StateBagged] = bagged
	sealed := append(bagged[:len(bagged):len(bagged)], workorder.Move{Op: workorder.OpBagSeal, To: workorder.StateSealed, NextHop: "SG-L01", BagID: "BG0001"})
	steps[workorder.StateSealed] = sealed
	steps[workorder.StateDeparted] = append(sealed[:len(sealed):len(sealed)], workorder.Move{Op: workorder.OpHandover, To: workorder.StateDeparted, BagID: "BG0001", HandoverID: "H1"})
	for _, m := range steps[s] {
		m.TrackingNo = tn
		if err := w.record(tn, m); err != nil {
			w.t.Fatalf("into %s: %s: %v", s, m.Op, err)
		}
	}
	return tn
}

func (w *stateWorld) state(tn string) workorder.Parcel {
	w.t.Helper()
	p, err := workorder.ParcelState(context.Background(), w.db, "SG-H01", tn)
	if err != nil {
		w.t.Fatal(err)
	}
	return p
}

// TestStateMatrixEveryCell tries every operation from every state against
// real PostgreSQL: a refused operation answers its code and writes nothing;
// an allowed one moves the parcel; a repeat writes nothing either.
func TestStateMatrixEveryCell(t *testing.T) {
	w := &stateWorld{t: t, db: dbtest.Pool(t)}
	to := map[workorder.Op]workorder.Move{
		workorder.OpReceive:   {To: workorder.StateReceived},
		workorder.OpSort:      {To: workorder.StateSorted, NextHop: "SG-L01", Chute: 3},
		workorder.OpConfirm:   {To: workorder.StateSorted, NextHop: "SG-L01", Chute: 3},
		workorder.OpBagAdd:    {To: workorder.StateBagged, NextHop: "SG-L01", BagID: "BG0002"},
		workorder.OpBagRemove: {To: workorder.StateSorted, NextHop: "SG-L01"},
	}
	matrix := workorder.Matrix()
	for op, move := range to {
		for _, from := range workorder.States() {
			want := matrix[op][from]
			t.Run(fmt.Sprintf("%s from %q", op, from), func(t *testing.T) {
				tn := w.into(from)
				before := w.state(tn)
				orders := count(t, w.db, `SELECT count(*) FROM work_orders WHERE tracking_no = $1`, tn)
				m := move
				m.Op, m.TrackingNo = op, tn
				err := w.record(tn, m)
				after := w.state(tn)
				switch want {
				case "":
					if err != nil {
						t.Fatalf("allowed, but: %v", err)
					}
					if after.State != m.To {
						t.Fatalf("state %q, want %q", after.State, m.To)
					}
					wantVisit := max(before.Visit, 1)
					if before.State == workorder.StateDeparted {
						wantVisit = before.Visit + 1
					}
					if after.Visit != wantVisit {
						t.Fatalf("visit %d, want %d (was %d, %q)", after.Visit, wantVisit, before.Visit, before.State)
					}
				default:
					f, ok := fault.As(err)
					if !ok || f.Code != want {
						t.Fatalf("got %v, want refusal %s", err, want)
					}
					if se, ok := errors.AsType[*workorder.StateError](err); !ok || se.Parcel.State != from {
						t.Fatalf("refusal does not carry the state it was refused in: %#v", err)
					}
					if after != before {
						t.Fatalf("a refusal changed the state: %+v -> %+v", before, after)
					}
					if n := count(t, w.db, `SELECT count(*) FROM work_orders WHERE tracking_no = $1`, tn); n != orders {
						t.Fatalf("a refusal recorded %d work orders", n-orders)
					}
				}
			})
		}
	}
}

// The cells the issue names, spelled out, so a change of the matrix that
// breaks them fails here by name.
func TestStateMatrixNamedCells(t *testing.T) {
	m := workorder.Matrix()
	for _, c := range []struct {
		op   workorder.Op
		from workorder.State
		want string
	}{
		{workorder.OpSort, workorder.StateDeparted, "parcel_departed"},
		{workorder.OpBagAdd, workorder.StateDeparted, "parcel_departed"},
		{workorder.OpReceive, workorder.StateDeparted, ""},
		{workorder.OpReceive, workorder.StateReceived, "repeat"},
		{workorder.OpReceive, workorder.StateBagged, "repeat"},
		{workorder.OpSort, workorder.StateAside, ""},
		{workorder.OpBagRemove, workorder.StateSealed, "parcel_in_sealed_bag"},
	} {
		if got := m[c.op][c.from]; got != c.want {
			t.Errorf("%s from %q: %q, want %q", c.op, c.from, got, c.want)
		}
	}
}

// TestHistoryFollowsTheVisit: a parcel that left and came back is in its
// second visit, and its history lists every operation in order.
func TestHistoryFollowsTheVisit(t *testing.T) {
	w := &stateWorld{t: t, db: dbtest.Pool(t)}
	tn := w.into(workorder.StateDeparted)
	if err := w.record(tn, workorder.Move{Op: workorder.OpReceive, TrackingNo: tn, To: workorder.StateReceived}); err != nil {
		t.Fatal(err)
	}
	p, entries, err := workorder.History(context.Background(), w.db, "SG-H01", tn)
	if err != nil {
		t.Fatal(err)
	}
	if p.Visit != 2 || p.State != workorder.StateReceived {
		t.Fatalf("state %+v", p)
	}
	if len(entries) != 6 {
		t.Fatalf("%d entries, want 6", len(entries))
	}
	for i := 1; i < len(entries); i++ {
		if entries[i].At.Before(entries[i-1].At) {
			t.Fatalf("entries out of order: %v", entries)
		}
	}
	if p.VisitOrderID != entries[5].ID {
		t.Fatalf("the visit starts at %s, want the second receive %s", p.VisitOrderID, entries[5].ID)
	}
}

// TestTransactConcurrentDuplicatesReplayTheFirst: twenty requests with one
// scan key at once get one answer, byte for byte, and one work order; the
// same key with another request is scan_id_reused.
func TestTransactConcurrentDuplicatesReplayTheFirst(t *testing.T) {
	db := dbtest.Pool(t)
	ctx := context.Background()
	var runs atomic.Int64
	req := workorder.Request{StationID: "SG-H01", ScanID: "dup-1", Hash: workorder.RequestHash("x", "1"), Type: "test",
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op1"}}
	op := func(ctx context.Context, tx *workorder.Tx) (map[string]string, workorder.Order, error) {
		runs.Add(1)
		return map[string]string{"id": tx.ID.String()}, workorder.Order{}, nil
	}
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	errs := make([]error, 20)
	for i := range bodies {
		wg.Go(func() {
			r, err := workorder.Transact(ctx, db, req, op)
			bodies[i], errs[i] = string(r.Body), err
		})
	}
	wg.Wait()
	for i := range bodies {
		if errs[i] != nil || bodies[i] != bodies[0] || bodies[i] == "" {
			t.Fatalf("request %d: %q %v (first %q)", i, bodies[i], errs[i], bodies[0])
		}
	}
	if n := runs.Load(); n != 1 {
		t.Fatalf("the operation ran %d times", n)
	}
	if n := count(t, db, `SELECT count(*) FROM work_orders WHERE scan_id = 'dup-1'`); n != 1 {
		t.Fatalf("%d work orders", n)
	}
	other := req
	other.Hash = workorder.RequestHash("x", "2")
	if _, err := workorder.Transact(ctx, db, other, op); !errors.Is(err, workorder.ErrScanIDReused) {
		t.Fatalf("changed body: %v", err)
	}
}

// TestCommitConcurrentDuplicatesReplayTheFirst is the same for the
// one-round-trip path.
func TestCommitConcurrentDuplicatesReplayTheFirst(t *testing.T) {
	db := dbtest.Pool(t)
	var wg sync.WaitGroup
	bodies := make([]string, 20)
	errs := make([]error, 20)
	for i := range bodies {
		wg.Go(func() {
			o := order("dup-2", "SG1000000009", fmt.Sprintf(`{"n":%d}`, i))
			r, err := commit(context.Background(), db, o, nil)
			bodies[i], errs[i] = string(r.Body), err
		})
	}
	wg.Wait()
	for i := range bodies {
		if errs[i] != nil || bodies[i] != bodies[0] {
			t.Fatalf("request %d: %q %v (first %q)", i, bodies[i], errs[i], bodies[0])
		}
	}
	if n := count(t, db, `SELECT count(*) FROM tracking_outbox WHERE tracking_no = 'SG1000000009'`); n != 1 {
		t.Fatalf("%d events", n)
	}
}

func TestEventTypesRoundTrip(t *testing.T) {
	for _, et := range workorder.EventTypes() {
		got, err := workorder.ParseEventType(et.String())
		if err != nil || got != et {
			t.Fatalf("%s: %v %v", et, got, err)
		}
	}
	if _, err := workorder.ParseEventType("sortd"); err == nil {
		t.Fatal("an unknown type parsed")
	}
}

// The README's state table is the matrix.
func TestREADMEShowsTheMatrix(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), workorder.MatrixMarkdown()) {
		t.Fatalf("README.md does not contain the state matrix; paste:\n%s", workorder.MatrixMarkdown())
	}
}
