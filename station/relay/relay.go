package relay

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/workorder"
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
	outbox  *workorder.Outbox
	tracer  trace.Tracer // nil: tracing is off

	mu     sync.Mutex
	rng    *rand.Rand
	paused int // consecutive batches that found the order center unavailable
}

// New builds a relay; reg receives its metrics (nil: unregistered).
func New(db *pgxpool.Pool, pusher Pusher, cfg Config, log *zap.Logger, reg prometheus.Registerer, opts ...Option) *Relay {
	if log == nil {
		log = zap.NewNop()
	}
	r := &Relay{db: db, pusher: pusher, cfg: cfg.withDefaults(), log: log, metrics: newMetrics(reg),
		outbox: workorder.NewOutbox(db), rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
	for _, o := range opts {
		o(r)
	}
	return r
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
	var unavailable error
	got, err := r.outbox.Deliver(ctx, r.cfg.BatchSize, func(ctx context.Context, ready []workorder.Claimed) workorder.Settlement {
		var s workorder.Settlement
		s, unavailable = r.send(ctx, ready)
		res.Delivered = len(s.Delivered)
		for _, f := range s.Failed {
			if f.Dead {
				res.Dead++
			} else {
				res.Failed++
			}
		}
		return s
	})
	res.Claimed, res.Pushed = got.Claimed, got.Ready
	if err != nil {
		return BatchResult{Claimed: res.Claimed, Pushed: res.Pushed}, fmt.Errorf("relay: %w", err)
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

// send pushes the ready rows in chunks and settles them. unavailable is
// the error that stopped it when the order center was down: the rows of
// that chunk and the later ones are left out of the settlement, untouched.
func (r *Relay) send(ctx context.Context, ready []workorder.Claimed) (s workorder.Settlement, unavailable error) {
	pushCtx, cancel := context.WithTimeout(ctx, r.cfg.PushTimeout)
	defer cancel()
	ready, s.Failed = r.unsendable(ready)
	for chunk := range slices.Chunk(ready, MaxPush) {
		acks, err := r.push(pushCtx, chunk)
		if err != nil && isUnavailable(err) {
			// Nothing is known about this chunk or the next ones: leave
			// them pending, untouched, for when the order center is back.
			r.metrics.failed.WithLabelValues("unavailable").Add(float64(len(chunk)))
			return s, err
		}
		d, f := r.settle(chunk, acks, err)
		s.Delivered, s.Failed = append(s.Delivered, d...), append(s.Failed, f...)
		if len(f) > 0 {
			// A later chunk may hold later events of a parcel whose event
			// just failed here; they wait for it.
			break
		}
	}
	return s, nil
}

// unsendable splits off the rows that cannot be sent at all (a type with
// no order center type): they are dead at once with the reason, and the
// later events of their parcels are held back from this batch, as behind
// any dead event.
func (r *Relay) unsendable(ready []workorder.Claimed) ([]workorder.Claimed, []workorder.Failure) {
	var dead []workorder.Failure
	blocked := map[string]bool{}
	out := ready[:0:0]
	for _, c := range ready {
		if blocked[c.TrackingNo] {
			continue
		}
		if _, err := eventOf(c); err != nil {
			blocked[c.TrackingNo] = true
			dead = append(dead, workorder.Failure{ID: c.ID, Dead: true, Next: time.Now(), Err: truncate(err.Error(), 500)})
			r.metrics.failed.WithLabelValues("unsendable").Inc()
			r.log.Error("relay: event dead: its type has no order center type", zap.Int64("outbox_id", c.ID),
				zap.String("event_id", c.EventID), zap.String("type", c.StoredType), zap.Error(err))
			continue
		}
		out = append(out, c)
	}
	return out, dead
}

// eventTypeFor maps the station's event type to the order center's. The
// switch covers every workorder.EventTypes() value (a test checks that each
// maps, and that none reaches the order center as UNSPECIFIED); anything
// else is an error, never a guess.
func eventTypeFor(t workorder.EventType) (clients.EventType, error) {
	switch t {
	case workorder.EventArrived:
		return clients.EventArrived, nil
	case workorder.EventSorted:
		return clients.EventSorted, nil
	case workorder.EventException:
		return clients.EventException, nil
	case workorder.EventBagged:
		return clients.EventBagged, nil
	case workorder.EventUnbagged:
		return clients.EventUnbagged, nil
	case workorder.EventBagSealed:
		return clients.EventBagSealed, nil
	case workorder.EventDeparted:
		return clients.EventDeparted, nil
	case workorder.EventSorterConfirmed:
		return clients.EventSorterConfirmed, nil
	}
	return "", fmt.Errorf("no order center event type for %q", t)
}

// eventOf is the order center's view of a claimed row; an error means the
// row's type has no order center type and the event must not be sent.
func eventOf(c workorder.Claimed) (clients.TrackingEvent, error) {
	typ, err := eventTypeFor(c.Type)
	if err != nil {
		return clients.TrackingEvent{}, fmt.Errorf("unknown tracking event type %q: not sent (the order center would see UNSPECIFIED): %w",
			c.StoredType, err)
	}
	e := clients.TrackingEvent{EventID: c.EventID, TrackingNo: c.TrackingNo, StationID: c.StationID,
		Type: typ, OccurredAt: c.OccurredAt, PayloadJSON: c.PayloadJSON}
	switch c.Actor.Kind {
	case workorder.ActorSorter:
		e.SorterID = c.Actor.ID
	case workorder.ActorOperator:
		e.OperatorID = c.Actor.ID
	}
	return e, nil
}

func (r *Relay) push(ctx context.Context, rows []workorder.Claimed) ([]clients.EventAck, error) {
	events := make([]clients.TrackingEvent, len(rows))
	for i, row := range rows {
		events[i], _ = eventOf(row) // unsendable rows never get here (send)
	}
	if r.tracer == nil {
		return r.pusher.PushTrackingEvents(ctx, events)
	}
	spans := r.startPublish(ctx, rows, events)
	acks, err := r.pusher.PushTrackingEvents(ctx, events)
	endPublish(spans, events, acks, err)
	return acks, err
}

// settle sorts a pushed chunk into delivered rows and failures.
func (r *Relay) settle(rows []workorder.Claimed, acks []clients.EventAck, pushErr error) ([]int64, []workorder.Failure) {
	byID := make(map[string]clients.EventAck, len(acks))
	for _, a := range acks {
		byID[a.EventID] = a
	}
	var delivered []int64
	var failed []workorder.Failure
	now := time.Now()
	for _, row := range rows {
		a, ok := byID[row.EventID]
		var reason string
		rejected := false
		switch {
		case pushErr != nil && isPermanent(pushErr):
			// The order center refused the call as such: resending the
			// same events will not change its mind.
			rejected = true
			reason = "push refused: " + pushErr.Error()
			r.metrics.failed.WithLabelValues("refused").Inc()
		case pushErr != nil:
			reason = "push failed: " + pushErr.Error()
			r.metrics.failed.WithLabelValues("error").Inc()
		case !ok:
			reason = "no acknowledgement for the event"
			r.metrics.failed.WithLabelValues("no_ack").Inc()
		case a.Delivered():
			delivered = append(delivered, row.ID)
			continue
		default:
			rejected = a.Status == clients.AckRejected
			reason = fmt.Sprintf("%s: %s", a.Status, a.Reason)
			r.metrics.failed.WithLabelValues("rejected").Inc()
		}
		attempts := row.Attempts + 1
		dead := rejected || attempts >= r.cfg.MaxAttempts
		failed = append(failed, workorder.Failure{ID: row.ID, Dead: dead, Next: now.Add(r.backoff(attempts)), Err: truncate(reason, 500)})
		if dead {
			r.log.Warn("relay: event dead", zap.Int64("outbox_id", row.ID), zap.String("event_id", row.EventID),
				zap.String("tracking_no", row.TrackingNo), zap.Int("attempts", attempts), zap.String("reason", reason))
		}
	}
	return delivered, failed
}

// isPermanent reports failures that say the events themselves are refused:
// InvalidArgument, FailedPrecondition or OutOfRange from the order center.
// They go dead at once rather than after relay.max_attempts retries. (A
// broker sink refuses single events itself, with a rejected ack.)
func isPermanent(err error) bool {
	switch status.Code(err) {
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return true
	}
	return false
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
