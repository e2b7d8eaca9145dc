// Package sorting decides where a parcel goes next at a station: the atomic
// sorting steps (one downstream question each), the per-market flows that
// arrange them as a DAG (versioned in PostgreSQL, published at runtime and
// assigned to markets there; flows/*.yaml only seed an empty database), the
// chute maps, and the manual sort and receive operations with their work
// orders. Gray release serves a candidate flow to a share of parcels, and a
// guarded ramp steps that share up by itself (ramp.go).
//
// A business exception (cancelled, unpaid, wrong station, ...) is an outcome,
// not a failure: the step that finds it stops the run with an *Exception, and
// the parcel goes to the exception chute with that code. A dependency that is
// down is DOWNSTREAM_UNAVAILABLE, also an outcome: the terminal and the belt
// always get an answer within the flow's deadline.
//
// Recording happens after the graph, not as one of its nodes: the record
// holds the run's own outcome (degraded steps, the exception, the trace),
// which exists only once the graph has finished. It is one transaction: sort
// result, work order and tracking event together or not at all.
//
// The Belt serves the sorting machine: PreSort sorts expected parcels ahead
// of time, Resolve answers a chute at the belt within the call's deadline
// (from the pre-sorted table, else sorted on the fly, else the reject
// chute: never an error for a parcel), Confirm records what the machine
// did. Its answers live in PostgreSQL (the arbiter), a Redis hash per
// station and a small cache per instance; a parcel sorted by hand or found
// intercepted at arrival loses its answer everywhere at once (a tombstone
// in the same transaction, then Redis pub/sub), and a cache that may have
// missed a signal is not used.
//
// sorting never imports station and never speaks HTTP or gRPC.
package sorting
