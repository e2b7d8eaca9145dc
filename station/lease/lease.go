package lease

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

var (
	// ErrNotAcquired means another holder has the lease and it has not
	// expired.
	ErrNotAcquired = errors.New("lease: held by another instance")
	// ErrLeaseLost means this holder no longer has the lease (it was taken
	// over, expired while the database was out of reach, or was released):
	// whatever the job was about to write must not be written.
	ErrLeaseLost = errors.New("lease: lost")
)

// DB is what the leases need of PostgreSQL (a *pgxpool.Pool).
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Options adjust a Holder. Zero values take defaults.
type Options struct {
	// ID names this holder in job_leases; default hostname:pid:random,
	// unique per Holder even within one process.
	ID         string
	Registerer prometheus.Registerer // nil: metrics are kept but not exported
	Log        *zap.Logger
}

// Holder takes leases on behalf of one station instance.
type Holder struct {
	db  DB
	id  string
	log *zap.Logger
	m   *metrics
}

// NewHolder builds a Holder over db.
func NewHolder(db DB, o Options) *Holder {
	if o.ID == "" {
		o.ID = instanceID()
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	return &Holder{db: db, id: o.ID, log: o.Log, m: newMetrics(o.Registerer)}
}

// ID is this holder's name in job_leases.
func (h *Holder) ID() string { return h.id }

func instanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// Taking over is allowed only once the row has expired by the database's
// clock; the fence rises on every acquisition, even a holder's own
// re-acquisition, so no two holdings ever share one. The first acquisition
// ever starts the job's schedule (ran_at).
const acquireSQL = `INSERT INTO job_leases AS l (name, holder, fence, expires_at, acquired_at, renewed_at, ran_at)
	VALUES ($1, $2, 1, now() + $3 * interval '1 microsecond', now(), now(), now())
	ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, fence = l.fence + 1,
	  expires_at = excluded.expires_at, acquired_at = now(), renewed_at = now(), ran_at = coalesce(l.ran_at, now())
	WHERE l.expires_at <= now()
	RETURNING fence, ran_at, now()`

// TryAcquire takes the lease name for ttl if nobody holds it, or returns
// ErrNotAcquired. The lease renews itself every ttl/3 until Release; its
// Context derives from ctx and is cancelled as soon as the lease is lost.
func (h *Holder) TryAcquire(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("lease %s: ttl must be positive, got %v", name, ttl)
	}
	// The local deadline counts from before the statement is sent: the
	// database's now() can only be later, so the row outlives our belief.
	sent := time.Now()
	var (
		fence int64
		ranAt time.Time
		dbNow time.Time
	)
	err := h.db.QueryRow(ctx, acquireSQL, name, h.id, ttl.Microseconds()).Scan(&fence, &ranAt, &dbNow)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("lease %s: %w", name, ErrNotAcquired)
	}
	if err != nil {
		return nil, fmt.Errorf("lease %s: acquire: %w", name, err)
	}
	l := &Lease{h: h, name: name, fence: fence, ttl: ttl, ranAt: ranAt, acquiredAt: dbNow, done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	h.m.acquisitions.WithLabelValues(name).Inc()
	h.m.held.WithLabelValues(name).Set(1)
	h.log.Info("lease acquired", zap.String("lease", name), zap.Int64("fence", fence), zap.Duration("ttl", ttl))
	go l.renew(sent.Add(ttl))
	return l, nil
}

// Acquire waits until it holds the lease name, polling every ttl/3, or
// until ctx ends. It returns at once on an error other than ErrNotAcquired.
func (h *Holder) Acquire(ctx context.Context, name string, ttl time.Duration) (*Lease, error) {
	for {
		l, err := h.TryAcquire(ctx, name, ttl)
		if !errors.Is(err, ErrNotAcquired) {
			return l, err
		}
		if !sleep(ctx, jitter(ttl/3)) {
			return nil, fmt.Errorf("lease %s: %w", name, ctx.Err())
		}
	}
}

// Lease is one holding of a named lease.
type Lease struct {
	h          *Holder
	name       string
	fence      int64
	ttl        time.Duration
	ranAt      time.Time // the job's last run under any holder (or its schedule's start), as of acquisition
	acquiredAt time.Time // database time

	ctx     context.Context
	cancel  context.CancelCauseFunc
	done    chan struct{} // closed when the renewal goroutine has returned
	release sync.Once
	mu      sync.Mutex // orders a loss against a release
}

// Context is cancelled when the lease is lost or released, or when the
// context it was acquired with ends. Run the job under it.
func (l *Lease) Context() context.Context { return l.ctx }

// Name is the lease's name.
func (l *Lease) Name() string { return l.name }

