// Package lease gives singleton jobs (outbox pruning, scheduled offline
// reconciliation) one holder at a time across the identical `station serve`
// instances, through rows of the job_leases table in PostgreSQL.
//
// A lease is taken for a TTL measured by the database's clock and renewed
// every TTL/3 while held. The job runs under the lease's context, which is
// cancelled the moment the lease is known to be lost: a renewal finds the
// row no longer ours (expired and taken, or its fence moved on), or no
// renewal has succeeded for a whole TTL counted from before the last good
// one was sent (so the local deadline never outlives the row's).
//
// Cancelling a context cannot stop a write already on its way, so losing
// must never let a stale holder write: every acquisition raises the row's
// fence, and a job's writes call (*Lease).Guard inside their own
// transaction. Guard locks the lease row FOR SHARE only if name, holder and
// fence are still ours and unexpired; a takeover's UPDATE then waits for
// the writer's commit, and once the takeover happened the stale holder's
// guard finds nothing and its transaction writes nothing.
//
// The package owns the job_leases table and nothing else; it never decides
// what a job writes.
package lease
