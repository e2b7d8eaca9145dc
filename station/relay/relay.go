package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/expresshub/station/clients"
)

// Pusher sends tracking events to the order center and returns one ack per
// event (clients.OrderCenter).
type Pusher interface {
	PushTrackingEvents(ctx context.Context, events []clients.TrackingEvent) ([]clients.EventAck, error)
}

// MaxPush is the most events one PushTrackingEvents call carries; a larger
// batch is pushed in consecutive chunks.
const MaxPush = 1000

// Config shapes the worker. Zero fields take the defaults of DefaultConfig.
type Config struct {
	BatchSize   int           // rows claimed per batch (relay.batch_size)
	Interval    time.Duration // pause when the outbox is drained (relay.interval)
	MaxAttempts int           // failed pushes before an event is dead (relay.max_attempts)
	Workers     int           // batches in flight per instance
	// BaseBackoff and MaxBackoff bound the exponential backoff of failed
	// rows and of the worker's pause while the order center is down.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
	// MaxPause caps the worker's pause while the order center is down, so
	// a recovered order center is found again quickly.
	MaxPause time.Duration
	// PushTimeout bounds one batch's pushes; it also bounds how long a
	// shutdown waits for the batch in flight.
	PushTimeout time.Duration
	// StatsInterval is how often the outbox gauges are refreshed.
	StatsInterval time.Duration
}

// DefaultConfig matches the station's configuration defaults.
func DefaultConfig() Config {
	return Config{BatchSize: 500, Interval: 200 * time.Millisecond, MaxAttempts: 10, Workers: 1,
		BaseBackoff: time.Second, MaxBackoff: 5 * time.Minute, MaxPause: 30 * time.Second, PushTimeout: 10 * time.Second, StatsInterval: 5 * time.Second}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BatchSize <= 0 {
		c.BatchSize = d.BatchSize
	}
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.Workers <= 0 {
		c.Workers = d.Workers
	}
	if c.BaseBackoff <= 0 {
		c.BaseBackoff = d.BaseBackoff
	}
	if c.MaxBackoff < c.BaseBackoff {
		c.MaxBackoff = max(d.MaxBackoff, c.BaseBackoff)
	}
	if c.MaxPause <= 0 {
		c.MaxPause = min(d.MaxPause, c.MaxBackoff)
	}
	if c.PushTimeout <= 0 {
		c.PushTimeout = d.PushTimeout
	}
	if c.StatsInterval <= 0 {
		c.StatsInterval = d.StatsInterval
	}
	return c
}

// Relay is the outbox worker of one instance.
type Relay struct {
	db      *pgxpool.Pool
	pusher  Pusher
	cfg     Config
	log     *zap.Logger
	metrics *metrics
	outbox  *Outbox

	mu     sync.Mutex
	rng    *rand.Rand
	paused int // consecutive batches that found the order center unavailable
}

// New builds a relay; reg receives its metrics (nil: unregistered).
func New(db *pgxpool.Pool, pusher Pusher, cfg Config, log *zap.Logger, reg prometheus.Registerer) *Relay {
	if log == nil {
		log = zap.NewNop()
	}
	return &Relay{db: db, pusher: pusher, cfg: cfg.withDefaults(), log: log, metrics: newMetrics(reg),
		outbox: NewOutbox(db), rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Run delivers until ctx ends. A batch in flight when ctx ends is finished
// (within PushTimeout) or rolled back, which releases its rows; Run
// returns once every worker has stopped.
func (r *Relay) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() { r.work(ctx) })
	}
	wg.Go(func() { r.refreshStats(ctx) })
	wg.Wait()
}

