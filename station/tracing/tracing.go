package tracing

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/embedded"
)

// Config is what New needs (config.OTel).
type Config struct {
	Endpoint    string  // OTLP/gRPC collector host:port; empty: tracing is off
	Insecure    bool    // no TLS to the collector
	SampleRatio float64 // share of new traces kept
	ServiceName string
}

// Propagator is the one trace context format the station reads and writes:
// W3C traceparent (and tracestate).
func Propagator() propagation.TextMapPropagator { return propagation.TraceContext{} }

// New builds the exporting provider, or returns nil when cfg.Endpoint is
// empty (tracing off: callers then instrument nothing). Shut the provider
// down last, after everything that makes spans has stopped: Shutdown
// flushes the spans still queued.
func New(ctx context.Context, cfg Config) (*sdktrace.TracerProvider, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint)}
	if cfg.Insecure {
		opts = append(opts, otlptracegrpc.WithInsecure())
	}
	// The exporter connects lazily: a collector that is down loses spans,
	// never stops the station.
	exp, err := otlptracegrpc.New(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("otel: exporter for %s: %w", cfg.Endpoint, err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName))
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(Sampler(cfg.SampleRatio)),
	), nil
}

// Sampler keeps ratio of new traces and follows the caller's decision for
// a request that arrives with a trace context, so a trace is never cut in
// the middle.
func Sampler(ratio float64) sdktrace.Sampler {
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))
}

// ChildOnly wraps tp so that its tracers start a span only under a
// recording parent; otherwise Start returns the context unchanged and the
// parent's non-recording span, at no cost. Use it for instrumentation of
// calls that background jobs make too (PostgreSQL, Redis, downstream
// gRPC): inside a traced request they show in its trace, and outside they
// do not each open a trace.
func ChildOnly(tp trace.TracerProvider) trace.TracerProvider { return childOnly{tp: tp} }

type childOnly struct {
	embedded.TracerProvider
	tp trace.TracerProvider
}

func (c childOnly) Tracer(name string, opts ...trace.TracerOption) trace.Tracer {
	return childOnlyTracer{t: c.tp.Tracer(name, opts...)}
}

type childOnlyTracer struct {
	embedded.Tracer
	t trace.Tracer
}

func (c childOnlyTracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if parent := trace.SpanFromContext(ctx); !parent.IsRecording() {
		return ctx, parent
	}
	return c.t.Start(ctx, name, opts...)
}

// TraceParent is the W3C traceparent of the span in ctx, or "" when ctx
// carries no valid span context.
func TraceParent(ctx context.Context) string {
	var c single
	Propagator().Inject(ctx, &c)
	return c.v
}

// ContextWithTraceParent returns ctx with the remote span context that
// traceparent names; an empty or malformed traceparent leaves ctx as is.
func ContextWithTraceParent(ctx context.Context, traceparent string) context.Context {
	if traceparent == "" {
		return ctx
	}
	c := single{v: traceparent}
	return Propagator().Extract(ctx, &c)
}

// single is a carrier of the traceparent header alone (tracestate is not
// kept), without a map per call.
type single struct{ v string }

func (s *single) Get(key string) string {
	if key == "traceparent" {
		return s.v
	}
	return ""
}

func (s *single) Set(key, value string) {
	if key == "traceparent" {
		s.v = value
	}
}

func (s *single) Keys() []string { return []string{"traceparent"} }
