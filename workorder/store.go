package workorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/expresshub/station/fault"
)

// Receipt is the answer to a recorded operation: the value, and the exact
// JSON body stored with its work order. A replay of the same scan id
// returns the same body, and the value decoded from it, with Replayed set.
type Receipt[T any] struct {
	Value    T
	Body     []byte
	Replayed bool
}

// Batcher is what Commit needs: a pool (or a connection outside a
// transaction).
type Batcher interface {
	Querier
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Commit records o, whose Response is already the answer's JSON, with the
// rows write queues, for operations that need nothing read first (a sort,
// a receive): the per-parcel locks, the work order, its events, the
// operation's own rows and the parcels' moves go to PostgreSQL as one batch
// and run as one implicit transaction (one round trip, one commit). Any
// failure rolls all of it back.
//
// A scan id already recorded fails the insert of its scan key; a concurrent duplicate waits there for the first to commit. Either
// way nothing is written and the stored answer is returned with Replayed
// set (ErrScanIDReused when its request differed). A move that the state
// matrix refuses returns its refusal (or ErrRepeat) and writes nothing.
func Commit[T any](ctx context.Context, db Batcher, o Order, write func(b *pgx.Batch)) (Receipt[T], error) {
	batch := &pgx.Batch{}
	if err := queueRecord(batch, o, traceParent(ctx)); err != nil {
		return Receipt[T]{}, err
	}
	if write != nil {
		write(batch)
	}
	err := db.SendBatch(ctx, batch).Close()
	if isScanTaken(err) {
		return replay[T](ctx, db, o.StationID, o.ScanID, o.RequestHash)
	}
	if refusal := asRefusal(err, o); refusal != nil {
		return Receipt[T]{}, refusal
	}
	if err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: record %s: %w", o.Type, err)
	}
	var v T
	if err := json.Unmarshal(o.Response, &v); err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: %s response: %w", o.Type, err)
	}
	return Receipt[T]{Value: v, Body: o.Response}, nil
}

// Request is what identifies one write: the station and the client's scan
// id, the hash of what it asks, and who asks.
type Request struct {
	StationID string
	ScanID    string
	Hash      []byte
	Actor     Actor
	Type      string    // the work order's type
	Now       time.Time // the operation's time; zero: now
}

// Tx is the transaction an operation runs in, with the id and time of its
// work order.
type Tx struct {
	pgx.Tx
	ID        uuid.UUID
	Now       time.Time
	StationID string
}

// Change is an operation run by Transact: it reads and writes its own rows
// in tx and returns the answer and the work order to record with it (type,
// tracking number, subject, events, moves, outcome; Transact fills in the
// rest).
type Change[T any] func(ctx context.Context, tx *Tx) (T, Order, error)