func (r *Relay) work(ctx context.Context) {
	for ctx.Err() == nil {
		res, err := r.RunOnce(ctx)
		var wait time.Duration
		switch {
		case errors.Is(err, ErrUnavailable):
			wait = r.pause()
			r.log.Warn("relay: order center unavailable; pausing", zap.Duration("for", wait), zap.Error(err))
		case err != nil:
			wait = r.cfg.Interval
			if ctx.Err() == nil {
				r.log.Error("relay: batch failed", zap.Error(err))
			}
		case res.Claimed >= r.cfg.BatchSize && res.Pushed > 0:
			continue // more is waiting
		default:
			wait = r.cfg.Interval
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}

// pause is the worker's wait after finding the order center unavailable:
// exponential in the consecutive failures, with jitter so that instances
// do not come back in step.
func (r *Relay) pause() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.paused++
	return min(r.backoffLocked(r.paused), r.cfg.MaxPause)
}

func (r *Relay) backoff(n int) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.backoffLocked(n)
}

// backoffLocked is base * 2^(n-1), capped, times a jitter factor in
// [0.5, 1.5).
func (r *Relay) backoffLocked(n int) time.Duration {
	d := r.cfg.BaseBackoff
	for i := 1; i < n && d < r.cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.cfg.MaxBackoff)
	return time.Duration(float64(d) * (0.5 + r.rng.Float64()))
}

// ErrUnavailable means the order center did not answer; the batch's rows
// were released untouched.
var ErrUnavailable = errors.New("relay: order center unavailable")

// BatchResult says what one batch did.
type BatchResult struct {
	Claimed   int // rows locked by this batch
	Pushed    int // events sent (the rest waited for an earlier event of their parcel)
	Delivered int
	Failed    int // counted an attempt, to be retried
	Dead      int // went dead in this batch
}

// row is one claimed outbox row.
type row struct {
	id       int64
	attempts int
	event    clients.TrackingEvent
}

// RunOnce claims, pushes and settles one batch. It is what Run loops over;
// tests and benchmarks call it directly.
func (r *Relay) RunOnce(ctx context.Context) (BatchResult, error) {
	if err := ctx.Err(); err != nil {
		return BatchResult{}, err
	}
	// From here the batch runs to its end even if ctx ends: stopping
	// halfway would push events and then forget that it did.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.PushTimeout+5*time.Second)
	defer cancel()
	start := time.Now()
	res, err := r.batch(bctx)
	if res.Claimed > 0 || err != nil {
		r.metrics.batchLatency.Observe(time.Since(start).Seconds())
	}
	return res, err
}

func (r *Relay) batch(ctx context.Context) (BatchResult, error) {
	var res BatchResult
	tx, err := r.db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("relay: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()

	claimed, err := claim(ctx, tx, r.cfg.BatchSize)
	if err != nil || len(claimed) == 0 {
		return res, err
	}
	res.Claimed = len(claimed)
	ready, err := inOrder(ctx, tx, claimed)
	if err != nil {
		return res, err
	}
	res.Pushed = len(ready)
	if len(ready) == 0 {
		return res, nil // every claimed row waits for an earlier event of its parcel
	}

	pushCtx, cancel := context.WithTimeout(ctx, r.cfg.PushTimeout)
	defer cancel()
	var delivered []int64
	var failed []failure
	var unavailable error
	for chunk := range slices.Chunk(ready, MaxPush) {
		acks, err := r.push(pushCtx, chunk)
		if err != nil && isUnavailable(err) {
			// Nothing is known about this chunk or the next ones: leave
			// them pending, untouched, for when the order center is back.
			unavailable = err
			r.metrics.failed.WithLabelValues("unavailable").Add(float64(len(chunk)))
			break
		}
		d, f := r.settle(chunk, acks, err)
		delivered, failed = append(delivered, d...), append(failed, f...)
		if len(f) > 0 {
			// A later chunk may hold later events of a parcel whose event
			// just failed here; they wait for it.
			break
		}
	}
	if err := markDelivered(ctx, tx, delivered); err != nil {
		return res, err
	}
	if err := markFailed(ctx, tx, failed); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("relay: commit: %w", err)
	}
	res.Delivered = len(delivered)
	for _, f := range failed {
		if f.dead {
			res.Dead++
		} else {
			res.Failed++
		}
	}
	r.metrics.delivered.Add(float64(res.Delivered))
	r.metrics.deadLettered.Add(float64(res.Dead))
	if unavailable != nil {
		return res, fmt.Errorf("%w: %w", ErrUnavailable, unavailable)
	}
	if res.Delivered > 0 {
		r.mu.Lock()
		r.paused = 0
		r.mu.Unlock()
	}
	return res, nil
}

