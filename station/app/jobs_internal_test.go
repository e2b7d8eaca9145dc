package app

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap/zaptest"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/lease"
	"github.com/expresshub/station/workorder"
)

// outboxRow adds a tracking event with the given status, delivered (if
// deliveredAgo > 0) that long ago.
func outboxRow(t *testing.T, db *pgxpool.Pool, tn, status string, deliveredAgo time.Duration) {
	t.Helper()
	ctx := context.Background()
	wo := workorder.NewID()
	if _, err := db.Exec(ctx, `INSERT INTO work_orders (id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash, outcome, response)
		VALUES ($1, 'SG-H01', 'sort', $2, 'operator', 'op1', $3, '\x00', 'ok', '\x00')`, wo, tn, "scan-"+tn); err != nil {
		t.Fatal(err)
	}
	var delivered *time.Time
	if deliveredAgo > 0 {
		at := time.Now().Add(-deliveredAgo)
		delivered = &at
	}
	if _, err := db.Exec(ctx, `INSERT INTO tracking_outbox (event_id, work_order_id, tracking_no, station_id, type, actor_id, occurred_at, status, delivered_at)
		VALUES ($1, $2, $3, 'SG-H01', 'sorted', 'op1', now() - interval '100 hours', $4, $5)`,
		workorder.NewID(), wo, tn, status, delivered); err != nil {
		t.Fatal(err)
	}
}

func outboxLeft(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT tracking_no FROM tracking_outbox ORDER BY tracking_no`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return left
}

func TestPruneDeletesOnlyDeliveredEventsOlderThanTheRetention(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	const retain = 72 * time.Hour
	for _, tn := range []string{"old-1", "old-2", "old-3", "old-4", "old-5", "old-6", "old-7"} {
		outboxRow(t, db, tn, "delivered", 100*time.Hour)
	}
	outboxRow(t, db, "recent", "delivered", time.Hour)
	outboxRow(t, db, "pending", "pending", 0)
	outboxRow(t, db, "dead", "dead", 0)
	// Impossible today, but status is what counts, never the timestamp.
	outboxRow(t, db, "pending-stamped", "pending", 100*time.Hour)
	outboxRow(t, db, "dead-stamped", "dead", 100*time.Hour)

	h := lease.NewHolder(db, lease.Options{Log: zaptest.NewLogger(t)})
	l, err := h.TryAcquire(ctx, LeaseOutboxPrune, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(ctx) }()
	n, err := pruneOutbox(l.Context(), db, retain, 3, 10, l.Guard) // batches of 3: 3, 3, 1
	if err != nil || n != 7 {
		t.Fatalf("pruned %d, %v; want the 7 old delivered events", n, err)
	}
	want := []string{"dead", "dead-stamped", "pending", "pending-stamped", "recent"}
	if left := outboxLeft(t, db); !slices.Equal(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
	if n, err := pruneOutbox(l.Context(), db, retain, 3, 10, l.Guard); err != nil || n != 0 {
		t.Fatalf("second prune: %d, %v", n, err)
	}
}

func TestPruneByAHolderThatLostItsLeaseDeletesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	outboxRow(t, db, "old-1", "delivered", 100*time.Hour)
	outboxRow(t, db, "old-2", "delivered", 100*time.Hour)
	stale, err := lease.NewHolder(db, lease.Options{ID: "stale", Log: zaptest.NewLogger(t)}).TryAcquire(ctx, LeaseOutboxPrune, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stale.Release(ctx) }()
	if _, err := db.Exec(ctx, `UPDATE job_leases SET expires_at = now() - interval '1 second' WHERE name = $1`, LeaseOutboxPrune); err != nil {
		t.Fatal(err)
	}
	current, err := lease.NewHolder(db, lease.Options{ID: "current", Log: zaptest.NewLogger(t)}).TryAcquire(ctx, LeaseOutboxPrune, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = current.Release(ctx) }()
	n, err := pruneOutbox(context.Background(), db, 72*time.Hour, 1, 10, stale.Guard)
	if !errors.Is(err, lease.ErrLeaseLost) || n != 0 {
		t.Fatalf("stale prune: %d, %v; want nothing and ErrLeaseLost", n, err)
	}
	if left := outboxLeft(t, db); len(left) != 2 {
		t.Fatalf("left %v", left)
	}
}
