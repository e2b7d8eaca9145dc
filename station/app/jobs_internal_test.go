package app

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/history"
	"github.com/expresshub/station/station/lease"
)

func TestHistoryJobByAHolderThatLostItsLeaseDropsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	// Ten days ago, past every retention of the test below.
	if _, err := db.Exec(ctx, `SELECT history_partitions(t, (now() AT TIME ZONE 'UTC')::date - 10, (now() AT TIME ZONE 'UTC')::date - 10)
		FROM unnest(ARRAY['work_orders', 'sort_results', 'tracking_outbox', 'parcel_state_history', 'belt_decisions']) AS t`); err != nil {
		t.Fatal(err)
	}
	stale, err := lease.NewHolder(db, lease.Options{ID: "stale", Log: zaptest.NewLogger(t)}).TryAcquire(ctx, LeaseHistory, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stale.Release(ctx) }()
	if _, err := db.Exec(ctx, `UPDATE job_leases SET expires_at = now() - interval '1 second' WHERE name = $1`, LeaseHistory); err != nil {
		t.Fatal(err)
	}
	current, err := lease.NewHolder(db, lease.Options{ID: "current", Log: zaptest.NewLogger(t)}).TryAcquire(ctx, LeaseHistory, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = current.Release(ctx) }()
	cfg := config.Defaults().History
	cfg.Retain = config.Retain{WorkOrders: 48 * time.Hour, SortResults: 48 * time.Hour, TrackingOutbox: 48 * time.Hour,
		ParcelStateHistory: 48 * time.Hour, ScanKeys: 24 * time.Hour, BeltDecisions: 48 * time.Hour}
	rep, err := historyKeeper(db, cfg).Run(ctx, stale.Guard)
	if !errors.Is(err, lease.ErrLeaseLost) || len(rep.Dropped) != 0 || rep.Created != 0 {
		t.Fatalf("stale run: %+v, %v; want nothing and ErrLeaseLost", rep, err)
	}
	parts, err := history.Partitions(ctx, db, "work_orders")
	if err != nil {
		t.Fatal(err)
	}
	if len(parts) == 0 || parts[0].End.After(time.Now().Add(-8*24*time.Hour)) {
		t.Fatalf("the old partition is gone: %v", parts)
	}
	// The current holder drops it.
	rep, err = historyKeeper(db, cfg).Run(ctx, current.Guard)
	if err != nil || len(rep.Dropped) != 5 {
		t.Fatalf("current run: %+v, %v; want the five old partitions dropped", rep, err)
	}
}
