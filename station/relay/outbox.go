package relay

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/fault"
)

// ErrNotFound means no outbox row has the id.
var ErrNotFound = fault.New(fault.NotFound, "event_not_found", "outbox event not found")

// Outbox answers the ops questions about the tracking outbox. Ops act
// network-wide: these queries span every station.
type Outbox struct {
	db *pgxpool.Pool
}

// NewOutbox wraps the pool.
func NewOutbox(db *pgxpool.Pool) *Outbox { return &Outbox{db: db} }

// Stats is the outbox at a glance.
type Stats struct {
	Pending                 int64      `json:"pending"`
	OldestPendingAt         *time.Time `json:"oldest_pending_at,omitempty"`
	OldestPendingAgeSeconds float64    `json:"oldest_pending_age_seconds"`
	Dead                    int64      `json:"dead"`
}

// Stats counts pending and dead events and dates the oldest pending one.
func (o *Outbox) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := o.db.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM tracking_outbox WHERE status = 'pending'),
		(SELECT occurred_at FROM tracking_outbox WHERE status = 'pending' ORDER BY id LIMIT 1),
		(SELECT count(*) FROM tracking_outbox WHERE status = 'dead')`).Scan(&s.Pending, &s.OldestPendingAt, &s.Dead)
	if err != nil {
		return Stats{}, fmt.Errorf("relay: outbox stats: %w", err)
	}
	if s.OldestPendingAt != nil {
		at := s.OldestPendingAt.UTC()
		s.OldestPendingAt = &at
		s.OldestPendingAgeSeconds = max(0, time.Since(at).Seconds())
	}
	return s, nil
}

// Event is one outbox row as ops see it.
type Event struct {
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

func scanEvent(row pgx.CollectableRow) (Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.EventID, &e.TrackingNo, &e.StationID, &e.Type, &e.OccurredAt, &e.Status, &e.Attempts,
		&e.NextAttemptAt, &e.LastError, &e.DeliveredAt, &e.RedrivenBy, &e.RedrivenAt)
	e.OccurredAt, e.NextAttemptAt = e.OccurredAt.UTC(), e.NextAttemptAt.UTC()
	return e, err
}

// MaxPage bounds one page of dead events.
const MaxPage = 500

// Dead lists dead events with an id above afterID, oldest first, at most
// limit (1..MaxPage). Page on by passing the last id seen.
func (o *Outbox) Dead(ctx context.Context, afterID int64, limit int) ([]Event, error) {
	limit = min(max(limit, 1), MaxPage)
	rows, err := o.db.Query(ctx, `SELECT `+eventColumns+` FROM tracking_outbox
		WHERE status = 'dead' AND id > $1 ORDER BY id LIMIT $2`, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("relay: dead events: %w", err)
	}
	events, err := pgx.CollectRows(rows, scanEvent)
	if err != nil {
		return nil, fmt.Errorf("relay: dead events: %w", err)
	}
	return events, nil
}

// Retry re-drives a dead event: it is pending again with a fresh set of
// attempts, and the re-drive is stamped with who asked. Retrying an event
// that is not dead (already re-driven, delivered, still pending) changes
// nothing and reports redriven false, so a repeated request is harmless.
func (o *Outbox) Retry(ctx context.Context, id int64, by string) (Event, bool, error) {
	rows, err := o.db.Query(ctx, `UPDATE tracking_outbox
		SET status = 'pending', attempts = 0, next_attempt_at = now(), redriven_by = $2, redriven_at = now()
		WHERE id = $1 AND status = 'dead' RETURNING `+eventColumns, id, by)
	if err != nil {
		return Event{}, false, fmt.Errorf("relay: retry %d: %w", id, err)
	}
	e, err := pgx.CollectExactlyOneRow(rows, scanEvent)
	if err == nil {
		return e, true, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return Event{}, false, fmt.Errorf("relay: retry %d: %w", id, err)
	}
	rows, err = o.db.Query(ctx, `SELECT `+eventColumns+` FROM tracking_outbox WHERE id = $1`, id)
	if err != nil {
		return Event{}, false, fmt.Errorf("relay: retry %d: %w", id, err)
	}
	e, err = pgx.CollectExactlyOneRow(rows, scanEvent)
	if errors.Is(err, pgx.ErrNoRows) {
		return Event{}, false, fmt.Errorf("relay: event %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Event{}, false, fmt.Errorf("relay: retry %d: %w", id, err)
	}
	return e, false, nil
}
