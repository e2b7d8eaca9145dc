// Package tracing builds the station's OpenTelemetry tracer provider from
// its configuration (otel.*): an OTLP/gRPC exporter behind a batching span
// processor, with parent-based ratio sampling. It also offers ChildOnly, a
// provider wrapper for instrumentation that must add spans to a trace but
// never start one (database and Redis calls of background jobs would
// otherwise each open a trace of their own).
//
// It owns no global state: the provider is passed to whatever is
// instrumented, and the W3C trace context propagator is named explicitly
// where it is used. It never instruments anything itself.
package tracing
