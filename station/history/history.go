// Package history keeps the partitioned history tables (work_orders,
// sort_results, tracking_outbox, parcel_state_history; migration 00016):
// it creates their daily partitions ahead of time and drops the days past
// each table's retention, by detaching and dropping the partition instead
// of deleting rows. It runs as a singleton job behind a fenced lease: every
// change happens in a transaction whose first statement is the lease's
// guard.
package history

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations"
)

// Table is one partitioned table and how long its days are kept.
type Table struct {
	Name string
	// Retain: a day's partition is dropped once its whole range is older
	// than this. At least a day, so the day being written is never one.
	Retain time.Duration
	// Keep, when set, is a condition on the partition's rows: while any row
	// meets it the partition stays, whatever its age (the outbox's
	// undelivered events). It is checked after the partition is detached,
	// under the detach's exclusive lock, so no row can change between the
	// check and the drop.
	Keep string
}

// Guard is the lease check run first in every transaction.
type Guard func(context.Context, pgx.Tx) error

// Keeper maintains the tables' partitions.
type Keeper struct {
	db     *pgxpool.Pool
	tables []Table
	ahead  int
	// lockTimeout bounds the wait for a partition's lock: a detach queued
	// behind a long query would hold up every write behind it, so it gives
	// up and the next run tries again.
	lockTimeout time.Duration
}

// New returns a Keeper that creates ahead days of partitions beyond today.
func New(db *pgxpool.Pool, ahead int, tables ...Table) *Keeper {
	return &Keeper{db: db, tables: tables, ahead: max(ahead, 1), lockTimeout: 2 * time.Second}
}

// Report says what one run did.
type Report struct {
	Created int      // partitions created
	Dropped []string // partitions dropped
	Kept    []string // partitions past retention kept by their Keep condition
	Busy    []string // partitions past retention whose lock was not granted in time
}

// Ensure creates the missing partitions of today and the Keeper's days
// ahead (migrations.EnsurePartitionsSQL). Instances run it at start, so a
// station down longer than the days made ahead never writes before the
// partition job has run again.
func (k *Keeper) Ensure(ctx context.Context) error {
	if _, err := k.db.Exec(ctx, migrations.EnsurePartitionsSQL, k.ahead); err != nil {
		return fmt.Errorf("history: ensure partitions: %w", err)
	}
	return nil
}

// Run creates the missing partitions from today (UTC) to ahead days on,
// then drops every partition whose range ended more than its table's
// retention ago. A lost lease stops it with the guard's error.
func (k *Keeper) Run(ctx context.Context, guard Guard) (Report, error) {
	var r Report
	today := time.Now().UTC().Truncate(24 * time.Hour)
	for _, t := range k.tables {
		err := pgx.BeginFunc(ctx, k.db, func(tx pgx.Tx) error {
			if err := guard(ctx, tx); err != nil {
				return err
			}
			var n int
			err := tx.QueryRow(ctx, `SELECT history_partitions($1, $2::date, $3::date)`,
				t.Name, today, today.AddDate(0, 0, k.ahead)).Scan(&n)
			r.Created += n
			return err
		})
		if err != nil {
			return r, fmt.Errorf("history: partitions of %s: %w", t.Name, err)
		}
	}
	for _, t := range k.tables {
		if err := k.dropPast(ctx, guard, t, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// Partition is one partition of a table and the end of its range.
type Partition struct {
	Name string
	End  time.Time
}

// Partitions lists the partitions of table, oldest first.
func Partitions(ctx context.Context, db *pgxpool.Pool, table string) ([]Partition, error) {
	rows, err := db.Query(ctx, `
		SELECT c.relname, substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz
		  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		 WHERE i.inhparent = $1::regclass
		 ORDER BY 2`, table)
	if err != nil {
		return nil, fmt.Errorf("history: partitions of %s: %w", table, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Partition, error) {
		var p Partition
		err := row.Scan(&p.Name, &p.End)
		return p, err
	})
}

func (k *Keeper) dropPast(ctx context.Context, guard Guard, t Table, r *Report) error {
	if t.Retain < 24*time.Hour {
		return fmt.Errorf("history: retention of %s is %s, less than a day", t.Name, t.Retain)
	}
	parts, err := Partitions(ctx, k.db, t.Name)
	if err != nil {
		return err
	}
	cutoff := time.Now().Add(-t.Retain)
	for _, p := range parts {
		if p.End.After(cutoff) {
			break
		}
		dropped, err := k.drop(ctx, guard, t, p.Name)
		switch {
		case isLockTimeout(err):
			r.Busy = append(r.Busy, p.Name)
		case err != nil:
			return err
		case dropped:
			r.Dropped = append(r.Dropped, p.Name)
		default:
			r.Kept = append(r.Kept, p.Name)
		}
	}
	return nil
}

// drop detaches and drops one partition in one transaction, unless a row
// of it meets the table's Keep condition: then the transaction rolls back
// and the partition stays attached, as it was.
func (k *Keeper) drop(ctx context.Context, guard Guard, t Table, name string) (bool, error) {
	var dropped bool
	err := pgx.BeginFunc(ctx, k.db, func(tx pgx.Tx) error {
		if err := guard(ctx, tx); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", k.lockTimeout.Milliseconds())); err != nil {
			return err
		}
		ident := pgx.Identifier{name}.Sanitize()
		if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER TABLE %s DETACH PARTITION %s",
			pgx.Identifier{t.Name}.Sanitize(), ident)); err != nil {
			return err
		}
		if t.Keep != "" {
			var keep bool
			if err := tx.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s WHERE %s)", ident, t.Keep)).Scan(&keep); err != nil {
				return err
			}
			if keep {
				return errKeep
			}
		}
		if _, err := tx.Exec(ctx, "DROP TABLE "+ident); err != nil {
			return err
		}
		dropped = true
		return nil
	})
	if errors.Is(err, errKeep) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("history: drop %s: %w", name, err)
	}
	return dropped, nil
}

var errKeep = errors.New("partition kept")

func isLockTimeout(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "55P03"
}
