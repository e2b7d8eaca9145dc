package packing

import (
	"context"
	"time"

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
// stored with its work order (workorder.Receipt).
type Receipt[T any] = workorder.Receipt[T]

// Service is the packing domain over one PostgreSQL pool.
type Service struct {
	db     *pgxpool.Pool
	bagIDs BagIDs
	trips  Trips
	limits WeightLimits
	// bagLimits are the default limits of a bag under a chute.
	bagLimits BagLimits
	now       func() time.Time
}

// Option adjusts a Service.
type Option func(*Service)

// WithWeightLimits replaces DefaultWeightLimits.
func WithWeightLimits(l WeightLimits) Option { return func(s *Service) { s.limits = l } }

// WithBagLimits replaces DefaultBagLimits, the limits of a bag under a
// chute at stations without their own.
func WithBagLimits(l BagLimits) Option { return func(s *Service) { s.bagLimits = l } }

// WithClock replaces time.Now (tests).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// New builds the service. bagIDs and trips are the container and linehaul
// clients.
func New(db *pgxpool.Pool, bagIDs BagIDs, trips Trips, opts ...Option) *Service {
	s := &Service{db: db, bagIDs: bagIDs, trips: trips, limits: DefaultWeightLimits, bagLimits: DefaultBagLimits, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// WeightLimits are the bounds Seal enforces.
func (s *Service) WeightLimits() WeightLimits { return s.limits }

// change is one write, run by workorder.Transact inside the transaction
// of its work order: it returns the response value plus the work order to
// record (type, subject, events, moves).
type change[T any] = workorder.Change[T]

// write runs one idempotent write through the work-order door: a replay
// answers the stored response, a concurrent duplicate waits for the first
// and replays it, and otherwise the change and its work order commit
// together.
func write[T any](ctx context.Context, s *Service, act Actor, scanID string, hash []byte, fn change[T]) (Receipt[T], error) {
	if err := checkScanID(scanID); err != nil {
		return Receipt[T]{}, err
	}
	return workorder.Transact(ctx, s.db, workorder.Request{StationID: act.StationID, ScanID: scanID, Hash: hash, Now: s.now(),
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: act.OperatorID}}, fn)
}

// replay answers a known scan id before a side effect outside the
// database: ok is false when the scan id is new.
func replay[T any](ctx context.Context, s *Service, stationID, scanID string, hash []byte) (Receipt[T], bool, error) {
	return workorder.Find[T](ctx, s.db, stationID, scanID, hash)
}