func (r *Relay) push(ctx context.Context, rows []row) ([]clients.EventAck, error) {
	events := make([]clients.TrackingEvent, len(rows))
	for i, row := range rows {
		events[i] = row.event
	}
	return r.pusher.PushTrackingEvents(ctx, events)
}

// failure is the new state of a row whose push did not deliver it.
type failure struct {
	id   int64
	dead bool
	next time.Time
	err  string
}

// settle sorts a pushed chunk into delivered rows and failures.
func (r *Relay) settle(rows []row, acks []clients.EventAck, pushErr error) ([]int64, []failure) {
	byID := make(map[string]clients.EventAck, len(acks))
	for _, a := range acks {
		byID[a.EventID] = a
	}
	var delivered []int64
	var failed []failure
	now := time.Now()
	for _, row := range rows {
		a, ok := byID[row.event.EventID]
		var reason string
		rejected := false
		switch {
		case pushErr != nil:
			reason = "push failed: " + pushErr.Error()
			r.metrics.failed.WithLabelValues("error").Inc()
		case !ok:
			reason = "no acknowledgement for the event"
			r.metrics.failed.WithLabelValues("no_ack").Inc()
		case a.Delivered():
			delivered = append(delivered, row.id)
			continue
		default:
			rejected = a.Status == clients.AckRejected
			reason = fmt.Sprintf("%s: %s", a.Status, a.Reason)
			r.metrics.failed.WithLabelValues("rejected").Inc()
		}
		attempts := row.attempts + 1
		dead := rejected || attempts >= r.cfg.MaxAttempts
		failed = append(failed, failure{id: row.id, dead: dead, next: now.Add(r.backoff(attempts)), err: truncate(reason, 500)})
		if dead {
			r.log.Warn("relay: event dead", zap.Int64("outbox_id", row.id), zap.String("event_id", row.event.EventID),
				zap.String("tracking_no", row.event.TrackingNo), zap.Int("attempts", attempts), zap.String("reason", reason))
		}
	}
	return delivered, failed
}

