package workorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors; wrap with %w, match with errors.Is.
var (
	// ErrScanIDReused means the scan id was already used for a different
	// request at this station.
	ErrScanIDReused = errors.New("scan id reused for a different request")
	// ErrDuplicateScan means a work order with this scan id was committed by a
	// concurrent request; the caller rolls back and replays.
	ErrDuplicateScan = errors.New("scan id already recorded")
	// ErrNotFound means no work order matches.
	ErrNotFound = errors.New("work order not found")
)

// ActorKind says who performed an operation.
type ActorKind string

const (
	ActorOperator ActorKind = "operator"
	ActorSorter   ActorKind = "sorter"
	ActorSystem   ActorKind = "system"
)

// Actor is the operator, sorter or system job behind an operation.
type Actor struct {
	Kind ActorKind
	ID   string
}

// Order is one operation to record.
type Order struct {
	ID          uuid.UUID // assigned by NewID; the response may name it
	StationID   string
	Type        string // receive, sort, bag_open, bag_add, ...
	TrackingNo  string // empty for operations on a bag or handover as a whole
	SubjectID   string // bag or handover id, if any
	Actor       Actor
	ScanID      string
	RequestHash []byte
	Outcome     string // "ok" or an exception code
	Response    []byte // the exact body returned to the client
	Events      []Event
}

// Event is one tracking event for the order center.
type Event struct {
	TrackingNo string
	Type       string
	OccurredAt time.Time
	Payload    map[string]any
}

// Stored is a recorded work order as a replay needs it.
type Stored struct {
	ID          uuid.UUID
	RequestHash []byte
	Outcome     string
	Response    []byte
	CreatedAt   time.Time
}

// NewID returns a time-ordered id for a work order or an event, so ids sort
// roughly by creation time in indexes and logs.
func NewID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

// RequestHash hashes the semantic fields of a request (already normalised by
// the caller), so a replay with the same meaning matches whatever the JSON
// spacing was.
func RequestHash(parts ...string) []byte {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s|", len(p), p)
	}
	return h.Sum(nil)
}

// Querier is what Lookup needs: a pool, a connection or a transaction.
type Querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lookupSQL runs before every recorded operation (the replay check) and
// must stay a read of the unique key at any table size; see
// TestLookupPlanUsesScanKey.
const lookupSQL = `SELECT id, request_hash, outcome, response, created_at
	FROM work_orders WHERE station_id = $1 AND scan_id = $2`

// Lookup finds the work order recorded for (station, scan id).
func Lookup(ctx context.Context, q Querier, stationID, scanID string) (Stored, error) {
	var s Stored
	err := q.QueryRow(ctx, lookupSQL, stationID, scanID).Scan(&s.ID, &s.RequestHash, &s.Outcome, &s.Response, &s.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Stored{}, ErrNotFound
	}
	if err != nil {
		return Stored{}, fmt.Errorf("workorder: lookup %s/%s: %w", stationID, scanID, err)
	}
	return s, nil
}

// Replay returns the stored response for (station, scan id) when the request
// hash matches, ErrScanIDReused when it does not, and ErrNotFound when the scan
// id is new.
func Replay(ctx context.Context, q Querier, stationID, scanID string, hash []byte) ([]byte, error) {
	s, err := Lookup(ctx, q, stationID, scanID)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(s.RequestHash, hash) {
		return nil, fmt.Errorf("workorder: scan %s at %s: %w", scanID, stationID, ErrScanIDReused)
	}
	return s.Response, nil
}

// Record inserts the work order and its events in tx. When the scan id is
// already taken it returns ErrDuplicateScan and the caller must roll back and
// Replay. Events of one parcel are serialised with a transaction-scoped
// advisory lock so that outbox ids follow commit order per parcel, which is
// what the relay's per-parcel ordering relies on.
func Record(ctx context.Context, tx pgx.Tx, o Order) error {
	// One round trip: the per-parcel locks, then the work order and its
	// events in one statement. The events are inserted only if the work order
	// was (a duplicate scan id inserts nothing).
	batch := &pgx.Batch{}
	var orders, events int
	if err := queueRecord(batch, o, true, func(row pgx.Row) error { return row.Scan(&orders, &events) }); err != nil {
		return err
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("workorder: insert %s: %w", o.Type, err)
	}
	if orders == 0 {
		return fmt.Errorf("workorder: %s scan %s: %w", o.Type, o.ScanID, ErrDuplicateScan)
	}
	return nil
}

