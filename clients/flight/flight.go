package flight

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/expresshub/station/clients/internal/promreg"
)

// ErrPanic is wrapped by the error waiters get when the shared call panics.
var ErrPanic = errors.New("flight: call panicked")

// PanicError carries a shared call's panic value and stack.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("flight: call panicked: %v", e.Value) }

// Unwrap makes errors.Is(err, ErrPanic) hold.
func (e *PanicError) Unwrap() error { return ErrPanic }

// Options configures a Group.
type Options struct {
	// Name labels the group's metrics.
	Name string
	// Timeout bounds each shared call, whoever waits for it; 0 means no
	// bound beyond "cancelled when the last waiter leaves".
	Timeout time.Duration
	// Metrics to record into; nil records nothing.
	Metrics *Metrics
}

// Metrics are the counters of every group on one registry, labelled by
// group name.
type Metrics struct {
	calls    *prometheus.CounterVec
	shared   *prometheus.CounterVec
	inflight *prometheus.GaugeVec
}

// NewMetrics registers the singleflight metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		calls: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_singleflight_calls_total",
			Help: "Shared calls started (each one reaches the downstream once).",
		}, []string{"group"})),
		shared: promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "station_singleflight_shared_callers_total",
			Help: "Callers that joined a call already in flight instead of starting one.",
		}, []string{"group"})),
		inflight: promreg.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "station_singleflight_inflight",
			Help: "Shared calls currently running.",
		}, []string{"group"})),
	}
}

// Stats are a group's counters since it was built.
type Stats struct {
	Calls    int64 // shared calls started
	Shared   int64 // callers that joined a running call
	InFlight int64 // calls running now
}

// Group merges calls per key. The zero value is not usable; call New.
type Group[K comparable, V any] struct {
	opts                    Options
	mu                      sync.Mutex
	m                       map[K]*call[V]
	calls, shared, inflight atomic.Int64

	mCalls, mShared prometheus.Counter
	mInflight       prometheus.Gauge
}

type call[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// New builds a group.
func New[K comparable, V any](opts Options) *Group[K, V] {
	g := &Group[K, V]{opts: opts, m: make(map[K]*call[V])}
	if opts.Metrics != nil {
		g.mCalls = opts.Metrics.calls.WithLabelValues(opts.Name)
		g.mShared = opts.Metrics.shared.WithLabelValues(opts.Name)
		g.mInflight = opts.Metrics.inflight.WithLabelValues(opts.Name)
	}
	return g
}

// Do returns the result of fn for key, sharing one execution among the
// callers that ask while it runs; shared reports whether this caller joined
// a call it did not start.
//
// fn gets a context detached from the caller's cancellation (values such as
// trace ids are kept) and bounded by Options.Timeout; it is cancelled early
// when every waiter has left. A caller whose ctx ends first gets ctx.Err()
// at once; the others keep waiting for the result.
func (g *Group[K, V]) Do(ctx context.Context, key K, fn func(ctx context.Context) (V, error)) (v V, shared bool, err error) {
	if err := ctx.Err(); err != nil {
		return v, false, err
	}
	g.mu.Lock()
	c, shared := g.m[key]
	if shared {
		c.waiters++
		g.shared.Add(1)
		if g.mShared != nil {
			g.mShared.Inc()
		}
	} else {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		if g.opts.Timeout > 0 {
			cctx, cancel = withTimeout(cctx, cancel, g.opts.Timeout)
		}
		c = &call[V]{done: make(chan struct{}), waiters: 1, cancel: cancel}
		g.m[key] = c
		g.calls.Add(1)
		g.inflight.Add(1)
		if g.mCalls != nil {
			g.mCalls.Inc()
			g.mInflight.Inc()
		}
		go g.run(cctx, key, c, fn)
	}
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, shared, c.err
	case <-ctx.Done():
	}
	// The result may have arrived together with the caller's deadline:
	// prefer it, the work is done.
	select {
	case <-c.done:
		return c.val, shared, c.err
	default:
	}
	g.mu.Lock()
	c.waiters--
	if c.waiters == 0 {
		// Nobody wants the answer any more. Unlink the call before
		// cancelling it, so its cancellation error can only ever reach
		// the waiters that already left, never a newcomer.
		if g.m[key] == c {
			delete(g.m, key)
		}
		c.cancel()
	}
	g.mu.Unlock()
	return v, shared, ctx.Err()
}

// withTimeout bounds ctx and chains both cancel functions.
func withTimeout(ctx context.Context, cancel context.CancelFunc, d time.Duration) (context.Context, context.CancelFunc) {
	tctx, tcancel := context.WithTimeout(ctx, d)
	return tctx, func() { tcancel(); cancel() }
}

func (g *Group[K, V]) run(ctx context.Context, key K, c *call[V], fn func(context.Context) (V, error)) {
	returned := false
	defer func() {
		if r := recover(); r != nil {
			var zero V
			c.val, c.err = zero, &PanicError{Value: r, Stack: debug.Stack()}
		} else if !returned {
			// runtime.Goexit (e.g. t.FailNow in a test's loader).
			c.err = fmt.Errorf("%w: runtime.Goexit", ErrPanic)
		}
		g.mu.Lock()
		if g.m[key] == c {
			delete(g.m, key)
		}
		g.mu.Unlock()
		c.cancel()
		g.inflight.Add(-1)
		if g.mInflight != nil {
			g.mInflight.Dec()
		}
		close(c.done)
	}()
	c.val, c.err = fn(ctx)
	returned = true
}

// Forget makes the next Do for key start a new call even if one is running
// (for a known change of the underlying data). Waiters of the running call
// still get its result.
func (g *Group[K, V]) Forget(key K) {
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
}

// Stats returns the group's counters.
func (g *Group[K, V]) Stats() Stats {
	return Stats{Calls: g.calls.Load(), Shared: g.shared.Load(), InFlight: g.inflight.Load()}
}