// Fence is this holding's fencing value; every acquisition raises it.
func (l *Lease) Fence() int64 { return l.fence }

// Err is nil while the lease is held, and otherwise says why not; it
// always wraps ErrLeaseLost then.
func (l *Lease) Err() error {
	if l.ctx.Err() == nil {
		return nil
	}
	cause := context.Cause(l.ctx)
	if errors.Is(cause, ErrLeaseLost) {
		return cause
	}
	return fmt.Errorf("lease %s: %w (%w)", l.name, ErrLeaseLost, cause)
}

// The row lock is what fences: FOR SHARE conflicts with the UPDATE of a
// takeover, which therefore waits for the writer's commit. clock_timestamp
// rather than now(): a transaction opened long ago must not count as
// inside a lease that has run out since.
const guardSQL = `SELECT fence FROM job_leases
	WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > clock_timestamp() FOR SHARE`

// Guard fences a write: call it inside the writer's transaction, before
// its writes. It returns an error wrapping ErrLeaseLost unless this holding
// is still current, and then holds the lease row until the transaction
// ends so no takeover can slip in before the commit. Keep guarded
// transactions short: renewals wait for them too.
func (l *Lease) Guard(ctx context.Context, tx pgx.Tx) error {
	if err := l.Err(); err != nil {
		return err
	}
	var fence int64
	err := tx.QueryRow(ctx, guardSQL, l.name, l.h.id, l.fence).Scan(&fence)
	if errors.Is(err, pgx.ErrNoRows) {
		l.lose("fenced")
		return l.Err()
	}
	if err != nil {
		return fmt.Errorf("lease %s: guard: %w", l.name, err)
	}
	return nil
}

const renewSQL = `UPDATE job_leases SET expires_at = now() + $4 * interval '1 microsecond', renewed_at = now()
	WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > now()`

// renew extends the lease every ttl/3 until it ends. deadline is when the
// lease certainly has not expired yet by our own clock; past it without a
// successful renewal, the lease is treated as lost.
func (l *Lease) renew(deadline time.Time) {
	defer close(l.done)
	every := max(l.ttl/3, time.Millisecond)
	retry := max(l.ttl/10, time.Millisecond)
	t := time.NewTimer(every)
	defer t.Stop()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-t.C:
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			l.lose("unreachable")
			return
		}
		sent := time.Now()
		rctx, cancel := context.WithTimeout(l.ctx, remaining)
		tag, err := l.h.db.Exec(rctx, renewSQL, l.name, l.h.id, l.fence, l.ttl.Microseconds())
		cancel()
		switch {
		case l.ctx.Err() != nil:
			return
		case err == nil && tag.RowsAffected() == 1:
			deadline = sent.Add(l.ttl)
			t.Reset(every)
		case err == nil:
			l.lose("taken")
			return
		default:
			l.h.log.Warn("lease renewal failed; retrying until the lease would expire", zap.String("lease", l.name),
				zap.Duration("left", time.Until(deadline)), zap.Error(err))
			t.Reset(max(min(retry, time.Until(deadline)), 0))
		}
	}
}

// lose cancels the job's context with ErrLeaseLost, unless the lease
// already ended (released, lost, or its parent context done).
func (l *Lease) lose(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ctx.Err() != nil {
		return
	}
	// Counted before the cancel, so whoever sees the job stop sees the count.
	l.h.m.losses.WithLabelValues(l.name, reason).Inc()
	l.h.m.held.WithLabelValues(l.name).Set(0)
	l.h.log.Warn("lease lost; job cancelled", zap.String("lease", l.name), zap.Int64("fence", l.fence), zap.String("reason", reason))
	l.cancel(fmt.Errorf("lease %s (fence %d): %w: %s", l.name, l.fence, ErrLeaseLost, reason))
}

var errReleased = errors.New("released")

// Release ends the holding: it stops renewing and, if the lease is still
// ours, expires the row so another instance can take it at once. The job's
// context is cancelled. Calling it again does nothing.
func (l *Lease) Release(ctx context.Context) error {
	var err error
	l.release.Do(func() {
		l.mu.Lock()
		l.cancel(fmt.Errorf("lease %s: %w", l.name, errReleased))
		l.mu.Unlock()
		<-l.done
		l.h.m.held.WithLabelValues(l.name).Set(0)
		if errors.Is(context.Cause(l.ctx), ErrLeaseLost) {
			return // someone else's row now
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, err = l.h.db.Exec(rctx, `UPDATE job_leases SET expires_at = now(), renewed_at = now()
			WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > now()`, l.name, l.h.id, l.fence)
		if err != nil {
			err = fmt.Errorf("lease %s: release: %w", l.name, err)
		}
	})
	return err
}