// Transact runs one idempotent operation that needs to read before it
// writes (bags, handovers, the sorter's confirms): in one transaction, the
// scan key is locked and looked up first, so a replay returns the stored
// answer and a concurrent duplicate waits for the first request and then
// replays its answer; otherwise fn runs, and its work order, events and
// moves are recorded in one more round trip before the commit.
func Transact[T any](ctx context.Context, db TxBeginner, req Request, fn Change[T]) (r Receipt[T], err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: begin %s: %w", req.Type, err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	batch := &pgx.Batch{}
	batch.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 13))`, req.StationID+"/"+req.ScanID)
	var stored Stored
	found := true
	batch.Queue(lookupSQL, req.StationID, req.ScanID).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&stored.ID, &stored.RequestHash, &stored.Outcome, &stored.Response, &stored.CreatedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
			return nil
		}
		return err
	})
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: scan key %s: %w", req.ScanID, err)
	}
	if found {
		_ = tx.Rollback(ctx)
		return decodeStored[T](stored, req.StationID, req.ScanID, req.Hash)
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	wtx := &Tx{Tx: tx, ID: NewID(), Now: now, StationID: req.StationID}
	v, o, err := fn(ctx, wtx)
	if rep, ok := errors.AsType[*Repeat[T]](err); ok {
		body, err := json.Marshal(rep.Value)
		if err != nil {
			return Receipt[T]{}, fmt.Errorf("workorder: encode %s answer: %w", req.Type, err)
		}
		_ = tx.Rollback(ctx)
		return Receipt[T]{Value: rep.Value, Body: body}, nil
	}
	if err != nil {
		return Receipt[T]{}, err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: encode %s answer: %w", req.Type, err)
	}
	o.ID, o.StationID, o.Actor, o.ScanID, o.RequestHash, o.Response = wtx.ID, req.StationID, req.Actor, req.ScanID, req.Hash, body
	if o.Type == "" {
		o.Type = req.Type
	}
	if o.Outcome == "" {
		o.Outcome = "ok"
	}
	if o.At.IsZero() {
		o.At = wtx.Now
	}
	batch = &pgx.Batch{}
	if err := queueRecord(batch, o, traceParent(ctx)); err != nil {
		return Receipt[T]{}, err
	}
	err = tx.SendBatch(ctx, batch).Close()
	if refusal := asRefusal(err, o); refusal != nil {
		return Receipt[T]{}, refusal
	}
	if err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: record %s: %w", o.Type, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: commit %s: %w", o.Type, err)
	}
	return Receipt[T]{Value: v, Body: body}, nil
}

// Repeat is what a Change returns when what it was asked already happened
// (a parcel scanned into the bag it is in): nothing is recorded, and
// Transact answers Value.
type Repeat[T any] struct{ Value T }

func (r *Repeat[T]) Error() string { return "workorder: a repeat of what already happened" }

// TxBeginner is a pool.
type TxBeginner interface {
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Parcel locks the parcel for the rest of the transaction (the same lock
// its events and moves take) and reads its state at the transaction's
// station: the state an operation decides on cannot change under it.
func (tx *Tx) Parcel(ctx context.Context, trackingNo string) (Parcel, error) {
	if _, err := tx.Exec(ctx, lockParcelsSQL, []string{trackingNo}); err != nil {
		return Parcel{}, fmt.Errorf("workorder: lock parcel %s: %w", trackingNo, err)
	}
	return ParcelState(ctx, tx, tx.StationID, trackingNo)
}

// ParcelsInBag are the states of the parcels a bag of the transaction's
// station holds, locked like Parcel.
func (tx *Tx) ParcelsInBag(ctx context.Context, bagIDs ...string) ([]Parcel, error) {
	rows, err := tx.Query(ctx, `SELECT tracking_no FROM parcel_states WHERE station_id = $1 AND bag_id = ANY($2)
		AND state IN ('bagged', 'sealed') ORDER BY tracking_no`, tx.StationID, bagIDs)
	if err != nil {
		return nil, fmt.Errorf("workorder: parcels in bags: %w", err)
	}
	tns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("workorder: parcels in bags: %w", err)
	}
	if len(tns) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, lockParcelsSQL, tns); err != nil {
		return nil, fmt.Errorf("workorder: lock parcels: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT `+parcelColumns+` FROM parcel_states WHERE station_id = $1 AND tracking_no = ANY($2)
		ORDER BY tracking_no FOR UPDATE`, tx.StationID, tns)
	if err != nil {
		return nil, fmt.Errorf("workorder: parcels in bags: %w", err)
	}
	return pgx.CollectRows(rows, scanParcel)
}

// ParcelsAtChute are the parcels of the transaction's station that were
// sorted into chute and are in no bag yet, oldest first, locked like Parcel.
func (tx *Tx) ParcelsAtChute(ctx context.Context, chute int) ([]Parcel, error) {
	rows, err := tx.Query(ctx, `SELECT tracking_no FROM parcel_states WHERE station_id = $1 AND chute = $2 AND state = 'sorted'
		ORDER BY updated_at, tracking_no LIMIT 10000`, tx.StationID, chute)
	if err != nil {
		return nil, fmt.Errorf("workorder: parcels at chute %d: %w", chute, err)
	}
	tns, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(tns) == 0 {
		return nil, err
	}
	if _, err := tx.Exec(ctx, lockParcelsSQL, tns); err != nil {
		return nil, fmt.Errorf("workorder: lock parcels: %w", err)
	}
	rows, err = tx.Query(ctx, `SELECT `+parcelColumns+` FROM parcel_states WHERE station_id = $1 AND tracking_no = ANY($2)
		AND chute = $3 AND state = 'sorted' ORDER BY updated_at, tracking_no FOR UPDATE`, tx.StationID, tns, chute)
	if err != nil {
		return nil, fmt.Errorf("workorder: parcels at chute %d: %w", chute, err)
	}
	return pgx.CollectRows(rows, scanParcel)
}

// Unbagged are a station's parcels sorted into a chute and in no bag (at
// most limit), and how many there are per chute.
func Unbagged(ctx context.Context, q Rows, stationID string, limit int) ([]Parcel, error) {
	rows, err := q.Query(ctx, `SELECT `+parcelColumns+` FROM parcel_states WHERE station_id = $1 AND state = 'sorted'
		AND chute IS NOT NULL ORDER BY chute, updated_at LIMIT $2`, stationID, limit)
	if err != nil {
		return nil, fmt.Errorf("workorder: unbagged parcels: %w", err)
	}
	return pgx.CollectRows(rows, scanParcel)
}

