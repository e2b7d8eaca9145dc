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

	"github.com/expresshub/station/fault"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// Errors of the door.
var (
	// ErrScanIDReused means the scan id was already used for a different
	// request at this station.
	ErrScanIDReused = fault.New(fault.Conflict, "scan_id_reused", "scan id reused for a different request")
	// ErrNotFound means no work order matches.
	ErrNotFound = fault.New(fault.NotFound, "not_found", "work order not found")
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
	// At is when the operation happened, for the parcels' state; zero: now.
	At time.Time
	// Also are operations that happened because of this one, recorded in
	// the same transaction with their own work orders (a parcel the sorter
	// confirmed into a chute goes into the chute's bag). Their scan ids
	// derive from this one's, so a replay of this one replays them too.
	Also []Order
	// Moves are the parcels' state changes, written with the work order
	// after the state matrix allowed them (see Check).
	Moves []Move
}

// Move is one parcel's state change, recorded with a work order. To says
// the new state and the fields that describe it (a sorted parcel's next hop
// and chute, a bagged one's bag); with To empty the move only checks the
// matrix.
type Move struct {
	Op            Op
	TrackingNo    string
	To            State
	NextHop       string
	Chute         int
	BagID         string
	HandoverID    string
	ExceptionCode string
	WeightG       int // from the waybill; 0 keeps the weight already known
}

// Event is one tracking event for the order center.
type Event struct {
	TrackingNo string
	Type       EventType
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
// must stay a read of the scan key, then of the one partition of work_orders
// that key names, at any table size; see TestLookupPlanUsesScanKey.
const lookupSQL = `SELECT w.id, w.request_hash, w.outcome, w.response, w.created_at
	FROM scan_keys k JOIN work_orders w ON w.id = k.work_order_id AND w.created_at = k.created_at
	WHERE k.station_id = $1 AND k.scan_id = $2`

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

// queueRecord queues the per-parcel locks, the work order with its events,
// and the parcels' moves on batch. A scan id already taken fails the work
// order's scan key (scan_keys_pkey), and a move the state
// matrix refuses raises SP409 (see parcel_step); either aborts everything
// sent in the same transaction. traceparent (nil: not traced) is stored
// with the events, for the relay to continue the request's trace.
func queueRecord(batch *pgx.Batch, o Order, traceparent *string) error {
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
		if e.Type.IsZero() {
			return fmt.Errorf("workorder: %s event of %s has no type", o.Type, e.TrackingNo)
		}
		payload, err := json.Marshal(orEmpty(e.Payload))
		if err != nil {
			return fmt.Errorf("workorder: event payload: %w", err)
		}
		at := e.OccurredAt
		if at.IsZero() {
			at = time.Now()
		}
		eventIDs[i], parcels[i], types[i], times[i], payloads[i] = NewID(), e.TrackingNo, e.Type.String(), at, string(payload)
	}
	if locks := parcelKeys(o.Events, o.Moves); len(locks) > 0 {
		batch.Queue(lockParcelsSQL, locks)
	}
	// The scan key goes first: a taken one fails the statement before
	// anything else is written, and a concurrent duplicate waits on it for
	// the first request to commit. The work order and its events take the
	// key's time, which names their partitions.
	batch.Queue(`WITH k AS (
		  INSERT INTO scan_keys (station_id, scan_id, work_order_id) VALUES ($2, $8, $1)
		  RETURNING created_at
		), wo AS (
		  INSERT INTO work_orders
		    (id, station_id, type, tracking_no, subject_id, actor_kind, actor_id, scan_id, request_hash, outcome, response, created_at)
		  SELECT $1, $2, $3::text, $4::text, $5::text, $6::text, $7::text, $8, $9::bytea, $10::text, $11::bytea, k.created_at FROM k
		  RETURNING id, created_at
		)
		INSERT INTO tracking_outbox (event_id, work_order_id, tracking_no, station_id, type, actor_kind, actor_id, occurred_at, payload,
		                             traceparent, created_at)
		SELECT e.event_id, wo.id, e.tracking_no, $2, e.type, $6, $7, e.occurred_at, e.payload::jsonb, $17::text, wo.created_at
		  FROM wo CROSS JOIN unnest($12::uuid[], $13::text[], $14::text[], $15::timestamptz[], $16::text[])
		       AS e (event_id, tracking_no, type, occurred_at, payload)`,
		o.ID, o.StationID, o.Type, trackingNo, subjectID, string(o.Actor.Kind), o.Actor.ID,
		o.ScanID, o.RequestHash, o.Outcome, o.Response, eventIDs, parcels, types, times, payloads, traceparent)
	queueMoves(batch, o)
	for _, also := range o.Also {
		if also.At.IsZero() {
			also.At = o.At
		}
		if err := queueRecord(batch, also, traceparent); err != nil {
			return err
		}
	}
	return nil
}

// lockParcelsSQL serialises everything that touches one parcel: its events
// (outbox ids follow commit order per parcel, which the relay's ordering
// relies on) and its state. Keys are taken in one global order so two
// transactions never wait on each other in a cycle.
const lockParcelsSQL = `SELECT pg_advisory_xact_lock(hashtextextended(k, 7)) FROM unnest($1::text[]) AS k ORDER BY k`

// queueMoves queues the parcels' moves: each checked against the state
// matrix and written by parcel_step, with the refusals of its operation.
func queueMoves(batch *pgx.Batch, o Order) {
	if len(o.Moves) == 0 {
		return
	}
	at := o.At
	if at.IsZero() {
		at = time.Now()
	}
	for _, m := range o.Moves {
		var refuseStates, refuseCodes []string
		for st, v := range matrix[m.Op] {
			refuseStates, refuseCodes = append(refuseStates, string(st)), append(refuseCodes, v.Code)
		}
		var to, hop, bag, handover, exc *string
		var chute *int
		if m.To != StateNone {
			s := string(m.To)
			to = &s
		}
		hop, bag, handover, exc = nullable(m.NextHop), nullable(m.BagID), nullable(m.HandoverID), nullable(m.ExceptionCode)
		if m.Chute != 0 {
			chute = &m.Chute
		}
		batch.Queue(`SELECT parcel_step($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
			o.StationID, m.TrackingNo, o.ID, string(m.Op), to, hop, chute, bag, handover, exc, m.WeightG, refuseStates, refuseCodes, at)
	}
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// parcelKeys are the distinct parcels of events in one global order, so two
// transactions never wait on each other's advisory locks in a cycle.
func parcelKeys(events []Event, moves []Move) []string {
	seen := make(map[string]struct{}, len(events))
	keys := make([]string, 0, len(events))
	add := func(tn string) {
		if _, ok := seen[tn]; !ok {
			seen[tn] = struct{}{}
			keys = append(keys, tn)
		}
	}
	for _, e := range events {
		add(e.TrackingNo)
	}
	for _, m := range moves {
		add(m.TrackingNo)
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
