// Package relay delivers the tracking outbox to the order center: the
// background worker every `station serve` runs. The outbox's rows belong to
// package workorder: the relay asks it for a batch (workorder.Outbox.Deliver)
// and tells it what became of each event; the ops queries, re-drives and
// pruning are workorder's too.
//
// Where events go is a Pusher (relay.sink): the order center's
// PushTrackingEvents over gRPC (clients.OrderCenter), a NATS JetStream
// stream (JetStream: subjects per station, event id in Nats-Msg-Id, async
// publishes acknowledged per batch) or a Kafka topic (Kafka: idempotent
// producer, keyed by tracking number). Every sink answers with one ack per
// event, and only an acknowledged event is marked delivered.
//
// Delivery is at least once and in order per parcel. A batch is claimed
// with SELECT ... FOR UPDATE SKIP LOCKED in a transaction that stays open
// while the batch is pushed, so instances share the work without a leader,
// and a process that dies mid-batch simply releases its rows (its
// connection drops, the transaction rolls back, the rows are pending
// again). A claimed row is pushed only when every earlier undelivered event
// of its parcel is in the same batch; an earlier event held by another
// relay, waiting for its retry, or dead holds the parcel's later events
// back. The outbox ids follow commit order per parcel (package workorder
// serialises a parcel's writers), which is what makes "earlier" well
// defined; the relay never keeps a "last id seen" cursor, which would skip
// rows that commit out of id order.
//
// Unavailability of the order center (Unavailable, deadline, open circuit)
// says nothing about the events: the worker pauses with backoff and jitter
// and the rows keep their attempts. Any other failure of a push counts an
// attempt on its rows, which are retried with backoff and jitter and go
// dead after relay.max_attempts; an event the order center rejects
// ("resending will not help"), and a push refused as such
// (InvalidArgument, FailedPrecondition, OutOfRange), go dead at once. Every failure leaves its text in
// last_error, which ops see for pending and dead events alike. Ops list dead events and
// re-drive them.
//
// It must never decide what an event says (package workorder writes them)
// and never writes outbox rows itself: it settles them through workorder,
// and days whose events are all delivered are dropped after
// history.retain.tracking_outbox by the partition job (package history,
// behind a lease; workorder.OutboxKeep keeps a day with an undelivered event).
package relay
