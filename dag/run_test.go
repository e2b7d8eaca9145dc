package dag_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expresshub/station/dag"
)

func outcomes(res *dag.Result) map[string]dag.Outcome {
	m := map[string]dag.Outcome{}
	for _, n := range res.Trace.Nodes {
		m[n.Node] = n.Outcome
	}
	return m
}

func TestRunSortingFlowInParallel(t *testing.T) {
	p := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)
	res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1000000001")}, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := dag.Output(res, keySorted); got != "SG-L07" {
		t.Fatalf("sorted to %q", got)
	}
	if _, ok := dag.Output(res, keyBillingOK); ok {
		t.Fatal("check_billing ran for a parcel without COD; its condition is false")
	}
	want := map[string]dag.Outcome{"fetch_waybill": "ok", "check_billing": "skipped", "get_route": "ok", "resolve_chute": "ok", "persist": "ok"}
	if got := outcomes(res); !mapsEqual(got, want) {
		t.Fatalf("outcomes %v, want %v", got, want)
	}
	if res.Trace.Outcome != "ok" || res.Trace.Version != "1" || res.Trace.Mode != "parallel" {
		t.Fatalf("trace header %+v", res.Trace)
	}
	if got := strings.Join(res.Trace.CriticalPath, ","); !strings.HasPrefix(got, "fetch_waybill,") || !strings.HasSuffix(got, ",resolve_chute,persist") {
		t.Fatalf("critical path %s", got)
	}
	for _, n := range res.Trace.Nodes {
		if n.Critical != (n.Slack == 0) && n.Critical {
			t.Errorf("node %s is critical with slack %v", n.Node, n.Slack)
		}
	}
}

func mapsEqual[K comparable, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestConditionSelectsByStructFieldsAndLists(t *testing.T) {
	reg := newRegistry(t, sortingSteps()...)
	p := mustCompile(t, reg, strings.Replace(sortingFlow, "condition: waybill.cod_amount > 0",
		`condition: 'waybill.cod_amount > 0 && waybill.market in ["SG", "BR"]'`, 1))
	for tn, want := range map[string]dag.Outcome{"SG1000000009": "ok", "SG1000000001": "skipped", "MY1000000009": "skipped"} {
		res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind(tn)}, dag.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := outcomes(res)["check_billing"]; got != want {
			t.Errorf("%s: check_billing %s, want %s", tn, got, want)
		}
	}
}

func TestConditionErrorFailsTheNode(t *testing.T) {
	keyPtr := dag.NewKey[*Waybill]("wbp")
	reg := newRegistry(t,
		dag.Step{Name: "maybe", Writes: []dag.AnyKey{keyPtr}, Run: nop},
		dag.Step{Name: "after", Run: nop},
	)
	p := mustCompile(t, reg, `
name: f
version: "1"
nodes:
  - step: maybe
  - {step: after, depends_on: [maybe], condition: "wbp.cod_amount > 0"}
`)
	_, err := dag.Run(context.Background(), p, nil, dag.Options{})
	var ne *dag.NodeError
	if !errors.Is(err, dag.ErrCondition) || !errors.As(err, &ne) || ne.Node != "after" {
		t.Fatalf("got %v", err)
	}
	// The nil-safe form is how a condition copes with an absent pointer.
	p = mustCompile(t, reg, `
name: f
version: "1"
nodes:
  - step: maybe
  - {step: after, depends_on: [maybe], condition: "(wbp?.cod_amount ?? 0) > 0"}
`)
	res, err := dag.Run(context.Background(), p, nil, dag.Options{})
	if err != nil || outcomes(res)["after"] != dag.OutcomeSkipped {
		t.Fatalf("got %v, %v", err, outcomes(res))
	}
}

var errDown = errors.New("finance is down")

func TestDegradableFailureUsesFallback(t *testing.T) {
	steps := sortingSteps()
	steps[1].Run = func(context.Context, dag.Inputs, dag.Outputs) error { return errDown }
	steps[2].Criticality = dag.Degradable
	steps[2].Run = func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		dag.Set(out, keyRoute, Route{NextHop: "half-written"})
		return errDown
	}
	p := mustCompile(t, newRegistry(t, steps...), strings.Replace(sortingFlow, "  - step: get_route\n",
		"  - step: get_route\n    fallback: {route: {next_hop: SG-H00, chute: 99}}\n", 1))
	res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1000000009")}, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := dag.Output(res, keyRoute); got != (Route{NextHop: "SG-H00", Chute: 99}) {
		t.Fatalf("route %+v, want the fallback", got)
	}
	if got, _ := dag.Output(res, keySorted); got != "SG-H00" {
		t.Fatalf("downstream saw %q", got)
	}
	// check_billing has no fallback: its key is absent, and resolve_chute
	// told that apart from false with Lookup.
	if _, ok := dag.Output(res, keyBillingOK); ok {
		t.Fatal("billing_ok present after a failure without fallback")
	}
	want := []dag.Degradation{
		{Node: "check_billing", Step: "check_billing", Reason: "finance is down"},
		{Node: "get_route", Step: "get_route", Reason: "finance is down"},
	}
	if !slices.Equal(res.Degraded, want) || res.Trace.Outcome != "degraded" || !res.IsDegraded() {
		t.Fatalf("degraded %+v, outcome %s", res.Degraded, res.Trace.Outcome)
	}
}

func TestNodeCriticalityOverride(t *testing.T) {
	steps := sortingSteps()
	steps[3].Run = func(context.Context, dag.Inputs, dag.Outputs) error { return errDown }
	p := mustCompile(t, newRegistry(t, steps...), strings.Replace(sortingFlow, "  - step: resolve_chute\n",
		"  - step: resolve_chute\n    criticality: degradable\n    fallback: {sorted: exception}\n", 1))
	res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1000000001")}, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := dag.Output(res, keySorted); got != "exception" {
		t.Fatalf("sorted %q", got)
	}
}

func TestRetryOnlyRetryableErrors(t *testing.T) {
	var calls atomic.Int32
	failures := 0
	retryable := true
	reg := newRegistry(t, dag.Step{Name: "flaky", Writes: []dag.AnyKey{keyY}, Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		calls.Add(1)
		if in.Attempt() <= failures {
			dag.Set(out, keyY, "partial") // discarded with the failed attempt
			if retryable {
				return dag.Retryable(fmt.Errorf("attempt %d: %w", in.Attempt(), errDown))
			}
			return errDown
		}
		dag.Set(out, keyY, fmt.Sprintf("attempt %d", in.Attempt()))
		return nil
	}})
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\nnodes: [{step: flaky, retry: {attempts: 3, backoff: 1ms}}]")

	failures, retryable = 2, true
	res, err := dag.Run(context.Background(), p, nil, dag.Options{})
	if got, _ := dag.Output(res, keyY); err != nil || got != "attempt 3" || res.Trace.Nodes[0].Attempts != 3 {
		t.Fatalf("retryable: %v, %q, attempts %d", err, got, res.Trace.Nodes[0].Attempts)
	}

	calls.Store(0)
	failures, retryable = 5, true
	res, err = dag.Run(context.Background(), p, nil, dag.Options{})
	var ne *dag.NodeError
	if !errors.Is(err, errDown) || !errors.As(err, &ne) || ne.Attempts != 3 || calls.Load() != 3 {
		t.Fatalf("exhausted: %v, calls %d", err, calls.Load())
	}
	if _, ok := dag.Output(res, keyY); ok {
		t.Fatal("a failed attempt's write survived")
	}

	calls.Store(0)
	failures, retryable = 2, false
	_, err = dag.Run(context.Background(), p, nil, dag.Options{})
	if !errors.Is(err, errDown) || calls.Load() != 1 {
		t.Fatalf("non-retryable was retried: %v, calls %d", err, calls.Load())
	}

	// The caller may classify errors itself.
	calls.Store(0)
	res, err = dag.Run(context.Background(), p, nil, dag.Options{Retryable: func(err error) bool { return errors.Is(err, errDown) }})
	if err != nil || calls.Load() != 3 {
		t.Fatalf("custom classifier: %v, calls %d", err, calls.Load())
	}
}

func TestRetryIsNotWaitedForPastTheTimeout(t *testing.T) {
	var calls atomic.Int32
	reg := newRegistry(t, dag.Step{Name: "flaky", Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		calls.Add(1)
		return dag.Retryable(errDown)
	}})
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\nnodes: [{step: flaky, timeout: 50ms, retry: {attempts: 3, backoff: 1h}}]")
	_, err := dag.Run(context.Background(), p, nil, dag.Options{})
	if !errors.Is(err, errDown) || errors.Is(err, dag.ErrTimeout) || calls.Load() != 1 {
		t.Fatalf("got %v after %d calls", err, calls.Load())
	}
}

func TestDryRunSkipsEffectfulSteps(t *testing.T) {
	var persisted atomic.Bool
	steps := sortingSteps()
	inner := steps[4].Run
	steps[4].Run = func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		persisted.Store(true)
		return inner(ctx, in, out)
	}
	p := mustCompile(t, newRegistry(t, steps...), sortingFlow)
	res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1000000001")}, dag.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if persisted.Load() {
		t.Fatal("an effectful step ran in a dry run")
	}
	if got := outcomes(res)["persist"]; got != dag.OutcomeDryRunSkipped || !res.Trace.DryRun {
		t.Fatalf("persist %s", got)
	}
	if got, _ := dag.Output(res, keySorted); got != "SG-L07" {
		t.Fatalf("the pure steps still ran: sorted %q", got)
	}
}

func TestPanicBecomesAnErrorNamingTheStep(t *testing.T) {
	reg := newRegistry(t, dag.Step{Name: "boom", Run: func(context.Context, dag.Inputs, dag.Outputs) error {
		var m map[string]int
		m["x"]++
		return nil
	}})
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\nnodes: [{id: explode, step: boom}]")
	res, err := dag.Run(context.Background(), p, nil, dag.Options{})
	var ne *dag.NodeError
	var pe *dag.PanicError
	if !errors.Is(err, dag.ErrPanic) || !errors.As(err, &ne) || !errors.As(err, &pe) {
		t.Fatalf("got %v", err)
	}
	if ne.Node != "explode" || ne.Step != "boom" || !strings.Contains(err.Error(), `"boom"`) || len(pe.Stack) == 0 {
		t.Fatalf("error %q does not name the step, or lost the stack", err)
	}
	if got := res.Trace.Nodes[0]; got.Outcome != dag.OutcomeFailed || !strings.HasPrefix(got.Error, "panicked: ") {
		t.Fatalf("trace %+v", got)
	}
}

func TestUndeclaredKeyUseFailsTheNode(t *testing.T) {
	reg := newRegistry(t,
		dag.Step{Name: "reads", Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
			_ = dag.Get(in, keyWaybill)
			return nil
		}},
		dag.Step{Name: "writes", Writes: []dag.AnyKey{keyX}, Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
			dag.Set(out, keyXs, "x as a string")
			return nil
		}},
	)
	for _, step := range []string{"reads", "writes"} {
		p := mustCompile(t, reg, "name: f\nversion: \"1\"\nnodes: [{step: "+step+"}]")
		_, err := dag.Run(context.Background(), p, nil, dag.Options{})
		if !errors.Is(err, dag.ErrUndeclaredKey) {
			t.Fatalf("%s: got %v", step, err)
		}
	}
}

func TestFatalFailureCancelsSiblingsAndStopsDescendants(t *testing.T) {
	started := make(chan struct{})
	var sawCancel atomic.Bool
	var ranAfter atomic.Bool
	reg := newRegistry(t,
		dag.Step{Name: "slow", Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
			close(started)
			<-ctx.Done()
			sawCancel.Store(true)
			return ctx.Err()
		}},
		dag.Step{Name: "fails", Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
			<-started
			return errDown
		}},
		dag.Step{Name: "after", Run: func(context.Context, dag.Inputs, dag.Outputs) error {
			ranAfter.Store(true)
			return nil
		}},
	)
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\nnodes: [{step: slow}, {step: fails}, {step: after, depends_on: [fails]}]")
	res, err := dag.Run(context.Background(), p, nil, dag.Options{})
	var ne *dag.NodeError
	if !errors.Is(err, errDown) || !errors.Is(err, dag.ErrStepFailed) || !errors.As(err, &ne) || ne.Node != "fails" {
		t.Fatalf("got %v", err)
	}
	if !sawCancel.Load() || ranAfter.Load() {
		t.Fatalf("sibling cancelled %v, descendant ran %v", sawCancel.Load(), ranAfter.Load())
	}
	want := map[string]dag.Outcome{"slow": "canceled", "fails": "failed", "after": "not_run"}
	if got := outcomes(res); !mapsEqual(got, want) || res.Trace.Outcome != "failed" {
		t.Fatalf("outcomes %v", got)
	}
}