// queueRecord queues the per-parcel locks and the work order with its
// events on batch. With skipDuplicate a scan id already taken inserts
// nothing and counted reads (orders, events) as (0, 0); without it, it
// fails the statement on the work_orders_scan key, which aborts everything
// sent in the same transaction.
func queueRecord(batch *pgx.Batch, o Order, skipDuplicate bool, counted func(pgx.Row) error) error {
	if o.ID == uuid.Nil {
		return errors.New("workorder: order without id")
	}
	var trackingNo, subjectID *string
	if o.TrackingNo != "" {
		trackingNo = &o.TrackingNo
	}
	if o.SubjectID != "" {
		subjectID = &o.SubjectID
	}
	n := len(o.Events)
	eventIDs, parcels, types := make([]uuid.UUID, n), make([]string, n), make([]string, n)
	times, payloads := make([]time.Time, n), make([]string, n)
	for i, e := range o.Events {
		payload, err := json.Marshal(orEmpty(e.Payload))
		if err != nil {
			return fmt.Errorf("workorder: event payload: %w", err)
		}
		at := e.OccurredAt
		if at.IsZero() {
			at = time.Now()
		}
		eventIDs[i], parcels[i], types[i], times[i], payloads[i] = NewID(), e.TrackingNo, e.Type, at, string(payload)
	}
	if locks := parcelKeys(o.Events); len(locks) > 0 {
		batch.Queue(`SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) FROM unnest($1::text[]) AS k ORDER BY k`, locks)
	}
	onConflict := ""
	if skipDuplicate {
		onConflict = "ON CONFLICT ON CONSTRAINT work_orders_scan DO NOTHING"
	}
	q := batch.Queue(`WITH wo AS (
		  INSERT INTO work_orders
		    (id, station_id, type, tracking_no, subject_id, actor_kind, actor_id, scan_id, request_hash, outcome, response)
		  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
		  `+onConflict+`
		  RETURNING id
		), ev AS (
		  INSERT INTO tracking_outbox (event_id, work_order_id, tracking_no, station_id, type, actor_id, occurred_at, payload)
		  SELECT e.event_id, wo.id, e.tracking_no, $2, e.type, $7, e.occurred_at, e.payload::jsonb
		    FROM wo CROSS JOIN unnest($12::uuid[], $13::text[], $14::text[], $15::timestamptz[], $16::text[])
		         AS e (event_id, tracking_no, type, occurred_at, payload)
		  RETURNING 1
		)
		SELECT (SELECT count(*) FROM wo), (SELECT count(*) FROM ev)`,
		o.ID, o.StationID, o.Type, trackingNo, subjectID, string(o.Actor.Kind), o.Actor.ID,
		o.ScanID, o.RequestHash, o.Outcome, o.Response, eventIDs, parcels, types, times, payloads)
	if counted != nil {
		q.QueryRow(counted)
	}
	return nil
}

// parcelKeys are the distinct parcels of events in one global order, so two
// transactions never wait on each other's advisory locks in a cycle.
func parcelKeys(events []Event) []string {
	seen := make(map[string]struct{}, len(events))
	keys := make([]string, 0, len(events))
	for _, e := range events {
		if _, ok := seen[e.TrackingNo]; !ok {
			seen[e.TrackingNo] = struct{}{}
			keys = append(keys, e.TrackingNo)
		}
	}
	sort.Strings(keys)
	return keys
}

func orEmpty(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

// Batcher is what CommitBatch needs: a pool (or a connection outside a
// transaction).
type Batcher interface {
	Querier
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// CommitBatch records o and the operation's own rows in one transaction and
// one round trip, for operations whose rows need nothing read first: the
// per-parcel locks, the work order, its events
// and the statements that write queues on the batch are sent to PostgreSQL
// together and run as one implicit transaction, committed after the last
// statement (one commit, one WAL flush, and no BEGIN or COMMIT to wait
// for). Any failure rolls all of it back.
//
// write reads its statements' results through the queued queries'
// callbacks (QueuedQuery.Exec, QueryRow); they run before CommitBatch
// returns, and what they saw counts only if err is nil. A scan id already
// recorded fails the work order's insert on its unique key, which aborts the
// batch: nothing is written, and the stored response is returned with
// replayed set (or ErrScanIDReused when its request differed).
func CommitBatch(ctx context.Context, db Batcher, o Order, write func(b *pgx.Batch)) (body []byte, replayed bool, err error) {
	batch := &pgx.Batch{}
	if err := queueRecord(batch, o, false, nil); err != nil {
		return nil, false, err
	}
	write(batch)
	err = db.SendBatch(ctx, batch).Close()
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "23505" && pg.ConstraintName == "work_orders_scan" {
		body, err := Replay(ctx, db, o.StationID, o.ScanID, o.RequestHash)
		return body, err == nil, err
	}
	if err != nil {
		return nil, false, fmt.Errorf("workorder: record %s: %w", o.Type, err)
	}
	return o.Response, false, nil
}
