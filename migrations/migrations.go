package migrations

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed sql/*.sql
var embedded embed.FS

// Files returns the embedded migration files, rooted at the directory that
// holds them.
func Files() fs.FS {
	sub, err := fs.Sub(embedded, "sql")
	if err != nil {
		panic(err) // the embed pattern above guarantees the directory exists
	}
	return sub
}

// EnsurePartitionsSQL creates the partitions of the history tables from today (UTC)
// to ahead ($1) days on that are missing; it is idempotent and safe to run
// from every instance at once (history_partitions serialises per table).
// Instances run it at start, so a station down longer than the days made
// ahead never writes before the partition job has run again.
const EnsurePartitionsSQL = `SELECT sum(history_partitions(t, d, d + $1::int))
	FROM unnest(ARRAY['work_orders', 'sort_results', 'tracking_outbox', 'parcel_state_history', 'belt_decisions']) AS t,
	     (SELECT (now() AT TIME ZONE 'UTC')::date) AS today (d)`

// Migrator applies and inspects the embedded migrations on one database.
type Migrator struct {
	db       *sql.DB
	provider *goose.Provider
}

// New builds a Migrator over a database/sql handle.
func New(db *sql.DB) (*Migrator, error) {
	p, err := goose.NewProvider(goose.DialectPostgres, db, Files())
	if err != nil {
		return nil, fmt.Errorf("migrations: new provider: %w", err)
	}
	return &Migrator{db: db, provider: p}, nil
}

// FromPool builds a Migrator that shares a pgx pool's configuration. The
// returned close function releases the database/sql handle goose needs.
func FromPool(pool *pgxpool.Pool) (*Migrator, func() error, error) {
	db := stdlib.OpenDBFromPool(pool)
	m, err := New(db)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	return m, db.Close, nil
}

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) ([]*goose.MigrationResult, error) {
	res, err := m.provider.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrations: up: %w", err)
	}
	return res, nil
}

// UpTo applies the pending migrations up to and including version.
func (m *Migrator) UpTo(ctx context.Context, version int64) ([]*goose.MigrationResult, error) {
	res, err := m.provider.UpTo(ctx, version)
	if err != nil {
		return res, fmt.Errorf("migrations: up to %d: %w", version, err)
	}
	return res, nil
}

// Down rolls back the most recent migration.
func (m *Migrator) Down(ctx context.Context) (*goose.MigrationResult, error) {
	res, err := m.provider.Down(ctx)
	if err != nil && !errors.Is(err, goose.ErrNoNextVersion) {
		return res, fmt.Errorf("migrations: down: %w", err)
	}
	return res, nil
}

// Reset rolls back every migration.
func (m *Migrator) Reset(ctx context.Context) error {
	if _, err := m.provider.DownTo(ctx, 0); err != nil {
		return fmt.Errorf("migrations: reset: %w", err)
	}
	return nil
}

// Status lists every known migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]*goose.MigrationStatus, error) {
	st, err := m.provider.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrations: status: %w", err)
	}
	return st, nil
}

// Current reports whether the database is at the newest embedded version;
// readiness uses it so an instance never serves an old schema.
func (m *Migrator) Current(ctx context.Context) (bool, error) {
	pending, err := m.provider.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("migrations: pending: %w", err)
	}
	return !pending, nil
}

// Version is the newest applied version.
func (m *Migrator) Version(ctx context.Context) (int64, error) {
	v, err := m.provider.GetDBVersion(ctx)
	if err != nil {
		return 0, fmt.Errorf("migrations: version: %w", err)
	}
	return v, nil
}