// PutAside are a station's parcels put aside as exceptions and not dealt
// with since (at most limit), oldest first.
func PutAside(ctx context.Context, q Rows, stationID string, limit int) ([]Parcel, error) {
	rows, err := q.Query(ctx, `SELECT `+parcelColumns+` FROM parcel_states WHERE station_id = $1 AND state = 'exception'
		ORDER BY updated_at LIMIT $2`, stationID, limit)
	if err != nil {
		return nil, fmt.Errorf("workorder: parcels put aside: %w", err)
	}
	return pgx.CollectRows(rows, scanParcel)
}

const parcelColumns = `station_id, tracking_no, visit, state, coalesce(next_hop, ''), coalesce(chute, 0), coalesce(bag_id, ''),
	coalesce(handover_id, ''), coalesce(exception_code, ''), weight_g, work_order_id, visit_started_at, visit_work_order_id, updated_at`

func scanParcel(row pgx.CollectableRow) (Parcel, error) {
	var p Parcel
	var state string
	err := row.Scan(&p.StationID, &p.TrackingNo, &p.Visit, &state, &p.NextHop, &p.Chute, &p.BagID, &p.HandoverID,
		&p.ExceptionCode, &p.WeightG, &p.WorkOrderID, &p.VisitStarted, &p.VisitOrderID, &p.UpdatedAt)
	p.State = State(state)
	p.VisitStarted, p.UpdatedAt = p.VisitStarted.UTC(), p.UpdatedAt.UTC()
	return p, err
}

// Rows is a pool or a transaction.
type Rows interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// ParcelState is a parcel's state at a station: State "" when it is not
// known there.
func ParcelState(ctx context.Context, q Rows, stationID, trackingNo string) (Parcel, error) {
	rows, err := q.Query(ctx, `SELECT `+parcelColumns+` FROM parcel_states WHERE station_id = $1 AND tracking_no = $2`,
		stationID, trackingNo)
	if err != nil {
		return Parcel{}, fmt.Errorf("workorder: parcel %s: %w", trackingNo, err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanParcel)
	if errors.Is(err, pgx.ErrNoRows) {
		return Parcel{StationID: stationID, TrackingNo: trackingNo}, nil
	}
	if err != nil {
		return Parcel{}, fmt.Errorf("workorder: parcel %s: %w", trackingNo, err)
	}
	return p, nil
}

// Entry is one recorded operation on a parcel, as its history shows it.
type Entry struct {
	ID        uuid.UUID       `json:"work_order_id"`
	Type      string          `json:"type"`
	Outcome   string          `json:"outcome"`
	ActorKind ActorKind       `json:"actor_kind"`
	ActorID   string          `json:"actor_id"`
	SubjectID string          `json:"subject_id,omitempty"`
	Response  json.RawMessage `json:"response"`
	At        time.Time       `json:"at"`
}

// maxHistory bounds a parcel's history answer; a parcel sees a handful of
// operations per visit.
const maxHistory = 500

// historySQL reads a parcel's work orders at a station through the
// tracking number indexes of work_orders and tracking_outbox, and each
// work order by the primary key of its partition (an event's created_at is
// its work order's); see TestParcelLookupPlansUseIndexes.
const historySQL = `
		SELECT w.id, w.type, w.outcome, w.actor_kind, w.actor_id, coalesce(w.subject_id, ''), w.response, w.created_at
		  FROM work_orders w
		  JOIN (SELECT id, created_at FROM work_orders WHERE tracking_no = $2 AND station_id = $1
		        UNION SELECT work_order_id, created_at FROM tracking_outbox WHERE tracking_no = $2 AND station_id = $1) x
		    ON w.id = x.id AND w.created_at = x.created_at -- an event's created_at is its work order's: one partition
		 ORDER BY w.created_at, w.id LIMIT $3`

// History is the parcel's state at a station and the work orders naming it
// there, oldest first. Operations on a bag or handover as a whole (a seal,
// a departure) name the parcel through their events.
func History(ctx context.Context, q Rows, stationID, trackingNo string) (Parcel, []Entry, error) {
	p, err := ParcelState(ctx, q, stationID, trackingNo)
	if err != nil {
		return Parcel{}, nil, err
	}
	rows, err := q.Query(ctx, historySQL, stationID, trackingNo, maxHistory)
	if err != nil {
		return Parcel{}, nil, fmt.Errorf("workorder: history of %s: %w", trackingNo, err)
	}
	entries, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var e Entry
		var kind string
		err := row.Scan(&e.ID, &e.Type, &e.Outcome, &kind, &e.ActorID, &e.SubjectID, &e.Response, &e.At)
		e.ActorKind, e.At = ActorKind(kind), e.At.UTC()
		return e, err
	})
	if err != nil {
		return Parcel{}, nil, fmt.Errorf("workorder: history of %s: %w", trackingNo, err)
	}
	return p, entries, nil
}