// isUnavailable reports failures that say the order center is down or slow
// rather than anything about the events.
func isUnavailable(err error) bool {
	if errors.Is(err, clients.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	switch status.Code(err) {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded:
		return true
	}
	return false
}

const claimSQL = `
SELECT o.id, o.attempts, o.event_id::text, o.tracking_no, o.station_id, o.type, o.actor_id, w.actor_kind, o.occurred_at, o.payload::text
  FROM tracking_outbox o JOIN work_orders w ON w.id = o.work_order_id
 WHERE o.status = 'pending' AND o.next_attempt_at <= now()
   -- Not behind an earlier event of the parcel that is dead or waiting for
   -- its retry: such rows could not go anyway, and claiming them would let
   -- them fill every batch and starve the rest.
   AND NOT EXISTS (SELECT 1 FROM tracking_outbox e
                    WHERE e.tracking_no = o.tracking_no AND e.id < o.id
                      AND (e.status = 'dead' OR (e.status = 'pending' AND e.next_attempt_at > now())))
 ORDER BY o.id
 LIMIT $1
   FOR UPDATE OF o SKIP LOCKED`

// claim locks up to n due pending rows, oldest first, skipping rows other
// relays hold.
func claim(ctx context.Context, tx pgx.Tx, n int) ([]row, error) {
	rows, err := tx.Query(ctx, claimSQL, n)
	if err != nil {
		return nil, fmt.Errorf("relay: claim: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (row, error) {
		var r row
		var typ, actor, kind string
		err := cr.Scan(&r.id, &r.attempts, &r.event.EventID, &r.event.TrackingNo, &r.event.StationID, &typ, &actor, &kind,
			&r.event.OccurredAt, &r.event.PayloadJSON)
		r.event.Type = clients.EventType(typ)
		switch kind {
		case "sorter":
			r.event.SorterID = actor
		case "operator":
			r.event.OperatorID = actor
		}
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("relay: claim: %w", err)
	}
	return out, nil
}

// inOrder keeps the claimed rows that may go now: for each parcel, the
// claimed rows that form an unbroken prefix of its undelivered events. A
// row behind an earlier event that this batch does not hold (another
// relay has it, it waits for a retry, it is dead) waits; its lock is
// released at commit.
func inOrder(ctx context.Context, tx pgx.Tx, claimed []row) ([]row, error) {
	mine := make(map[int64]struct{}, len(claimed))
	parcels := make([]string, 0, len(claimed))
	seen := make(map[string]struct{}, len(claimed))
	var maxID int64
	for _, c := range claimed {
		mine[c.id] = struct{}{}
		maxID = max(maxID, c.id)
		if _, ok := seen[c.event.TrackingNo]; !ok {
			seen[c.event.TrackingNo] = struct{}{}
			parcels = append(parcels, c.event.TrackingNo)
		}
	}
	rows, err := tx.Query(ctx, `SELECT tracking_no, id FROM tracking_outbox
		WHERE tracking_no = ANY($1) AND status <> 'delivered' AND id <= $2 ORDER BY tracking_no, id`, parcels, maxID)
	if err != nil {
		return nil, fmt.Errorf("relay: parcel order: %w", err)
	}
	blocked := make(map[string]bool, len(parcels))
	ok := make(map[int64]struct{}, len(claimed))
	var no string
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&no, &id}, func() error {
		if blocked[no] {
			return nil
		}
		if _, held := mine[id]; !held {
			blocked[no] = true
			return nil
		}
		ok[id] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("relay: parcel order: %w", err)
	}
	ready := make([]row, 0, len(ok))
	for _, c := range claimed {
		if _, yes := ok[c.id]; yes {
			ready = append(ready, c)
		}
	}
	return ready, nil
}

func markDelivered(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE tracking_outbox SET status = 'delivered', delivered_at = now(), attempts = attempts + 1
		WHERE id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("relay: mark delivered: %w", err)
	}
	return nil
}

func markFailed(ctx context.Context, tx pgx.Tx, failed []failure) error {
	if len(failed) == 0 {
		return nil
	}
	ids := make([]int64, len(failed))
	dead := make([]bool, len(failed))
	next := make([]time.Time, len(failed))
	errs := make([]string, len(failed))
	for i, f := range failed {
		ids[i], dead[i], next[i], errs[i] = f.id, f.dead, f.next, f.err
	}
	_, err := tx.Exec(ctx, `UPDATE tracking_outbox o
		SET attempts = o.attempts + 1,
		    status = CASE WHEN u.dead THEN 'dead' ELSE 'pending' END,
		    next_attempt_at = u.next, last_error = u.err
		FROM unnest($1::bigint[], $2::bool[], $3::timestamptz[], $4::text[]) AS u(id, dead, next, err)
		WHERE o.id = u.id`, ids, dead, next, errs)
	if err != nil {
		return fmt.Errorf("relay: mark failed: %w", err)
	}
	return nil
}

func (r *Relay) refreshStats(ctx context.Context) {
	t := time.NewTicker(r.cfg.StatsInterval)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := r.outbox.Stats(qctx)
		cancel()
		if err == nil {
			r.metrics.set(st)
		} else if ctx.Err() == nil {
			r.log.Warn("relay: outbox stats", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
