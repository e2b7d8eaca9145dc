package history_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/history"
	"github.com/expresshub/station/workorder"
)

func noGuard(context.Context, pgx.Tx) error { return nil }

// day is the UTC day n days from today.
func day(n int) time.Time { return time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, n) }

// event adds a tracking event written (created_at) in the middle of day n.
func event(t *testing.T, db *pgxpool.Pool, n int, tn, status string) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `INSERT INTO tracking_outbox
		(event_id, work_order_id, tracking_no, station_id, type, actor_id, occurred_at, status, created_at)
		VALUES (gen_random_uuid(), gen_random_uuid(), $1, 'SG-H01', 'sorted', 'op1', $2, $3, $2)`,
		tn, day(n).Add(12*time.Hour), status); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, db *pgxpool.Pool, table string) []string {
	t.Helper()
	parts, err := history.Partitions(context.Background(), db, table)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range parts {
		out = append(out, p.Name)
	}
	return out
}

func part(table string, n int) string { return table + "_p" + day(n).Format("20060102") }

// TestRetentionDropsPastDaysButKeepsADayWithUndeliveredEvents: a day past
// retention is detached and dropped, rows and all, unless the outbox still
// holds a pending or dead event of that day; that day goes once the event
// is delivered. The coming days are made ahead.
func TestRetentionDropsPastDaysButKeepsADayWithUndeliveredEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	if _, err := db.Exec(ctx, `SELECT history_partitions(t, $1::date, $2::date)
		FROM unnest(ARRAY['work_orders', 'tracking_outbox']) AS t`, day(-6), day(-1)); err != nil {
		t.Fatal(err)
	}
	event(t, db, -6, "dead-6", "dead")
	event(t, db, -6, "done-6", "delivered")
	event(t, db, -5, "done-5", "delivered")
	event(t, db, -4, "pending-4", "pending")
	event(t, db, -4, "done-4", "delivered")
	event(t, db, -2, "done-2", "delivered") // within retention
	if _, err := db.Exec(ctx, `INSERT INTO work_orders (id, station_id, type, actor_kind, actor_id, scan_id, request_hash, outcome, response, created_at)
		SELECT gen_random_uuid(), 'SG-H01', 'sort', 'operator', 'op1', 'scan-' || i, '\x00', 'ok', '\x00', $1::timestamptz + i * interval '1 second'
		  FROM generate_series(1, 1000) AS i`, day(-5)); err != nil {
		t.Fatal(err)
	}
	const retain = 72 * time.Hour
	k := history.New(db, 10,
		history.Table{Name: "work_orders", Retain: retain},
		history.Table{Name: "tracking_outbox", Retain: retain, Keep: workorder.OutboxKeep})
	rep, err := k.Run(ctx, noGuard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Created != 6 { // days 8, 9 and 10 ahead of both tables (dbtest made 7)
		t.Errorf("created %d partitions, want 6", rep.Created)
	}
	// Day -3 ends two days ago: within retention.
	wantDropped := []string{part("work_orders", -6), part("work_orders", -5), part("work_orders", -4),
		part("tracking_outbox", -5)}
	wantKept := []string{part("tracking_outbox", -6), part("tracking_outbox", -4)}
	if !slices.Equal(rep.Dropped, wantDropped) || !slices.Equal(rep.Kept, wantKept) {
		t.Fatalf("dropped %v kept %v; want dropped %v kept %v", rep.Dropped, rep.Kept, wantDropped, wantKept)
	}
	var left []string
	rows, _ := db.Query(ctx, `SELECT tracking_no FROM tracking_outbox ORDER BY tracking_no`)
	left, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dead-6", "done-2", "done-4", "done-6", "pending-4"}; !slices.Equal(left, want) {
		t.Fatalf("events left %v, want %v", left, want)
	}
	var wos int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM work_orders`).Scan(&wos); err != nil || wos != 0 {
		t.Fatalf("work orders left %d, %v", wos, err)
	}
	if got := names(t, db, "work_orders"); got[0] != part("work_orders", -3) || got[len(got)-1] != part("work_orders", 10) {
		t.Fatalf("work_orders partitions %v", got)
	}

	// Delivered at last (the dead one after a re-drive): their days go.
	if _, err := db.Exec(ctx, `UPDATE tracking_outbox SET status = 'delivered'`); err != nil {
		t.Fatal(err)
	}
	rep, err = k.Run(ctx, noGuard)
	if err != nil || !slices.Equal(rep.Dropped, wantKept) || len(rep.Kept) != 0 || rep.Created != 0 {
		t.Fatalf("second run: %+v, %v; want %v dropped", rep, err, wantKept)
	}
}

func TestRetentionStopsAtARefusingGuard(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	if _, err := db.Exec(ctx, `SELECT history_partitions('sort_results', $1::date, $1::date)`, day(-9)); err != nil {
		t.Fatal(err)
	}
	lost := errors.New("lease lost")
	k := history.New(db, 7, history.Table{Name: "sort_results", Retain: 72 * time.Hour})
	if _, err := k.Run(ctx, func(context.Context, pgx.Tx) error { return lost }); !errors.Is(err, lost) {
		t.Fatalf("run: %v, want the guard's error", err)
	}
	if got := names(t, db, "sort_results"); got[0] != part("sort_results", -9) {
		t.Fatalf("partitions %v", got)
	}
}

// TestADetachWaitingForALockGivesUp: a partition whose lock is held (a
// long query) is left for the next run instead of queueing every write
// behind the detach.
func TestADetachWaitingForALockGivesUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	if _, err := db.Exec(ctx, `SELECT history_partitions('parcel_state_history', $1::date, $1::date)`, day(-9)); err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, `SELECT count(*) FROM parcel_state_history`); err != nil {
		t.Fatal(err)
	}
	k := history.New(db, 7, history.Table{Name: "parcel_state_history", Retain: 72 * time.Hour})
	rep, err := k.Run(ctx, noGuard)
	if err != nil || len(rep.Busy) != 1 || !strings.HasSuffix(rep.Busy[0], day(-9).Format("20060102")) || len(rep.Dropped) != 0 {
		t.Fatalf("run under a lock: %+v, %v", rep, err)
	}
	_ = tx.Rollback(ctx)
	if rep, err = k.Run(ctx, noGuard); err != nil || len(rep.Dropped) != 1 {
		t.Fatalf("run after: %+v, %v", rep, err)
	}
}
