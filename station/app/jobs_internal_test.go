package app

import (
	"context"
	"errors"
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
	n, err := workorder.NewOutbox(db).Prune(context.Background(), 72*time.Hour, 1, 10, stale.Guard)
	if !errors.Is(err, lease.ErrLeaseLost) || n != 0 {
		t.Fatalf("stale prune: %d, %v; want nothing and ErrLeaseLost", n, err)
	}
	if left := outboxLeft(t, db); len(left) != 2 {
		t.Fatalf("left %v", left)
	}
}
