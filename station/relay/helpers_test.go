package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/workorder"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgx's pool health checker and gRPC's internals end shortly after
		// their Close; these are the ones that may still be unwinding.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("google.golang.org/grpc/internal/grpcsync.(*CallbackSerializer).run"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}

// world is one database, one simulator and a way to start relays on it
// the way separate instances would run them: each with its own pool and its
// own downstream clients.
type world struct {
	t     testing.TB
	url   string
	db    *pgxpool.Pool
	sim   *sim.Simulator
	admin downstreamv1.SimAdminServiceClient
	seq   atomic.Int64
}

func newWorld(t testing.TB) *world {
	t.Helper()
	url := dbtest.URL(t)
	return &world{t: t, url: url, db: dbtest.PoolFor(t, url), sim: simtest.Start(t, simtest.WithZeroLatency())}
}

// orderCenter dials the simulator's order center through the production
// clients: token from IssueToken (shared via Redis), breaker, deadlines.
func (w *world) orderCenter() *clients.OrderCenter {
	w.t.Helper()
	rdb, prefix := dbtest.Redis(w.t)
	cfg := clients.DefaultConfig().WithAddr(w.sim.Addr())
	cfg.Token.KeyPrefix = prefix
	cfg.Breaker.OpenFor = 50 * time.Millisecond // recover fast once the sim is healthy again
	set, err := clients.Dial(context.Background(), cfg, clients.Options{Redis: rdb})
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { _ = set.Close() })
	return set.OrderCenter
}

// relay builds a relay as a separate instance would: own pool, own clients.
func (w *world) relay(cfg relay.Config) *relay.Relay {
	w.t.Helper()
	if cfg.BaseBackoff == 0 {
		cfg.BaseBackoff = time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 20 * time.Millisecond
	}
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Millisecond
	}
	return relay.New(dbtest.PoolFor(w.t, w.url), w.orderCenter(), cfg, nil, nil)
}

// parcel returns a new tracking number.
func (w *world) parcel() string { return fmt.Sprintf("SG%012d", 100000000000+w.seq.Add(1)) }

// record writes one work order with one event per type for the parcel, in
// one transaction, as a domain package would.
func (w *world) record(stationID, trackingNo string, types ...string) {
	w.t.Helper()
	if err := record(context.Background(), w.db, stationID, trackingNo, w.seq.Add(1), types...); err != nil {
		w.t.Fatal(err)
	}
}

func record(ctx context.Context, db *pgxpool.Pool, stationID, trackingNo string, n int64, types ...string) error {
	o := workorder.Order{ID: workorder.NewID(), StationID: stationID, Type: "test", TrackingNo: trackingNo,
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op-1"}, ScanID: fmt.Sprintf("scan-%d", n),
		RequestHash: []byte{1}, Outcome: "ok", Response: []byte("{}")}
	for _, typ := range types {
		et, err := workorder.ParseEventType(typ)
		if err != nil {
			return err
		}
		o.Events = append(o.Events, workorder.Event{TrackingNo: trackingNo, Type: et, Payload: map[string]any{"n": n}})
	}
	_, err := workorder.Commit[json.RawMessage](ctx, db, o, nil)
	return err
}

// outboxOrder is the parcel's event ids in outbox order.
func (w *world) outboxOrder(trackingNo string) []string {
	w.t.Helper()
	rows, err := w.db.Query(context.Background(), `SELECT event_id::text FROM tracking_outbox WHERE tracking_no = $1 ORDER BY id`, trackingNo)
	if err != nil {
		w.t.Fatal(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			w.t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

// received is the parcel's event ids in the order the order center
// recorded them, read back over the simulator's admin RPC.
func (w *world) received(trackingNo string) []string {
	w.t.Helper()
	if w.admin == nil {
		conn, err := grpc.NewClient(w.sim.Addr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			w.t.Fatal(err)
		}
		w.t.Cleanup(func() { _ = conn.Close() })
		w.admin = downstreamv1.NewSimAdminServiceClient(conn)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := w.admin.GetTrackingEvents(ctx, &downstreamv1.GetTrackingEventsRequest{TrackingNo: trackingNo})
	if err != nil {
		w.t.Fatal(err)
	}
	var ids []string
	for _, e := range resp.GetEvents() {
		if e.GetDuplicates() > 0 {
			w.t.Logf("event %s of %s was pushed %d more times (deduplicated)", e.GetEvent().GetEventId(), trackingNo, e.GetDuplicates())
		}
		ids = append(ids, e.GetEvent().GetEventId())
	}
	return ids
}

// checkDelivered fails unless the simulator holds exactly the parcels'
// outbox events, each once, in outbox order.
func (w *world) checkDelivered(parcels []string) {
	w.t.Helper()
	for _, no := range parcels {
		want, got := w.outboxOrder(no), w.received(no)
		if !slices.Equal(got, want) {
			w.t.Fatalf("parcel %s: order center has %v, outbox order is %v", no, got, want)
		}
	}
}

func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	if err := w.db.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		w.t.Fatal(err)
	}
	return n
}

// drain runs batches until one pushes nothing.
func drain(t testing.TB, r *relay.Relay) relay.BatchResult {
	t.Helper()
	var total relay.BatchResult
	for range 10_000 {
		res, err := r.RunOnce(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		total.Claimed += res.Claimed
		total.Pushed += res.Pushed
		total.Delivered += res.Delivered
		total.Failed += res.Failed
		total.Dead += res.Dead
		if res.Pushed == 0 {
			return total
		}
	}
	t.Fatal("the outbox never drained")
	return total
}

// waitFor polls cond until it holds; the deadline only guards against a
// hang and is far above what the condition needs.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }
