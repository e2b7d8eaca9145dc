package tracing_test

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/expresshub/station/station/tracing"
)

func TestNoEndpointMeansTracingOff(t *testing.T) {
	tp, err := tracing.New(context.Background(), tracing.Config{SampleRatio: 1, ServiceName: "station"})
	if err != nil || tp != nil {
		t.Fatalf("provider %v, error %v; want none", tp, err)
	}
}

func TestEndpointBuildsAProviderThatShutsDown(t *testing.T) {
	// The exporter connects lazily: nothing listens here, and nothing is
	// exported, so the provider builds and shuts down without a collector.
	tp, err := tracing.New(context.Background(), tracing.Config{Endpoint: "127.0.0.1:1", Insecure: true, SampleRatio: 0.5, ServiceName: "station"})
	if err != nil || tp == nil {
		t.Fatalf("provider %v, error %v", tp, err)
	}
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestChildOnlyStartsSpansOnlyUnderARecordingParent: background work
// (no span, or an unsampled one) opens no trace; traced work gets a child.
func TestChildOnlyStartsSpansOnlyUnderARecordingParent(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	child := tracing.ChildOnly(tp).Tracer("test")

	ctx, span := child.Start(context.Background(), "background")
	if span.IsRecording() || ctx != context.Background() {
		t.Fatal("a span without a parent")
	}
	span.End()

	parentCtx, parent := tp.Tracer("test").Start(context.Background(), "request")
	_, span = child.Start(parentCtx, "query")
	span.End()
	parent.End()
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "query" || spans[0].Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("spans %v", spans)
	}
}

func TestTraceParentRoundTrip(t *testing.T) {
	if got := tracing.TraceParent(context.Background()); got != "" {
		t.Fatalf("no span: %q", got)
	}
	const tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := tracing.ContextWithTraceParent(context.Background(), tp)
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsRemote() || !sc.IsSampled() || sc.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" {
		t.Fatalf("span context %+v", sc)
	}
	if got := tracing.TraceParent(ctx); got != tp {
		t.Fatalf("round trip %q", got)
	}
	if bad := tracing.ContextWithTraceParent(context.Background(), "00-nonsense"); trace.SpanContextFromContext(bad).IsValid() {
		t.Fatal("a malformed traceparent made a span context")
	}
}