func blockUntilDone(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
	<-ctx.Done()
	return ctx.Err()
}

func TestNodeTimeoutCancelsTheStepContext(t *testing.T) {
	reg := newRegistry(t, dag.Step{Name: "hang", Run: blockUntilDone})
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\ndeadline: 10s\nnodes: [{step: hang, timeout: 20ms}]")
	res, err := dag.Run(context.Background(), p, nil, dag.Options{})
	if !errors.Is(err, dag.ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, dag.ErrDeadline) {
		t.Fatalf("got %v", err)
	}
	if got := res.Trace.Nodes[0]; got.Outcome != dag.OutcomeTimedOut || got.Duration < 20*time.Millisecond {
		t.Fatalf("trace %+v", got)
	}
}

func TestFlowDeadlineEndsTheRun(t *testing.T) {
	reg := newRegistry(t, dag.Step{Name: "hang", Run: blockUntilDone}, dag.Step{Name: "never", Run: nop})
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\ndeadline: 30ms\nnodes: [{step: hang, criticality: degradable}, {step: never, depends_on: [hang]}]")
	start := time.Now()
	res, err := dag.Run(context.Background(), p, nil, dag.Options{})
	if !errors.Is(err, dag.ErrDeadline) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v (a degradable node cannot outlive the run deadline)", err)
	}
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Fatalf("Run returned %v after a 30ms deadline", elapsed)
	}
	if got := outcomes(res); got["hang"] != dag.OutcomeTimedOut || got["never"] != dag.OutcomeNotRun {
		t.Fatalf("outcomes %v", got)
	}
}

func TestCallerCancelEndsTheRun(t *testing.T) {
	reg := newRegistry(t, dag.Step{Name: "hang", Run: blockUntilDone})
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\nnodes: [{step: hang}]")
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(10 * time.Millisecond); cancel() }()
	res, err := dag.Run(ctx, p, nil, dag.Options{})
	if !errors.Is(err, dag.ErrCanceled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if got := res.Trace.Nodes[0].Outcome; got != dag.OutcomeCanceled {
		t.Fatalf("outcome %s", got)
	}
	// Already cancelled: nothing starts.
	res, err = dag.Run(ctx, p, nil, dag.Options{})
	if !errors.Is(err, dag.ErrCanceled) || res.Trace.Nodes[0].Outcome != dag.OutcomeNotRun {
		t.Fatalf("got %v, %+v", err, res.Trace.Nodes[0])
	}
}

func TestRunRejectsMissingAndMistypedInputs(t *testing.T) {
	p := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)
	res, err := dag.Run(context.Background(), p, nil, dag.Options{})
	if !errors.Is(err, dag.ErrBadInput) || res == nil || res.Trace.Outcome != "failed" {
		t.Fatalf("missing: %v", err)
	}
	wrong := dag.NewKey[int]("tracking_no")
	if _, err := dag.Run(context.Background(), p, []dag.Value{wrong.Bind(1)}, dag.Options{}); !errors.Is(err, dag.ErrBadInput) {
		t.Fatalf("mistyped: %v", err)
	}
	// Extra keys are ignored: a caller passes one superset to every flow.
	extra := dag.NewKey[int]("station")
	if _, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1"), extra.Bind(1)}, dag.Options{}); err != nil {
		t.Fatalf("extra: %v", err)
	}
}

// concurrency counts how many steps run at once.
type concurrency struct {
	mu       sync.Mutex
	now, max int
	order    []string
}

