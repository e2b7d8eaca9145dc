package dag

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"go.opentelemetry.io/otel/trace"
)

// Options change how one Run executes a Plan.
type Options struct {
	// DryRun skips effectful steps (outcome dry_run_skipped; their outputs
	// are absent), for shadow runs that must not touch the world.
	DryRun bool
	// Sequential runs the nodes one at a time in Plan.Nodes order on the
	// calling goroutine: the legacy baseline to compare parallel runs with.
	Sequential bool
	// MaxParallel caps how many steps run at once; 0 means no cap.
	MaxParallel int
	// Retryable decides which step errors are retried (when the node has
	// attempts left); nil means IsRetryable.
	Retryable func(error) bool
	// Metrics records per-node latency and outcomes; nil records nothing.
	Metrics *Metrics
}

// Causes set on contexts the engine cancels, so a step's failure can be told
// apart: its own timeout, the flow deadline, or a sibling's fatal failure
// (which is cancelled with the sibling's *NodeError as cause).
var (
	errNodeTimeout  = errors.New("node timeout")
	errFlowDeadline = errors.New("flow deadline")
)

// run is the state of one Run. Each node writes only its own trace entry
// and its own output slots, and a node starts only after its dependencies
// finished (ordered by the atomic pending counters), so values need no lock.
type run struct {
	p         *Plan
	opts      Options
	retryable func(error) bool
	ctx       context.Context
	cancel    context.CancelCauseFunc
	t0        time.Time
	slots     []cell
	pending   []int32
	trace     []NodeTrace
	wg        sync.WaitGroup
	sem       chan struct{}
	failed    atomic.Bool
	err       *NodeError   // the first fatal failure; written once, by the failed CAS winner
	res       Result       // allocated with the run: one allocation less per run
	tracer    trace.Tracer // nil unless the caller's span records (otel.go)
}

// cell holds one key's value; set tells absent from a nil value.
type cell struct {
	v   any
	set bool
}

// Run executes p with inputs (the flow's declared inputs, bound with
// Key.Bind; keys the flow does not declare are ignored). Ready nodes run in
// parallel. It returns when every started step has returned, so no goroutine
// outlives it. The Result is non-nil for any non-nil p: it carries the trace
// even when the run failed. The error, if any, is a *NodeError naming the
// node that failed the run (match it with ErrStepFailed, ErrTimeout,
// ErrDeadline, ErrCanceled, ErrPanic, or the step's own error), or an
// ErrBadInput error.
func Run(ctx context.Context, p *Plan, inputs []Value, opts Options) (*Result, error) {
	if p == nil {
		return nil, fmt.Errorf("dag: Run without a plan: %w", ErrInvalidFlow)
	}
	n := len(p.nodes)
	r := &run{
		p:         p,
		opts:      opts,
		retryable: opts.Retryable,
		t0:        time.Now(),
		slots:     make([]cell, len(p.keys)),
		trace:     make([]NodeTrace, n),
	}
	if r.retryable == nil {
		r.retryable = IsRetryable
	}
	if err := r.bind(inputs); err != nil {
		for i := range r.trace {
			r.trace[i].Outcome = OutcomeNotRun
		}
		res, err := r.result(err)
		opts.Metrics.observe(p, res)
		return res, err
	}
	if p.deadline > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeoutCause(ctx, p.deadline, errFlowDeadline)
		defer stop()
	}
	var span trace.Span
	if r.tracer = tracerFor(ctx); r.tracer != nil {
		ctx, span = r.startRun(ctx)
	}
	r.ctx, r.cancel = context.WithCancelCause(ctx)
	if opts.Sequential {
		now := time.Since(r.t0)
		for _, i := range p.order {
			now = r.exec(i, now)
		}
	} else {
		r.pending = make([]int32, n)
		copy(r.pending, p.pending)
		if opts.MaxParallel > 0 && opts.MaxParallel < n {
			r.sem = make(chan struct{}, opts.MaxParallel)
		}
		r.wg.Add(len(p.roots))
		for _, i := range p.roots[1:] {
			go r.worker(i)
		}
		r.worker(p.roots[0])
		r.wg.Wait()
	}
	r.cancel(nil)
	var err error
	if r.err != nil {
		err = r.err
	}
	res, err := r.result(err)
	opts.Metrics.observe(p, res)
	if span != nil {
		endRun(span, err)
	}
	return res, err
}

