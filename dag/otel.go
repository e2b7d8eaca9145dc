package dag

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// OpenTelemetry spans, beside the Trace (which stays: it is the waterfall
// and the critical path the station shows). A run makes spans only inside
// a recording span: it takes its tracer from the caller's span, so the
// engine needs no provider of its own and a run outside a traced request,
// or not sampled, costs one check and no allocation.

const tracerName = "github.com/expresshub/station/dag"

// tracerFor is the tracer of the recording span in ctx, or nil.
func tracerFor(ctx context.Context) trace.Tracer {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return nil
	}
	return span.TracerProvider().Tracer(tracerName)
}

// startRun opens the flow's span; the steps' spans are its children.
func (r *run) startRun(ctx context.Context) (context.Context, trace.Span) {
	ctx, span := r.tracer.Start(ctx, "dag "+r.p.name, trace.WithAttributes(attribute.String("dag.flow", r.p.name)))
	return ctx, span
}

// endRun closes the flow's span with the run's error.
func endRun(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "flow failed")
	}
	span.End()
}

// startStep opens one step's span; ctx is what the step runs with.
func (r *run) startStep(ctx context.Context, n *node) (context.Context, trace.Span) {
	return r.tracer.Start(ctx, "dag.step "+n.id, trace.WithAttributes(
		attribute.String("dag.flow", r.p.name),
		attribute.String("dag.node", n.id),
		attribute.String("dag.step", n.step.Name),
	))
}

// endStep closes a step's span with its outcome from the trace entry.
func endStep(span trace.Span, tr *NodeTrace) {
	span.SetAttributes(attribute.String("dag.outcome", string(tr.Outcome)), attribute.Int("dag.attempts", tr.Attempts))
	switch tr.Outcome {
	case OutcomeFailed, OutcomeTimedOut, OutcomeCanceled:
		span.SetStatus(codes.Error, tr.Error)
	case OutcomeDegraded:
		span.SetAttributes(attribute.String("dag.error", tr.Error))
	}
	span.End()
}