func (c *concurrency) step(name string) dag.Step {
	return dag.Step{Name: name, Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		c.mu.Lock()
		c.now++
		c.max = max(c.max, c.now)
		c.order = append(c.order, in.Node())
		c.mu.Unlock()
		time.Sleep(2 * time.Millisecond)
		c.mu.Lock()
		c.now--
		c.mu.Unlock()
		return nil
	}}
}

func wideFlow(c *concurrency, t *testing.T) *dag.Plan {
	var steps []dag.Step
	var nodes []string
	for i := range 8 {
		name := fmt.Sprintf("s%d", i)
		steps = append(steps, c.step(name))
		dep := ""
		if i >= 4 {
			dep = fmt.Sprintf(", depends_on: [s%d]", i-4)
		}
		nodes = append(nodes, fmt.Sprintf("{step: %s%s}", name, dep))
	}
	return mustCompile(t, newRegistry(t, steps...), "name: f\nversion: \"1\"\nnodes: ["+strings.Join(nodes, ", ")+"]")
}

func TestSequentialRunsOneStepAtATimeInPlanOrder(t *testing.T) {
	c := &concurrency{}
	p := wideFlow(c, t)
	res, err := dag.Run(context.Background(), p, nil, dag.Options{Sequential: true})
	if err != nil {
		t.Fatal(err)
	}
	if c.max != 1 || !slices.Equal(c.order, p.Nodes()) || res.Trace.Mode != "sequential" {
		t.Fatalf("max %d, order %v, want %v", c.max, c.order, p.Nodes())
	}
}

func TestMaxParallelCapsConcurrentSteps(t *testing.T) {
	c := &concurrency{}
	p := wideFlow(c, t)
	if _, err := dag.Run(context.Background(), p, nil, dag.Options{MaxParallel: 2}); err != nil {
		t.Fatal(err)
	}
	if c.max > 2 || len(c.order) != 8 {
		t.Fatalf("max %d concurrent steps, %d ran", c.max, len(c.order))
	}
}

func TestStepReusedByTwoNodesWithParams(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]any{}
	reg := newRegistry(t, dag.Step{Name: "check_site", Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		mu.Lock()
		defer mu.Unlock()
		seen[in.Node()] = in.Params()["which"]
		return nil
	}})
	p := mustCompile(t, reg, `
name: f
version: "1"
nodes:
  - {id: check_origin, step: check_site, params: {which: origin}}
  - {id: check_destination, step: check_site, params: {which: destination}}
`)
	if _, err := dag.Run(context.Background(), p, nil, dag.Options{}); err != nil {
		t.Fatal(err)
	}
	if seen["check_origin"] != "origin" || seen["check_destination"] != "destination" {
		t.Fatalf("params %v", seen)
	}
}

func TestTraceMarshalsWithStableNames(t *testing.T) {
	p := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)
	res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1000000001")}, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Trace map[string]json.RawMessage `json:"trace"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"flow", "version", "mode", "dry_run", "started_at", "duration_ns", "outcome", "critical_path", "critical_path_ns", "nodes"} {
		if _, ok := got.Trace[k]; !ok {
			t.Errorf("trace JSON lacks %q: %s", k, b)
		}
	}
	var nodes []map[string]any
	if err := json.Unmarshal(got.Trace["nodes"], &nodes); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"node", "step", "outcome", "start_ns", "duration_ns", "attempts", "slack_ns", "critical"} {
		if _, ok := nodes[0][k]; !ok {
			t.Errorf("node JSON lacks %q: %v", k, nodes[0])
		}
	}
}

