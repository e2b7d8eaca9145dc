// Package clients owns Station's gRPC clients of the downstream services:
// order center, basic (sites and routes), finance, delivery, container and
// linehaul. Dial builds one typed client per service (a Set) whose methods
// take plain Go values and return the domain types of types.go, so the
// sorting, packing and station packages never touch generated code.
//
// What every call gets, so callers do not have to think about it:
//
//   - a deadline: the caller's, capped per method (Config.Deadlines,
//     DefaultDeadlines);
//   - retries for idempotent reads only, on Unavailable and
//     ResourceExhausted, with exponential backoff inside the deadline and a
//     retry budget per connection (gRPC retry policy and retry throttling);
//     writes (PushTrackingEvents, AllocateBagID) and IssueToken are never
//     retried here;
//   - a circuit breaker per service (sony/gobreaker) that fails fast with
//     ErrCircuitOpen (and ErrUnavailable) while the dependency is failing;
//   - errors as *CallError matching one of ErrNotFound, ErrInvalidArgument,
//     ErrUnavailable, ErrDownstream (plus context.DeadlineExceeded or
//     context.Canceled): the sorting layer maps ErrUnavailable to
//     DOWNSTREAM_UNAVAILABLE and never looks at gRPC codes;
//   - Prometheus metrics per method (station_downstream_request_duration_seconds
//     with service, method and code labels; breaker state) on the registry
//     passed in, never the global one.
//
// The basic service's answers (master data: sites, routes, service areas,
// lane restrictions), asked for over and over by every sort, are kept in a
// short-lived cache (Config.Cache, 5 s by default). Site lookup misses also
// go through a context-aware singleflight (package flight);
// Basic.ForgetSite drops a cached site and an in-flight lookup after a known
// change. The order center's access token is
// fetched lazily, refreshed ahead of expiry once per fleet (singleflight in
// the process, a fenced Redis lock across processes, the token shared in
// Redis) and attached as "authorization: Bearer <token>".
//
// This package must never decide business outcomes (whether a parcel is an
// exception is the sorting layer's call), never cache answers beyond one
// in-flight call (master data for a few seconds is the one exception), and
// never retry a write.
//
// The simulator that plays these services for dev, tests and benchmarks is
// in clients/sim; clients/sim/simtest starts one per test.
package clients
