package workorder

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/fault"
)

// The tracking outbox after the write: the relay's claim and settlement, the
// ops queries and re-drives, and the rule retention keeps (OutboxKeep) and
// the scan keys' trimming. Every statement that changes
// tracking_outbox lives in this package (see TestOnlyWorkorderWritesItsTables);
// the relay decides where an event goes and whether it got there, never how
// its row changes.

// ErrEventNotFound means no outbox row has the id.
var ErrEventNotFound = fault.New(fault.NotFound, "event_not_found", "outbox event not found")

// Outbox is the tracking outbox as the relay and ops see it.
// Ops act network-wide: its queries span every station.
type Outbox struct {
	db *pgxpool.Pool
}

// NewOutbox wraps the pool.
func NewOutbox(db *pgxpool.Pool) *Outbox { return &Outbox{db: db} }

// Claimed is one outbox row locked by a delivery.
type Claimed struct {
	ID         int64 // outbox id; orders a parcel's events
	Attempts   int   // failed deliveries so far
	EventID    string
	TrackingNo string
	StationID  string
	// Type is the event's type; zero when the stored name is not one of
	// EventTypes (written by hand or by a newer version): the relay must
	// not send such an event, and StoredType says what was found.
	Type        EventType
	StoredType  string
	Actor       Actor
	OccurredAt  time.Time
	PayloadJSON string
	// TraceParent is the W3C trace context of the request that wrote the
	// event; empty when it was not traced.
	TraceParent string
}

// Failure is the new state of a row whose delivery did not succeed.
type Failure struct {
	ID   int64
	Dead bool      // give up: ops must re-drive it
	Next time.Time // when a pending row is due again
	Err  string    // shown to ops as last_error
}

// Settlement is what a delivery did with the rows it was given.
type Settlement struct {
	Delivered []int64
	Failed    []Failure
}

// DeliveryResult counts one Deliver call.
type DeliveryResult struct {
	Claimed int // rows locked
	Ready   int // rows handed to send (the rest waited for an earlier event of their parcel)
}

