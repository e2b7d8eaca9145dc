package lease

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"go.uber.org/zap"
)

// Job is one run of a singleton job. It must stop when ctx ends and fence
// its writes with l.Guard.
type Job func(ctx context.Context, l *Lease) error

// Run runs job every period on whichever instance holds the lease name,
// until ctx ends. Every instance calls Run: the others poll every ttl/3 and
// take over once the holder's lease expires. The first run comes one
// period after the job's first-ever acquisition, and the period is kept
// across holders (the lease row remembers the last run), so a deployment,
// a takeover or a restart never runs the job early. On return the lease
// is released.
func (h *Holder) Run(ctx context.Context, name string, ttl, every time.Duration, job Job) {
	for ctx.Err() == nil {
		l, err := h.TryAcquire(ctx, name, ttl)
		if err != nil {
			if !errors.Is(err, ErrNotAcquired) && ctx.Err() == nil {
				h.log.Warn("lease not acquired", zap.String("lease", name), zap.Error(err))
			}
			if !sleep(ctx, jitter(ttl/3)) {
				return
			}
			continue
		}
		h.hold(l, every, job)
		if err := l.Release(ctx); err != nil {
			h.log.Warn("lease not released; it expires by itself", zap.String("lease", name), zap.Error(err))
		}
	}
}

// hold runs the job every period while the lease lasts.
func (h *Holder) hold(l *Lease, every time.Duration, job Job) {
	// Both times are the database's: no clock skew between instances.
	wait := l.ranAt.Add(every).Sub(l.acquiredAt)
	for sleep(l.ctx, wait) {
		err := job(l.ctx, l)
		if errors.Is(context.Cause(l.ctx), ErrLeaseLost) {
			h.m.runs.WithLabelValues(l.name, "lost").Inc()
			return
		}
		if err != nil && l.ctx.Err() != nil {
			return // stopped mid-run: not a run, the next holder does it
		}
		result := "ok"
		if err != nil {
			result = "error"
			h.log.Warn("singleton job failed; next try after its period", zap.String("lease", l.name), zap.Error(err))
		}
		h.m.runs.WithLabelValues(l.name, result).Inc()
		// A failed run counts too: a job that keeps failing is tried once a
		// period, not in a loop. A run that finished is recorded even if
		// this instance is stopping meanwhile (the fence still decides).
		rctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), l.ttl)
		tag, err := h.db.Exec(rctx, `UPDATE job_leases SET ran_at = now()
			WHERE name = $1 AND holder = $2 AND fence = $3 AND expires_at > now()`, l.name, h.id, l.fence)
		cancel()
		switch {
		case err != nil:
			h.log.Warn("singleton job run not recorded", zap.String("lease", l.name), zap.Error(err))
		case tag.RowsAffected() == 0:
			l.lose("taken")
			return
		}
		wait = every
	}
}

// sleep waits d, or less if ctx ends; it reports whether ctx is still on.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d by ±20% so instances do not poll in step.
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d*4/5 + rand.N(d*2/5+1)
}