func (r *run) bind(inputs []Value) error {
	var errs []error
	for _, v := range inputs {
		slot, ok := r.p.keyIndex[v.name]
		if !ok || r.p.keys[slot].producer != -1 {
			continue // not an input of this flow: callers may pass a superset
		}
		if v.typ != r.p.keys[slot].typ {
			errs = append(errs, fmt.Errorf("dag: flow %q: input %q is %v, want %v: %w", r.p.name, v.name, v.typ, r.p.keys[slot].typ, ErrBadInput))
			continue
		}
		r.slots[slot] = cell{v: v.v, set: true}
	}
	for _, slot := range r.p.inputs {
		if !r.slots[slot].set {
			errs = append(errs, fmt.Errorf("dag: flow %q: input %q is missing: %w", r.p.name, r.p.keys[slot].name, ErrBadInput))
		}
	}
	return errors.Join(errs...)
}

// worker runs node i, then keeps going with one child that became ready and
// starts a goroutine for each other one: a chain of nodes runs on one
// goroutine, and a goroutine is started only where the graph fans out. The
// end time of one node is the start time of the next when nothing happened
// in between, saving a clock read per node.
func (r *run) worker(i int32) {
	defer r.wg.Done()
	now := time.Duration(-1)
	for i >= 0 {
		if r.sem != nil {
			r.sem <- struct{}{}
			r.exec(i, time.Since(r.t0))
			<-r.sem
			now = -1
		} else {
			if now < 0 {
				now = time.Since(r.t0)
			}
			now = r.exec(i, now)
		}
		next := int32(-1)
		if !r.failed.Load() {
			for _, ch := range r.p.nodes[i].children {
				if atomic.AddInt32(&r.pending[ch], -1) != 0 {
					continue
				}
				if next < 0 {
					next = ch
					continue
				}
				r.wg.Add(1)
				go r.worker(ch)
				now = -1
			}
		}
		i = next
	}
}

// exec runs one node, starting at offset start: condition, dry run,
// attempts, then classifies the outcome. Failures that end the run go
// through fail. It returns the offset at which the node ended.
func (r *run) exec(i int32, start time.Duration) (end time.Duration) {
	n := &r.p.nodes[i]
	tr := &r.trace[i]
	tr.Start = start
	if r.failed.Load() {
		tr.Outcome = OutcomeNotRun
		return start
	}
	if r.ctx.Err() != nil {
		tr.Outcome = OutcomeNotRun
		kind := r.runCtxKind()
		r.fail(n, tr, kind, fmt.Errorf("could not start: %w", context.Cause(r.ctx)), 0)
		return start
	}
	if n.cond != nil {
		ok, err := r.evalCondition(n)
		end = time.Since(r.t0)
		tr.Duration = end - start
		if err != nil {
			r.nodeFailed(n, tr, ErrCondition, err, 0)
			return end
		}
		if !ok {
			tr.Outcome = OutcomeSkipped
			return end
		}
	}
	if r.opts.DryRun && n.step.Effectful {
		tr.Outcome = OutcomeDryRunSkipped
		return start
	}

	ctx := r.ctx
	var cancel context.CancelFunc
	if n.timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(r.ctx, n.timeout, errNodeTimeout)
	}
	if r.tracer != nil {
		var span trace.Span
		ctx, span = r.startStep(ctx, n)
		defer endStep(span, tr)
	}
	var err, kind error
	attempt := 0
	for {
		attempt++
		err, kind = r.call(ctx, n, attempt)
		if err == nil {
			break
		}
		r.clearWrites(n)
		if kind != nil || attempt >= n.attempts || ctx.Err() != nil || !r.retryable(err) {
			break
		}
		if !sleep(ctx, n.backoffBefore(attempt+1)) {
			break
		}
	}
	var cause error
	if ctx.Err() == nil && err != nil && pastDeadline(ctx) {
		// The step's answer beat the context's own timer: a server that
		// enforces the deadline it was sent can answer DeadlineExceeded a
		// moment before the timer's goroutine here marks the context. The
		// time is up all the same, and the timer is due.
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		cause = context.Cause(ctx)
	}
	if cancel != nil {
		cancel()
	}
	tr.Attempts = attempt
	end = time.Since(r.t0)
	tr.Duration = end - start
	if err == nil {
		tr.Outcome = OutcomeOK
		return end
	}
	switch {
	case kind != nil:
		// A panic or key misuse is the step's own fault, whatever the context.
	case cause == nil:
		kind = ErrStepFailed
	case cause == errNodeTimeout:
		kind = ErrTimeout
	case r.failed.Load():
		// Cancelled because a sibling failed the run; that failure is
		// the one reported.
		tr.Outcome = OutcomeCanceled
		tr.Error = err.Error()
		return end
	default:
		kind = r.runCtxKind()
		tr.Outcome = OutcomeCanceled
		if kind == ErrDeadline {
			tr.Outcome = OutcomeTimedOut
		}
		r.fail(n, tr, kind, err, attempt)
		return end
	}
	r.nodeFailed(n, tr, kind, err, attempt)
	return end
}