// Deliver claims up to n due pending events, oldest first, skipping rows
// other deliveries hold (FOR UPDATE SKIP LOCKED); hands send the ones that
// may go now, in outbox order (per parcel, an unbroken prefix of its
// undelivered events); records send's settlement; and commits. The rows stay
// locked while send runs, so instances share the work without a leader and a
// process that dies mid-delivery releases its rows. send is not called when
// nothing is ready. Rows send leaves out of its settlement stay as they
// were. ctx should outlive send: settling is what makes a send count.
func (o *Outbox) Deliver(ctx context.Context, n int, send func(ctx context.Context, ready []Claimed) Settlement) (DeliveryResult, error) {
	var res DeliveryResult
	tx, err := o.db.Begin(ctx)
	if err != nil {
		return res, fmt.Errorf("outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	// The outbox is partitioned by day, and none of the delivery's
	// statements can be pruned by it: a custom plan would be planned anew
	// over every partition on each call, costing more than running it.
	// The generic plan of each prepared statement is made once per
	// connection.
	if _, err := tx.Exec(ctx, "SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
		return res, fmt.Errorf("outbox: plan mode: %w", err)
	}

	claimed, err := claim(ctx, tx, n)
	if err != nil || len(claimed) == 0 {
		return res, err
	}
	res.Claimed = len(claimed)
	ready, err := inOrder(ctx, tx, claimed)
	if err != nil {
		return res, err
	}
	res.Ready = len(ready)
	if len(ready) == 0 {
		return res, nil // every claimed row waits for an earlier event of its parcel
	}
	s := send(ctx, ready)
	if err := markDelivered(ctx, tx, s.Delivered); err != nil {
		return res, err
	}
	if err := markFailed(ctx, tx, s.Failed); err != nil {
		return res, err
	}
	if err := tx.Commit(ctx); err != nil {
		return res, fmt.Errorf("outbox: commit: %w", err)
	}
	return res, nil
}

const claimSQL = `
SELECT o.id, o.attempts, o.event_id::text, o.tracking_no, o.station_id, o.type, o.actor_id, o.actor_kind, o.occurred_at, o.payload::text,
       coalesce(o.traceparent, '')
  FROM tracking_outbox o
 WHERE o.status = 'pending' AND o.next_attempt_at <= now()
   -- Not behind an earlier event of the parcel that is dead or waiting for
   -- its retry: such rows could not go anyway, and claiming them would let
   -- them fill every batch and starve the rest.
   AND NOT EXISTS (SELECT 1 FROM tracking_outbox e
                    WHERE e.tracking_no = o.tracking_no AND e.id < o.id
                      AND (e.status = 'dead' OR (e.status = 'pending' AND e.next_attempt_at > now())))
 ORDER BY o.id
 LIMIT $1
   FOR UPDATE OF o SKIP LOCKED`

// claim locks up to n due pending rows, oldest first, skipping rows other
// deliveries hold.
func claim(ctx context.Context, tx pgx.Tx, n int) ([]Claimed, error) {
	rows, err := tx.Query(ctx, claimSQL, n)
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(cr pgx.CollectableRow) (Claimed, error) {
		var c Claimed
		var kind string
		err := cr.Scan(&c.ID, &c.Attempts, &c.EventID, &c.TrackingNo, &c.StationID, &c.StoredType, &c.Actor.ID, &kind,
			&c.OccurredAt, &c.PayloadJSON, &c.TraceParent)
		c.Actor.Kind = ActorKind(kind)
		c.Type, _ = ParseEventType(c.StoredType) // unknown: zero, for the relay to dead-letter
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	return out, nil
}

// inOrder keeps the claimed rows that may go now: for each parcel, the
// claimed rows that form an unbroken prefix of its undelivered events. A
// row behind an earlier event that this delivery does not hold (another
// relay has it, it waits for a retry, it is dead) waits; its lock is
// released at commit.
func inOrder(ctx context.Context, tx pgx.Tx, claimed []Claimed) ([]Claimed, error) {
	mine := make(map[int64]struct{}, len(claimed))
	parcels := make([]string, 0, len(claimed))
	seen := make(map[string]struct{}, len(claimed))
	var maxID int64
	for _, c := range claimed {
		mine[c.ID] = struct{}{}
		maxID = max(maxID, c.ID)
		if _, ok := seen[c.TrackingNo]; !ok {
			seen[c.TrackingNo] = struct{}{}
			parcels = append(parcels, c.TrackingNo)
		}
	}
	rows, err := tx.Query(ctx, `SELECT tracking_no, id FROM tracking_outbox
		WHERE tracking_no = ANY($1) AND status <> 'delivered' AND id <= $2 ORDER BY tracking_no, id`, parcels, maxID)
	if err != nil {
		return nil, fmt.Errorf("outbox: parcel order: %w", err)
	}
	blocked := make(map[string]bool, len(parcels))
	ok := make(map[int64]struct{}, len(claimed))
	var no string
	var id int64
	_, err = pgx.ForEachRow(rows, []any{&no, &id}, func() error {
		if blocked[no] {
			return nil
		}
		if _, held := mine[id]; !held {
			blocked[no] = true
			return nil
		}
		ok[id] = struct{}{}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: parcel order: %w", err)
	}
	ready := make([]Claimed, 0, len(ok))
	for _, c := range claimed {
		if _, yes := ok[c.ID]; yes {
			ready = append(ready, c)
		}
	}
	return ready, nil
}

func markDelivered(ctx context.Context, tx pgx.Tx, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, `UPDATE tracking_outbox SET status = 'delivered', delivered_at = now(), attempts = attempts + 1
		WHERE id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("outbox: mark delivered: %w", err)
	}
	return nil
}

func markFailed(ctx context.Context, tx pgx.Tx, failed []Failure) error {
	if len(failed) == 0 {
		return nil
	}
	ids := make([]int64, len(failed))
	dead := make([]bool, len(failed))
	next := make([]time.Time, len(failed))
	errs := make([]string, len(failed))
	for i, f := range failed {
		ids[i], dead[i], next[i], errs[i] = f.ID, f.Dead, f.Next, f.Err
	}
	_, err := tx.Exec(ctx, `UPDATE tracking_outbox o
		SET attempts = o.attempts + 1,
		    status = CASE WHEN u.dead THEN 'dead' ELSE 'pending' END,
		    next_attempt_at = u.next, last_error = u.err
		FROM unnest($1::bigint[], $2::bool[], $3::timestamptz[], $4::text[]) AS u(id, dead, next, err)
		WHERE o.id = u.id`, ids, dead, next, errs)
	if err != nil {
		return fmt.Errorf("outbox: mark failed: %w", err)
	}
	return nil
}

// Stats is the outbox at a glance.
type Stats struct {
	Pending                 int64      `json:"pending"`
	OldestPendingAt         *time.Time `json:"oldest_pending_at,omitempty"`
	OldestPendingAgeSeconds float64    `json:"oldest_pending_age_seconds"`
	Dead                    int64      `json:"dead"`
	// Failing counts pending events that failed at least once and wait
	// for their next attempt or are due again; last_error says why.
	Failing int64 `json:"failing"`
}

// Stats counts pending and dead events and dates the oldest pending one.
func (o *Outbox) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := o.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM tracking_outbox WHERE status = 'pending'),
		(SELECT occurred_at FROM tracking_outbox WHERE status = 'pending' ORDER BY id LIMIT 1),
		(SELECT count(*) FROM tracking_outbox WHERE status = 'dead'),
		(SELECT count(*) FROM tracking_outbox WHERE status = 'pending' AND attempts > 0)`).Scan(&s.Pending, &s.OldestPendingAt, &s.Dead, &s.Failing)
	if err != nil {
		return Stats{}, fmt.Errorf("outbox: stats: %w", err)
	}
	if s.OldestPendingAt != nil {
		at := s.OldestPendingAt.UTC()
		s.OldestPendingAt = &at
		s.OldestPendingAgeSeconds = max(0, time.Since(at).Seconds())
	}
	return s, nil
}

// OutboxEvent is one outbox row as ops see it.
type OutboxEvent struct {
	ID            int64      `json:"id"`
	EventID       string     `json:"event_id"`
	TrackingNo    string     `json:"tracking_no"`
	StationID     string     `json:"station_id"`
	Type          string     `json:"type"`
	OccurredAt    time.Time  `json:"occurred_at"`
	Status        string     `json:"status"`
	Attempts      int        `json:"attempts"`
	NextAttemptAt time.Time  `json:"next_attempt_at"`
	LastError     string     `json:"last_error,omitempty"`
	DeliveredAt   *time.Time `json:"delivered_at,omitempty"`
	RedrivenBy    string     `json:"redriven_by,omitempty"`
	RedrivenAt    *time.Time `json:"redriven_at,omitempty"`
}

const eventColumns = `id, event_id::text, tracking_no, station_id, type, occurred_at, status, attempts, next_attempt_at,
	coalesce(last_error, ''), delivered_at, coalesce(redriven_by, ''), redriven_at`

func scanEvent(row pgx.CollectableRow) (OutboxEvent, error) {
	var e OutboxEvent
	err := row.Scan(&e.ID, &e.EventID, &e.TrackingNo, &e.StationID, &e.Type, &e.OccurredAt, &e.Status, &e.Attempts,
		&e.NextAttemptAt, &e.LastError, &e.DeliveredAt, &e.RedrivenBy, &e.RedrivenAt)
	e.OccurredAt, e.NextAttemptAt = e.OccurredAt.UTC(), e.NextAttemptAt.UTC()
	return e, err
}

// MaxOutboxPage bounds one page of listed events.
const MaxOutboxPage = 500

// Dead lists dead events with an id above afterID, oldest first, at most
// limit (1..MaxOutboxPage). Page on by passing the last id seen.
func (o *Outbox) Dead(ctx context.Context, afterID int64, limit int) ([]OutboxEvent, error) {
	limit = min(max(limit, 1), MaxOutboxPage)
	rows, err := o.db.Query(ctx, `SELECT `+eventColumns+` FROM tracking_outbox
		WHERE status = 'dead' AND id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: dead events: %w", err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("outbox: dead events: %w", err)
	}
	return events, nil
}

// Retry re-drives a dead event: it is pending again with a fresh set of
// attempts, and the re-drive is stamped with who asked and audited.
// Retrying an event that is not dead (already re-driven, delivered, still
// pending) changes nothing and reports redriven false, so a repeated
// request is harmless.
func (o *Outbox) Retry(ctx context.Context, id int64, by string) (OutboxEvent, bool, error) {
	var e OutboxEvent
	var redriven bool
	err := pgx.BeginFunc(ctx, o.db, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE tracking_outbox
			SET status = 'pending', attempts = 0, next_attempt_at = now(), redriven_by = $2, redriven_at = now()
			WHERE id = $1 AND status = 'dead' RETURNING `+eventColumns, id, by)
		if err != nil {
			return err
		}
		e, err = pgx.CollectExactlyOneRow(rows, scanEvent)
		switch {
		case err == nil:
			redriven = true
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		default:
			rows, err = tx.Query(ctx, `SELECT `+eventColumns+` FROM tracking_outbox WHERE id = $1`, id)
			if err != nil {
				return err
			}
			e, err = pgx.CollectExactlyOneRow(rows, scanEvent)
			if errors.Is(err, pgx.ErrNoRows) {
				return fmt.Errorf("outbox: event %d: %w", id, ErrEventNotFound)
			}
			if err != nil {
				return err
			}
		}
		return audit(ctx, tx, OpsAction{Actor: by, IDs: []int64{id}}, "redrive", boolCount(redriven))
	})
	if errors.Is(err, ErrEventNotFound) {
		return OutboxEvent{}, false, err
	}
	if err != nil {
		return OutboxEvent{}, false, fmt.Errorf("outbox: retry %d: %w", id, err)
	}
	return e, redriven, nil
}

func boolCount(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// Pending lists pending events with an id above afterID, oldest first, at
// most limit (1..MaxOutboxPage), each with its last error; failingOnly
// keeps those that failed at least once.
func (o *Outbox) Pending(ctx context.Context, afterID int64, limit int, failingOnly bool) ([]OutboxEvent, error) {
	limit = min(max(limit, 1), MaxOutboxPage)
	rows, err := o.db.Query(ctx, `SELECT `+eventColumns+` FROM tracking_outbox
		WHERE status = 'pending' AND id > $1 AND (NOT $3 OR attempts > 0) ORDER BY id LIMIT $2`, afterID, limit, failingOnly)
	if err != nil {
		return nil, fmt.Errorf("outbox: pending events: %w", err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("outbox: pending events: %w", err)
	}
	return events, nil
}

// OpsAction is an ops request on many outbox events.
type OpsAction struct {
	Actor  string  // who asked (the ops principal)
	Reason string  // why, as they typed it; may be empty
	IDs    []int64 // the events; empty means every eligible one
}

// RetryNow makes pending events that wait for a retry due at once, keeping
// their attempts: ops saw the cause fixed and do not want to wait out the
// backoff. It returns how many it changed and audits the request in the
// same transaction. Events that are due already, delivered or dead are
// left alone (dead ones need a re-drive).
func (o *Outbox) RetryNow(ctx context.Context, a OpsAction) (int64, error) {
	return o.act(ctx, a, "retry_now", func(tx pgx.Tx, ids []int64) (pgconn.CommandTag, error) {
		return tx.Exec(ctx, `UPDATE tracking_outbox SET next_attempt_at = now()
			WHERE status = 'pending' AND next_attempt_at > now() AND ($1::bigint[] IS NULL OR id = ANY($1))`, ids)
	})
}

// RedriveDead makes dead events pending again with a fresh set of attempts,
// stamped with who asked, and audits the request in the same transaction.
// It returns how many it changed; events that are not dead are left alone,
// so a repeated request is harmless.
func (o *Outbox) RedriveDead(ctx context.Context, a OpsAction) (int64, error) {
	return o.act(ctx, a, "redrive", func(tx pgx.Tx, ids []int64) (pgconn.CommandTag, error) {
		return tx.Exec(ctx, `UPDATE tracking_outbox
			SET status = 'pending', attempts = 0, next_attempt_at = now(), redriven_by = $2, redriven_at = now()
			WHERE status = 'dead' AND ($1::bigint[] IS NULL OR id = ANY($1))`, ids, a.Actor)
	})
}

// act runs one bulk ops update (given the ids, nil for all) and its audit
// record in one transaction.
func (o *Outbox) act(ctx context.Context, a OpsAction, action string,
	update func(tx pgx.Tx, ids []int64) (pgconn.CommandTag, error)) (int64, error) {
	var ids []int64
	if len(a.IDs) > 0 {
		ids = a.IDs
	}
	var n int64
	err := pgx.BeginFunc(ctx, o.db, func(tx pgx.Tx) error {
		tag, err := update(tx, ids)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return audit(ctx, tx, a, action, n)
	})
	if err != nil {
		return 0, fmt.Errorf("outbox: %s: %w", action, err)
	}
	return n, nil
}

func audit(ctx context.Context, tx pgx.Tx, a OpsAction, action string, changed int64) error {
	var ids []int64
	if len(a.IDs) > 0 {
		ids = a.IDs
	}
	_, err := tx.Exec(ctx, `INSERT INTO outbox_audit (actor, action, reason, event_ids, changed) VALUES ($1, $2, $3, $4, $5)`,
		a.Actor, action, a.Reason, ids, changed)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	return nil
}

// OutboxAuditEntry is one ops action on the outbox.
type OutboxAuditEntry struct {
	ID        int64     `json:"id"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"` // redrive or retry_now
	Reason    string    `json:"reason"`
	EventIDs  []int64   `json:"event_ids"` // null: every eligible event
	Changed   int64     `json:"changed"`
	CreatedAt time.Time `json:"created_at"`
}

// Audit lists ops actions on the outbox, newest first, at most limit
// (1..MaxOutboxPage).
func (o *Outbox) Audit(ctx context.Context, limit int) ([]OutboxAuditEntry, error) {
	limit = min(max(limit, 1), MaxOutboxPage)
	rows, err := o.db.Query(ctx, `SELECT id, actor, action, reason, event_ids, changed, created_at
		FROM outbox_audit ORDER BY id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: audit: %w", err)
	}
	entries, err := pgx.CollectRows(rows, pgx.RowToStructByPos[OutboxAuditEntry])
	if err != nil {
		return nil, fmt.Errorf("outbox: audit: %w", err)
	}
	return entries, nil
}

// OutboxKeep is the tracking outbox's condition for package history: a
// day's partition past retention is dropped only once every event in it is
// delivered. A pending or dead event keeps its day, whatever its age,
// until it is delivered (a dead one after an ops re-drive).
const OutboxKeep = "status <> 'delivered'"

// TrimScanKeys deletes the idempotency keys recorded more than retain ago,
// batch rows per transaction behind guard (the partition job's lease
// check; it runs first in each transaction), at most maxBatches batches,
// and returns how many it deleted. A scan id replayed after that is taken
// as new: retain must be longer than any retry (a terminal's offline
// queue) and shorter than the work orders' retention, so a key never names
// a dropped work order.
func TrimScanKeys(ctx context.Context, db *pgxpool.Pool, retain time.Duration, batch, maxBatches int,
	guard func(context.Context, pgx.Tx) error) (int64, error) {
	var total int64
	for range maxBatches {
		var n int64
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if err := guard(ctx, tx); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM scan_keys WHERE (station_id, scan_id) IN (
				SELECT station_id, scan_id FROM scan_keys WHERE created_at < now() - $1 * interval '1 microsecond'
				ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, retain.Microseconds(), batch)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("workorder: trim scan keys: %w", err)
		}
		total += n
		if n < int64(batch) {
			break
		}
	}
	return total, nil
}
