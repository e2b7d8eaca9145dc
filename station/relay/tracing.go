package relay

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/station/tracing"
	"github.com/expresshub/station/workorder"
)

// Option adjusts a Relay.
type Option func(*Relay)

// WithTracerProvider makes the relay continue the trace of each event's
// write: every event that was written inside a traced request gets a
// publish span, a child of the stored trace context, and the sink carries
// that span's context on (message headers, or the order center call's
// metadata). nil leaves tracing off.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(r *Relay) {
		if tp != nil {
			r.tracer = tp.Tracer("github.com/expresshub/station/station/relay")
		}
	}
}

// startPublish starts the publish span of each traced row and sets its
// event's TraceParent to it; spans[i] is nil for an untraced row.
func (r *Relay) startPublish(ctx context.Context, rows []workorder.Claimed, events []clients.TrackingEvent) []trace.Span {
	var spans []trace.Span
	for i, row := range rows {
		if row.TraceParent == "" {
			continue
		}
		parent := tracing.ContextWithTraceParent(ctx, row.TraceParent)
		if !trace.SpanContextFromContext(parent).IsValid() {
			continue // malformed: deliver the event untraced
		}
		if spans == nil {
			spans = make([]trace.Span, len(rows))
		}
		sctx, span := r.tracer.Start(parent, "tracking publish", trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(
				attribute.String("messaging.message.id", row.EventID),
				attribute.String("station.tracking_no", row.TrackingNo),
				attribute.String("station.station_id", row.StationID),
				attribute.String("station.event_type", row.StoredType),
				attribute.Int("station.outbox_id", int(row.ID)),
			))
		spans[i] = span
		events[i].TraceParent = tracing.TraceParent(sctx)
	}
	return spans
}

// endPublish ends the publish spans with what the sink said of each event.
func endPublish(spans []trace.Span, events []clients.TrackingEvent, acks []clients.EventAck, err error) {
	if spans == nil {
		return
	}
	byID := make(map[string]clients.EventAck, len(acks))
	for _, a := range acks {
		byID[a.EventID] = a
	}
	for i, span := range spans {
		if span == nil {
			continue
		}
		a, ok := byID[events[i].EventID]
		switch {
		case err != nil:
			span.RecordError(err)
			span.SetStatus(codes.Error, "push failed")
		case !ok:
			span.SetStatus(codes.Error, "no acknowledgement")
		case a.Delivered():
			span.SetAttributes(attribute.String("station.ack", string(a.Status)))
		default:
			span.SetAttributes(attribute.String("station.ack", string(a.Status)))
			span.SetStatus(codes.Error, a.Reason)
		}
		span.End()
	}
}
