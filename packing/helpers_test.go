package packing_test

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/workorder"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	station = "SG-H01"
	hop     = "SG-H02" // a hub the demo station sends to
	hop2    = "SG-L01" // one of its own last-mile sites
)

// env is one packing service on a fresh database, talking to a real
// simulator (container and linehaul services) over loopback gRPC.
type env struct {
	t    testing.TB
	db   *pgxpool.Pool
	sim  *sim.Simulator
	svc  *packing.Service
	op   packing.Actor
	seq  atomic.Int64
	base int64
}

func newEnv(t testing.TB, opts ...packing.Option) *env {
	t.Helper()
	s := simtest.Start(t, simtest.WithZeroLatency())
	cfg := clients.DefaultConfig().WithAddr(s.Addr())
	set, err := clients.Dial(context.Background(), cfg, clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	db := dbtest.Pool(t)
	return &env{t: t, db: db, sim: s, svc: packing.New(db, set.Container, set.Linehaul, opts...),
		op: packing.Actor{StationID: station, OperatorID: "op-1"}, base: time.Now().UnixNano() % 1e6}
}

func ctx(t testing.TB) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// scan returns a fresh scan id.
func (e *env) scan() string { return fmt.Sprintf("scan-%d", e.seq.Add(1)) }

// parcel returns a new well-formed tracking number.
func (e *env) parcel() string { return fmt.Sprintf("SG%06d%06d", e.base, e.seq.Add(1)) }

// sorted records a sort of a parcel at a station through the work-order
// door, as the sorting package does: packing decides on the parcel's state
// at the station. nextHop "" records an exception sort.
func (e *env) sorted(stationID, trackingNo, nextHop string) {
	e.t.Helper()
	move := workorder.Move{Op: workorder.OpSort, TrackingNo: trackingNo, To: workorder.StateSorted, NextHop: nextHop, Chute: 7}
	if nextHop == "" {
		move.To, move.ExceptionCode, move.Chute = workorder.StateAside, "RESTRICTED_GOODS", 99
	}
	o := workorder.Order{ID: workorder.NewID(), StationID: stationID, Type: "sort", TrackingNo: trackingNo,
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "sorter-test"}, ScanID: "sort-" + e.scan(),
		RequestHash: []byte{1}, Outcome: "ok", Response: []byte("{}"), Moves: []workorder.Move{move}}
	if _, err := workorder.Commit[json.RawMessage](context.Background(), e.db, o, nil); err != nil {
		e.t.Fatal(err)
	}
}

// received records a receive of the parcel at the station, as the sorting
// package does.
func (e *env) received(stationID, trackingNo string) {
	e.t.Helper()
	o := workorder.Order{ID: workorder.NewID(), StationID: stationID, Type: "receive", TrackingNo: trackingNo,
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op-test"}, ScanID: "receive-" + e.scan(),
		RequestHash: []byte{1}, Outcome: "ok", Response: []byte("{}"),
		Moves: []workorder.Move{{Op: workorder.OpReceive, TrackingNo: trackingNo, To: workorder.StateReceived}}}
	if _, err := workorder.Commit[json.RawMessage](context.Background(), e.db, o, nil); err != nil {
		e.t.Fatal(err)
	}
}

// sortedParcel returns a new parcel sorted at the station to nextHop.
func (e *env) sortedParcel(nextHop string) string {
	no := e.parcel()
	e.sorted(station, no, nextHop)
	return no
}

func (e *env) open(nextHop string) packing.Bag {
	e.t.Helper()
	r, err := e.svc.Open(ctx(e.t), e.op, nextHop, e.scan())
	if err != nil {
		e.t.Fatalf("open bag for %s: %v", nextHop, err)
	}
	return r.Value
}

func (e *env) add(bagID, trackingNo string) packing.ItemChange {
	e.t.Helper()
	r, err := e.svc.AddItem(ctx(e.t), e.op, bagID, trackingNo, e.scan())
	if err != nil {
		e.t.Fatalf("add %s to %s: %v", trackingNo, bagID, err)
	}
	return r.Value
}

// sealedBag opens a bag for nextHop, fills it with n sorted parcels and
// seals it.
func (e *env) sealedBag(nextHop string, n int) packing.Bag {
	e.t.Helper()
	b := e.open(nextHop)
	for range n {
		e.add(b.ID, e.sortedParcel(nextHop))
	}
	r, err := e.svc.Seal(ctx(e.t), e.op, b.ID, 1000*n, e.scan())
	if err != nil {
		e.t.Fatalf("seal %s: %v", b.ID, err)
	}
	return r.Value
}

// events lists the outbox events of a parcel in outbox order.
func (e *env) events(trackingNo string) []string {
	e.t.Helper()
	rows, err := e.db.Query(context.Background(), `SELECT type FROM tracking_outbox WHERE tracking_no = $1 ORDER BY id`, trackingNo)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var typ string
		if err := rows.Scan(&typ); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, typ)
	}
	return out
}

func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// wantErr fails unless err matches target.
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

// details returns the client-facing details of a refusal.
func details(t testing.TB, err error) map[string]any {
	t.Helper()
	e, ok := fault.As(err)
	if !ok || e.Details == nil {
		t.Fatalf("error %v carries no details", err)
	}
	return e.Details
}

// golden compares got with testdata/name, rewriting it under -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs from the golden file (run with -update if the change is intended)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
