package dag_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/expresshub/station/dag"
)

// TestRunInATracedRequestMakesASpanPerStep: under a recording span a run
// adds a span for the flow and one per step it ran (a skipped step has
// none), each step's span a child of the flow's, and the flow's a child of
// the caller's; the trace for the waterfall is unchanged.
func TestRunInATracedRequestMakesASpanPerStep(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	p := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)

	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	res, err := dag.Run(ctx, p, []dag.Value{keyTrackingNo.Bind("SG1000000001")}, dag.Options{})
	request.End()
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Trace.Nodes) != 5 {
		t.Fatalf("trace has %d nodes", len(res.Trace.Nodes))
	}
	spans := exp.GetSpans()
	var flow tracetest.SpanStub
	for _, s := range spans {
		if s.Name == "dag "+p.Name() {
			flow = s
		}
	}
	if flow.Parent.SpanID() != request.SpanContext().SpanID() {
		t.Fatalf("flow span %q under %v, want under the request", flow.Name, flow.Parent.SpanID())
	}
	steps := map[string]bool{}
	for _, s := range spans {
		if s.Parent.SpanID() == flow.SpanContext.SpanID() {
			steps[s.Name] = true
		}
	}
	want := []string{"dag.step fetch_waybill", "dag.step get_route", "dag.step resolve_chute", "dag.step persist"}
	for _, name := range want {
		if !steps[name] {
			t.Errorf("no span %q under the flow; got %v", name, steps)
		}
	}
	if steps["dag.step check_billing"] || len(steps) != len(want) {
		t.Errorf("step spans %v, want only the steps that ran %v", steps, want)
	}
}

// TestRunOutsideATraceMakesNoSpan: without a recording span in its
// context (tracing off, or the request not sampled) a run makes no span.
func TestRunOutsideATraceMakesNoSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.NeverSample()))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	p := mustCompile(t, newRegistry(t, sortingSteps()...), sortingFlow)
	unsampled, span := tp.Tracer("test").Start(context.Background(), "request")
	defer span.End()
	for _, ctx := range []context.Context{context.Background(), unsampled} {
		if _, err := dag.Run(ctx, p, []dag.Value{keyTrackingNo.Bind("SG1000000001")}, dag.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(exp.GetSpans()); n != 0 {
		t.Fatalf("%d spans", n)
	}
}
