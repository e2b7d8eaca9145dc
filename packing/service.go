package packing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/workorder"
)

// BagIDs allocates network-wide bag ids (the container service). A repeated
// requestID returns the same id, so a retried open never wastes one.
type BagIDs interface {
	AllocateBagID(ctx context.Context, stationID, nextHop, requestID string) (string, error)
}

// Trips looks up a departure (the linehaul service).
type Trips interface {
	GetTrip(ctx context.Context, tripID string) (clients.Trip, error)
}

// Actor is the operator behind a write, at their station.
type Actor struct {
	StationID  string
	OperatorID string
}

// Receipt is the answer to a write: the value and the exact JSON body
// stored with its work order. A replay of the same scan id returns the same
// body (and the value decoded from it) with Replayed set.
type Receipt[T any] struct {
	Value    T
	Body     []byte
	Replayed bool
}

// Service is the packing domain over one PostgreSQL pool.
type Service struct {
	db     *pgxpool.Pool
	bagIDs BagIDs
	trips  Trips
	limits WeightLimits
	now    func() time.Time
}

// Option adjusts a Service.
type Option func(*Service)

// WithWeightLimits replaces DefaultWeightLimits.
func WithWeightLimits(l WeightLimits) Option { return func(s *Service) { s.limits = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// New builds the service. bagIDs and trips are the container and linehaul
// clients.
func New(db *pgxpool.Pool, bagIDs BagIDs, trips Trips, opts ...Option) *Service {
	s := &Service{db: db, bagIDs: bagIDs, trips: trips, limits: DefaultWeightLimits, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// WeightLimits are the bounds Seal enforces.
func (s *Service) WeightLimits() WeightLimits { return s.limits }

// change is one write: it runs inside the transaction with the work order's
// id and time, and returns the response value plus the work order to
// record (type, subject, events; the rest is filled in by write).
type change[T any] func(ctx context.Context, tx pgx.Tx, id uuid.UUID, now time.Time) (T, workorder.Order, error)

// write runs one idempotent write: replay if the scan id is known, else the
// change and its work order in one transaction. A concurrent request with
// the same scan id loses at the work order's unique key, rolls back and
// replays the winner's answer.
func write[T any](ctx context.Context, s *Service, act Actor, scanID string, hash []byte, fn change[T]) (Receipt[T], error) {
	if err := checkScanID(scanID); err != nil {
		return Receipt[T]{}, err
	}
	if r, ok, err := replay[T](ctx, s, act.StationID, scanID, hash); ok || err != nil {
		return r, err
	}
	r, err := transact(ctx, s, act, scanID, hash, fn)
	var refusal *RefusalError
	if errors.As(err, &refusal) {
		// A concurrent request with the same scan id may have committed
		// while this one waited for the bag's lock; it then sees the
		// winner's change (the parcel already bagged) as a refusal. The
		// client asked once: answer with the winner's response.
		if r, ok, rerr := replay[T](ctx, s, act.StationID, scanID, hash); ok || rerr != nil {
			return r, rerr
		}
		return r, err
	}
	if errors.Is(err, workorder.ErrDuplicateScan) {
		r, ok, rerr := replay[T](ctx, s, act.StationID, scanID, hash)
		if rerr != nil {
			return r, rerr
		}
		if !ok {
			return r, fmt.Errorf("packing: scan %s vanished after a duplicate: %w", scanID, err)
		}
		return r, nil
	}
	return r, err
}

func transact[T any](ctx context.Context, s *Service, act Actor, scanID string, hash []byte, fn change[T]) (Receipt[T], error) {
	tx, err := s.db.Begin(ctx)
	if err != nil {
		return Receipt[T]{}, fmt.Errorf("packing: begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	id := workorder.NewID()
	v, order, err := fn(ctx, tx, id, s.now())
	if err != nil {
		return Receipt[T]{}, err
	}
	body, err := json.Marshal(v)
	if err != nil {
		return Receipt[T]{}, fmt.Errorf("packing: encode %s response: %w", order.Type, err)
	}
	order.ID = id
	order.StationID = act.StationID
	order.Actor = workorder.Actor{Kind: workorder.ActorOperator, ID: act.OperatorID}
	order.ScanID = scanID
	order.RequestHash = hash
	order.Outcome = "ok"
	order.Response = body
	if err := workorder.Record(ctx, tx, order); err != nil {
		return Receipt[T]{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return Receipt[T]{}, fmt.Errorf("packing: commit %s: %w", order.Type, err)
	}
	return Receipt[T]{Value: v, Body: body}, nil
}

// replay answers a known scan id: ok is false when the scan id is new.
func replay[T any](ctx context.Context, s *Service, stationID, scanID string, hash []byte) (Receipt[T], bool, error) {
	body, err := workorder.Replay(ctx, s.db, stationID, scanID, hash)
	switch {
	case errors.Is(err, workorder.ErrNotFound):
		return Receipt[T]{}, false, nil
	case err != nil:
		return Receipt[T]{}, false, err
	}
	r := Receipt[T]{Body: body, Replayed: true}
	if err := json.Unmarshal(body, &r.Value); err != nil {
		return Receipt[T]{}, false, fmt.Errorf("packing: decode stored response of scan %s: %w", scanID, err)
	}
	return r, true, nil
}
