// Package workorder writes the station's audit trail: one work order per
// operation, and the tracking events that operation produces, into the
// tracking outbox in the caller's transaction. It also answers idempotent
// replays: a work order remembers the request hash and the exact response.
//
// It sits below sorting, packing and station so that each of them can record
// its operations atomically with its own rows: in the caller's transaction
// (Record), or, for operations that only insert, in one pipelined round trip
// that PostgreSQL runs as an implicit transaction (CommitBatch).
//
// It is the only code that writes work_orders and tracking_outbox
// (TestOnlyWorkorderWritesItsTables checks the module's source). Besides the
// write, that covers the outbox after it: the relay's claim with FOR UPDATE
// SKIP LOCKED and per-parcel order, marking events delivered, failed or dead,
// ops re-drives, and pruning (Outbox, in outbox.go). It never talks to the
// order center: the relay in station does that, through Outbox.Deliver.
package workorder