func replay[T any](ctx context.Context, q Querier, stationID, scanID string, hash []byte) (Receipt[T], error) {
	s, err := Lookup(ctx, q, stationID, scanID)
	if err != nil {
		return Receipt[T]{}, err
	}
	return decodeStored[T](s, stationID, scanID, hash)
}

func decodeStored[T any](s Stored, stationID, scanID string, hash []byte) (Receipt[T], error) {
	if string(s.RequestHash) != string(hash) {
		return Receipt[T]{}, fmt.Errorf("workorder: scan %s at %s: %w", scanID, stationID, ErrScanIDReused)
	}
	r := Receipt[T]{Body: s.Response, Replayed: true}
	if err := json.Unmarshal(s.Response, &r.Value); err != nil {
		return Receipt[T]{}, fmt.Errorf("workorder: stored answer of scan %s: %w", scanID, err)
	}
	return r, nil
}

// scanKeyConstraint is the primary key of scan_keys, the idempotency keys
// (migration 00016): unique across every partition of work_orders.
const scanKeyConstraint = "scan_keys_pkey"

func isScanTaken(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "23505" && pg.ConstraintName == scanKeyConstraint
}

// refusalState is SQLSTATE of parcel_step's refusal.
const refusalState = "SP409"

// asRefusal turns parcel_step's refusal back into the matrix's error, with
// the parcel's facts from the state it was refused in.
func asRefusal(err error, o Order) error {
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || pg.Code != refusalState {
		return nil
	}
	var row struct {
		StationID     string `json:"station_id"`
		TrackingNo    string `json:"tracking_no"`
		Visit         int    `json:"visit"`
		State         string `json:"state"`
		NextHop       string `json:"next_hop"`
		Chute         int    `json:"chute"`
		BagID         string `json:"bag_id"`
		HandoverID    string `json:"handover_id"`
		ExceptionCode string `json:"exception_code"`
		WeightG       int    `json:"weight_g"`
		WorkOrderID   string `json:"work_order_id"`
		VisitStarted  string `json:"visit_started_at"`
		VisitOrderID  string `json:"visit_work_order_id"`
	}
	_ = json.Unmarshal([]byte(pg.Detail), &row)
	p := Parcel{StationID: o.StationID, TrackingNo: row.TrackingNo, Visit: row.Visit, State: State(row.State),
		NextHop: row.NextHop, Chute: row.Chute, BagID: row.BagID, HandoverID: row.HandoverID, ExceptionCode: row.ExceptionCode, WeightG: row.WeightG}
	p.WorkOrderID, _ = uuid.Parse(row.WorkOrderID)
	p.VisitOrderID, _ = uuid.Parse(row.VisitOrderID)
	p.VisitStarted, _ = time.Parse(time.RFC3339Nano, row.VisitStarted)
	p.VisitStarted = p.VisitStarted.UTC()
	for _, m := range o.Moves {
		if m.TrackingNo == p.TrackingNo || p.TrackingNo == "" {
			if p.TrackingNo == "" {
				p.TrackingNo = m.TrackingNo
			}
			if e := Check(m.Op, p); e != nil {
				return &StateError{Err: e, Parcel: p}
			}
		}
	}
	// The database refused with a rule the matrix no longer has: a bug,
	// but still a refusal of that code.
	return &StateError{Err: fault.New(fault.Conflict, pg.Message, "the parcel's state does not allow this"), Parcel: p}
}

// StateError is a refusal (or ErrRepeat) of the state matrix with the
// parcel's state it was refused in; errors.Is matches the matrix's error.
type StateError struct {
	Err    error
	Parcel Parcel
}

func (e *StateError) Error() string { return e.Err.Error() }
func (e *StateError) Unwrap() error { return e.Err }

// Find answers a scan id that is already recorded, for operations that
// must not repeat a side effect outside the database before Transact (a
// bag id asked of the container service): ok is false when the scan id is
// new. Transact still decides; Find only saves the side effect.
func Find[T any](ctx context.Context, q Querier, stationID, scanID string, hash []byte) (r Receipt[T], ok bool, err error) {
	r, err = replay[T](ctx, q, stationID, scanID, hash)
	if errors.Is(err, ErrNotFound) {
		return Receipt[T]{}, false, nil
	}
	return r, err == nil, err
}