func pastDeadline(ctx context.Context) bool {
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

// runCtxKind names why the run's context ended, when no sibling ended it.
func (r *run) runCtxKind() error {
	if errors.Is(r.ctx.Err(), context.DeadlineExceeded) {
		return ErrDeadline
	}
	if r.failed.Load() {
		return ErrStepFailed
	}
	return ErrCanceled
}

// nodeFailed handles a failure of the node itself: degrade or fail the run.
func (r *run) nodeFailed(n *node, tr *NodeTrace, kind, err error, attempts int) {
	if kind == ErrTimeout {
		tr.Outcome = OutcomeTimedOut
	} else {
		tr.Outcome = OutcomeFailed
	}
	if n.criticality != Degradable || StopsRun(err) {
		r.fail(n, tr, kind, err, attempts)
		return
	}
	tr.Outcome = OutcomeDegraded
	tr.Error = kindPrefix(kind) + err.Error()
	for j, raw := range n.fallback {
		if raw == nil {
			continue
		}
		v, derr := decodeFallback(raw, n.writes[j].typ)
		if derr != nil { // validated by Compile; keep the key absent
			continue
		}
		r.slots[n.writes[j].slot] = cell{v: v, set: true}
	}
}

func kindPrefix(kind error) string {
	switch kind {
	case ErrTimeout:
		return "timed out: "
	case ErrPanic:
		return "panicked: "
	case ErrCondition:
		return "condition: "
	case ErrUndeclaredKey:
		return "undeclared key: "
	}
	return ""
}

func (r *run) fail(n *node, tr *NodeTrace, kind, err error, attempts int) {
	tr.Error = kindPrefix(kind) + err.Error()
	ne := &NodeError{Flow: r.p.name, Node: n.id, Step: n.step.Name, Attempts: attempts, Kind: kind, Err: err}
	if r.failed.CompareAndSwap(false, true) {
		r.err = ne
		r.cancel(ne)
	}
}

// call runs one attempt, turning a panic into an error.
func (r *run) call(ctx context.Context, n *node, attempt int) (err, kind error) {
	defer func() {
		if v := recover(); v != nil {
			if kp, ok := v.(keyPanic); ok {
				err, kind = errors.New(kp.msg), ErrUndeclaredKey
				return
			}
			err, kind = &PanicError{Value: v, Stack: debug.Stack()}, ErrPanic
		}
	}()
	return n.step.Run(ctx, Inputs{r: r, n: n, attempt: attempt}, Outputs{r: r, n: n}), nil
}

func (r *run) clearWrites(n *node) {
	for _, w := range n.writes {
		r.slots[w.slot] = cell{}
	}
}

// evalCondition runs the node's condition over the keys it mentions; an
// absent key appears as its type's zero value.
func (r *run) evalCondition(n *node) (ok bool, err error) {
	env := make(map[string]any, len(n.condKeys))
	for j, k := range n.condKeys {
		if s := r.slots[k.slot]; s.set {
			env[k.name] = s.v
		} else {
			env[k.name] = n.condZero[j]
		}
	}
	defer func() {
		if v := recover(); v != nil {
			ok, err = false, fmt.Errorf("condition panicked: %v", v)
		}
	}()
	out, err := expr.Run(n.cond, env)
	if err != nil {
		return false, err
	}
	b, isBool := out.(bool)
	if !isBool {
		return false, fmt.Errorf("condition yielded %T, not bool", out)
	}
	return b, nil
}

// backoffBefore is the wait before the given attempt (2 or later).
func (n *node) backoffBefore(attempt int) time.Duration {
	d := n.backoff
	for k := 2; k < attempt && d > 0; k++ {
		d *= 2
		if n.maxBackoff > 0 && d >= n.maxBackoff {
			break
		}
	}
	if n.maxBackoff > 0 && d > n.maxBackoff {
		d = n.maxBackoff
	}
	return d
}

// sleep waits d unless ctx ends first, and does not start a wait that would
// outlast ctx's deadline: a retry that cannot happen is not waited for.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) <= d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