func TestNodeOutputsAndFirstDiff(t *testing.T) {
	stable := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)
	steps := sortingSteps()
	steps[2].Run = func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		dag.Set(out, keyRoute, Route{NextHop: "SG-L08", Chute: 12})
		return nil
	}
	candidate := mustCompile(t, newRegistry(t, steps...), strings.Replace(sortingFlow, `version: "1"`, `version: "2"`, 1))
	in := []dag.Value{keyTrackingNo.Bind("SG1000000001")}
	a, err := dag.Run(context.Background(), stable, in, dag.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := dag.Run(context.Background(), candidate, in, dag.Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := a.NodeOutputs("get_route"); got["route"] != (Route{NextHop: "SG-L07", Chute: 12}) || len(got) != 1 {
		t.Fatalf("NodeOutputs %v", got)
	}
	if a.NodeOutputs("check_billing") != nil || a.NodeOutputs("nope") != nil {
		t.Fatal("a skipped or unknown node has outputs")
	}
	d, ok := dag.FirstDiff(a, b)
	if !ok || d.Node != "get_route" || d.Key != "route" || d.B != (Route{NextHop: "SG-L08", Chute: 12}) {
		t.Fatalf("first diff %+v", d)
	}
	if _, ok := dag.FirstDiff(a, a); ok {
		t.Fatal("a run differs from itself")
	}
	if got := a.Values()["tracking_no"]; got != "SG1000000001" {
		t.Fatalf("Values %v", a.Values())
	}
}

// cancelledParcel is an outcome, not a glitch: it implements StopsRun so a
// degradable step cannot paper over it with its fallback.
type cancelledParcel struct{}

func (cancelledParcel) Error() string  { return "parcel is cancelled" }
func (cancelledParcel) StopsRun() bool { return true }

func TestStopsRunErrorEndsTheRunEvenWhenDegradable(t *testing.T) {
	steps := sortingSteps()
	steps[1].Run = func(context.Context, dag.Inputs, dag.Outputs) error {
		return fmt.Errorf("check billing: %w", cancelledParcel{})
	}
	p := mustCompile(t, newRegistry(t, steps...), strings.Replace(sortingFlow, "  - step: check_billing\n",
		"  - step: check_billing\n    fallback: {billing_ok: true}\n", 1))
	res, err := dag.Run(context.Background(), p, []dag.Value{keyTrackingNo.Bind("SG1000000009")}, dag.Options{})
	var ne *dag.NodeError
	if !errors.As(err, &ne) || ne.Node != "check_billing" || !errors.As(err, new(cancelledParcel)) || !dag.StopsRun(err) {
		t.Fatalf("got %v", err)
	}
	if res.IsDegraded() || outcomes(res)["check_billing"] != dag.OutcomeFailed {
		t.Fatalf("degraded %v, outcomes %v", res.Degraded, outcomes(res))
	}
}

// timerNotRunYet is a context past its deadline whose timer has not run
// yet: what a step's caller sees when a server that enforced the deadline
// it was sent answers before the caller's own timer goroutine does.
type timerNotRunYet struct {
	context.Context
	deadline time.Time
	done     chan struct{}
}

func (c *timerNotRunYet) Deadline() (time.Time, bool) { return c.deadline, true }
func (c *timerNotRunYet) Done() <-chan struct{}       { return c.done }
func (c *timerNotRunYet) Err() error {
	select {
	case <-c.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

// TestAnErrorPastTheDeadlineIsATimeout: a step that fails once its
// deadline has passed ran out of time, even when its error arrives before
// the context says so (a flaky e2e test met this under the race detector:
// the simulator's DeadlineExceeded came back first and the step was traced
// "failed").
func TestAnErrorPastTheDeadlineIsATimeout(t *testing.T) {
	reg := newRegistry(t, dag.Step{Name: "call", Run: func(ctx context.Context, in dag.Inputs, out dag.Outputs) error {
		return errors.New("rpc error: code = DeadlineExceeded")
	}})
	p := mustCompile(t, reg, "name: f\nversion: \"1\"\ndeadline: 10s\nnodes: [{step: call, timeout: 1s}]")
	ctx := &timerNotRunYet{Context: context.Background(), deadline: time.Now().Add(-time.Millisecond), done: make(chan struct{})}
	go func() { time.Sleep(20 * time.Millisecond); close(ctx.done) }()
	res, err := dag.Run(ctx, p, nil, dag.Options{})
	if !errors.Is(err, dag.ErrDeadline) {
		t.Fatalf("got %v", err)
	}
	if got := res.Trace.Nodes[0].Outcome; got != dag.OutcomeTimedOut {
		t.Fatalf("outcome %s, want timed_out", got)
	}
}
