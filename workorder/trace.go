package workorder

import (
	"context"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// traceParent is the W3C traceparent of the span in ctx, stored with the
// events a work order writes so that their delivery continues the trace of
// the request that made them; nil when ctx is not traced (no span, or
// tracing off), which costs nothing.
func traceParent(ctx context.Context) *string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	var c traceCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	if c.v == "" {
		return nil
	}
	return &c.v
}

// traceCarrier holds the traceparent header alone, without a map.
type traceCarrier struct{ v string }

func (c *traceCarrier) Get(key string) string {
	if key == "traceparent" {
		return c.v
	}
	return ""
}

func (c *traceCarrier) Set(key, value string) {
	if key == "traceparent" {
		c.v = value
	}
}

func (c *traceCarrier) Keys() []string { return []string{"traceparent"} }
