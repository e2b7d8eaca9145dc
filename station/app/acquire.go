package app

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrAcquireTimeout means no pooled PostgreSQL connection became free (or
// could be opened) within database.acquire_timeout. Nothing was sent to the
// database, so the caller may retry: it reports SafeToRetry, which the
// edges answer with 503 database_unavailable instead of letting requests
// pile up behind an exhausted pool or a PostgreSQL that does not answer.
var ErrAcquireTimeout error = acquireTimeoutError{}

type acquireTimeoutError struct{}

func (acquireTimeoutError) Error() string {
	return "database: no connection free within database.acquire_timeout"
}
func (acquireTimeoutError) SafeToRetry() bool { return true } // read by pgconn.SafeToRetry
func (acquireTimeoutError) Timeout() bool     { return true }

// acquireDeadline enforces database.acquire_timeout. pgxpool has no such
// setting; its acquire tracer is the one hook that runs before the wait and
// whose context the wait (and the ping of an idle connection) uses. The
// deadline bounds only the wait: the query then runs under the caller's own
// context.
type acquireDeadline struct{ d time.Duration }

func (a acquireDeadline) TraceAcquireStart(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireStartData) context.Context {
	if a.d <= 0 {
		return ctx
	}
	actx, cancel := context.WithTimeoutCause(ctx, a.d, ErrAcquireTimeout)
	return &acquireContext{Context: actx, cancel: cancel}
}

func (acquireDeadline) TraceAcquireEnd(ctx context.Context, _ *pgxpool.Pool, _ pgxpool.TraceAcquireEndData) {
	if c, ok := ctx.(*acquireContext); ok {
		c.cancel()
	}
}

// pgx wants a query tracer before it looks for the acquire hooks.
func (acquireDeadline) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (acquireDeadline) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// acquireContext reports its own expiry as ErrAcquireTimeout: pgxpool
// returns ctx.Err() when the wait ends, and a bare DeadlineExceeded would
// read as the caller's deadline.
type acquireContext struct {
	context.Context
	cancel context.CancelFunc
}

func (c *acquireContext) Err() error {
	err := c.Context.Err()
	if err != nil && errors.Is(context.Cause(c.Context), ErrAcquireTimeout) {
		return ErrAcquireTimeout
	}
	return err
}
