package app_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/app"
	"github.com/expresshub/station/station/config"
)

// TestAcquireTimeoutBoundsTheWaitForAConnection: with every connection
// held, a query waits database.acquire_timeout and then fails with
// ErrAcquireTimeout (safe to retry) instead of queueing; a caller's own
// shorter deadline still reads as its own; a freed connection serves again.
func TestAcquireTimeoutBoundsTheWaitForAConnection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := app.OpenPool(ctx, config.Database{URL: dbtest.URL(t), MaxConns: 1, AcquireTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	held, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err = pool.Exec(ctx, "SELECT 1")
	waited := time.Since(start)
	if !errors.Is(err, app.ErrAcquireTimeout) || !pgconn.SafeToRetry(err) {
		t.Fatalf("exec on an exhausted pool: %v, want ErrAcquireTimeout (safe to retry)", err)
	}
	if waited < 200*time.Millisecond || waited > 5*time.Second {
		t.Fatalf("waited %v for a connection, want about the 200ms acquire timeout", waited)
	}

	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := pool.Exec(short, "SELECT 1"); !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, app.ErrAcquireTimeout) {
		t.Fatalf("caller's own deadline: %v, want context.DeadlineExceeded", err)
	}

	held.Release()
	if _, err := pool.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("after release: %v", err)
	}
}
