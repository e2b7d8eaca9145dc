package history_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/expresshub/station/migrations"
	"github.com/expresshub/station/migrations/dbtest"
)

// historyRowsEnv overrides how many work orders of history
// BenchmarkRecordingHistory builds (default 20 million, 200,000 with -short).
const historyRowsEnv = "STATION_BENCH_HISTORY_ROWS"

// historyRows is the size of the history the benchmark records against.
func historyRows(b *testing.B) int {
	b.Helper()
	if v := os.Getenv(historyRowsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("%s=%q: want a positive number of rows", historyRowsEnv, v)
		}
		return n
	}
	return benchCount(20_000_000, 200_000)
}

// historyTables are the partitioned history tables and their partition
// keys; the builder fills each day of all four.
var historyTables = []struct{ name, key string }{
	{"work_orders", "created_at"},
	{"sort_results", "recorded_at"},
	{"tracking_outbox", "created_at"},
	{"parcel_state_history", "recorded_at"},
}

// keptHistoryDB returns a pool on a database holding rows work orders of
// history. A full-size history takes minutes to build, so it is built once
// into a database named after its size (station_bench_history_20m) and
// kept: a later run reuses it when its marker row says the build finished
// with the same number of rows and the same migrations, and builds it again
// otherwise. The rows earlier runs recorded (everything from the build's day
// on) are removed first, so each run starts from the same history. It
// returns how long the build took (the earlier run's, when reused).
func keptHistoryDB(b *testing.B, rows int) (*pgxpool.Pool, time.Duration) {
	b.Helper()
	ctx := context.Background()
	name := "station_bench_history_" + rowsLabel(rows)
	dsn := databaseURL(b, name)
	if db, took, ok := reuseHistory(b, dsn, rows); ok {
		return db, took
	}
	admin, err := pgx.Connect(ctx, dbtest.ServerURL())
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close(ctx)
	ident := pgx.Identifier{name}.Sanitize()
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
		b.Fatal(err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		b.Fatal(err)
	}
	version := migrate(b, dsn)
	db := dbtest.PoolFor(b, dsn)
	start := time.Now()
	buildHistory(b, db, rows)
	took := time.Since(start)
	mustExec(b, db, `CREATE TABLE bench_history_build (rows bigint NOT NULL, version bigint NOT NULL, migrations text NOT NULL,
		built_before timestamptz NOT NULL, build_seconds double precision NOT NULL)`)
	mustExec(b, db, `INSERT INTO bench_history_build VALUES ($1, $2, $3, $4, $5)`,
		rows, version, migrationsHash(b, version), day(0), took.Seconds())
	b.Logf("built %s: %d work orders of history in %v", name, rows, took.Round(time.Second))
	return db, took
}

// reuseHistory opens the kept database if its build finished with the same
// number of rows and the migrations it was built with are unchanged, brings
// it up to the current migrations (newer ones are applied, as production
// would), and removes what earlier runs recorded into it.
func reuseHistory(b *testing.B, dsn string, rows int) (*pgxpool.Pool, time.Duration, bool) {
	b.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "3D000" { // invalid_catalog_name: not built yet
		return nil, 0, false
	}
	if err != nil {
		b.Fatal(err)
	}
	var builtRows int
	var version int64
	var builtHash string
	var before time.Time
	var took float64
	err = conn.QueryRow(ctx, `SELECT rows, version, migrations, built_before, build_seconds FROM bench_history_build`).
		Scan(&builtRows, &version, &builtHash, &before, &took)
	conn.Close(ctx)
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" || errors.Is(err, pgx.ErrNoRows) { // no marker: the build did not finish
		return nil, 0, false
	}
	if err != nil {
		b.Fatal(err)
	}
	if builtRows != rows || builtHash != migrationsHash(b, version) {
		b.Logf("kept history has %d rows (want %d) or migrations up to %d changed since its build: building it again",
			builtRows, rows, version)
		return nil, 0, false
	}
	if now := migrate(b, dsn); now != version {
		b.Logf("kept history migrated from version %d to %d", version, now)
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		_, err = c.Exec(ctx, `UPDATE bench_history_build SET version = $1, migrations = $2`, now, migrationsHash(b, now))
		c.Close(ctx)
		if err != nil {
			b.Fatal(err)
		}
	}
	db := dbtest.PoolFor(b, dsn)
	mustExec(b, db, migrations.EnsurePartitionsSQL, 7)
	for _, t := range historyTables {
		parts, err := db.Query(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
			WHERE i.inhparent = $1::text::regclass AND c.relname >= $1::text || '_p' || to_char($2::timestamptz AT TIME ZONE 'UTC', 'YYYYMMDD')
			  AND c.relname <> $1::text || '_p_old'`, t.name, before)
		if err != nil {
			b.Fatal(err)
		}
		names, err := pgx.CollectRows(parts, pgx.RowTo[string])
		if err != nil {
			b.Fatal(err)
		}
		for _, n := range names {
			mustExec(b, db, "TRUNCATE "+pgx.Identifier{n}.Sanitize())
		}
	}
	mustExec(b, db, `DELETE FROM scan_keys WHERE created_at >= $1`, before)
	b.Logf("reusing the kept history: %d work orders, built in %.0f s", rows, took)
	return db, time.Duration(took * float64(time.Second)), true
}

// buildHistory writes n work orders of past days (2.5 million a day, a
// 500,000-parcel hub's rate) with their scan keys, a delivered event, a
// sort result and a state change each. Each day is loaded into plain
// tables with no index and then attached as the day's partition, which
// builds its indexes in one sort each instead of row by row; the scan
// keys' indexes are dropped for the load and made again after. The result
// is what the partition job and production writes would have left: daily
// partitions with every index of the parent.
func buildHistory(b *testing.B, db *pgxpool.Pool, n int) {
	b.Helper()
	ctx := context.Background()
	conn, err := db.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string, args ...any) {
		b.Helper()
		if _, err := conn.Exec(ctx, sql, args...); err != nil {
			b.Fatalf("%v\n%s", err, sql)
		}
	}
	exec("SET synchronous_commit = off")
	exec("SET maintenance_work_mem = '256MB'")
	exec("ALTER TABLE scan_keys DROP CONSTRAINT scan_keys_pkey")
	exec("DROP INDEX scan_keys_created")
	const perDay, chunk = 2_500_000, 500_000
	base := day(0).Add(-time.Minute)
	for k := 0; k*perDay < n; k++ {
		d := day(-1 - k)
		part := func(table string) string { return pgx.Identifier{table + "_p" + d.Format("20060102")}.Sanitize() }
		for _, t := range historyTables {
			exec(fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)", part(t.name), t.name))
		}
		for from := k * perDay; from < min(n, (k+1)*perDay); from += chunk {
			to := min(from+chunk, (k+1)*perDay, n)
			exec(fmt.Sprintf(`WITH w AS (
				  INSERT INTO %s (id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash, outcome,
				                  response, created_at)
				  SELECT gen_random_uuid(), 'SG-H01', 'sort', 'H' || lpad(i::text, 11, '0'), 'operator', 'op1', 'hist-' || i,
				         '\x00', 'ok', convert_to('{"chute": 3, "next_hop": "SG-L01"}', 'UTF8'),
				         $3::timestamptz - (i / $4) * interval '1 day' - (i %% $4) * interval '30 milliseconds'
				    FROM generate_series($1::int, $2::int - 1) AS i
				  RETURNING id, station_id, scan_id, tracking_no, created_at
				), k AS (
				  INSERT INTO scan_keys (station_id, scan_id, work_order_id, created_at) SELECT station_id, scan_id, id, created_at FROM w
				), o AS (
				  INSERT INTO %s (event_id, work_order_id, tracking_no, station_id, type, actor_kind, actor_id, occurred_at,
				                  status, delivered_at, created_at)
				  SELECT gen_random_uuid(), id, tracking_no, station_id, 'sorted', 'operator', 'op1', created_at, 'delivered', created_at, created_at FROM w
				), s AS (
				  INSERT INTO %s (id, work_order_id, station_id, tracking_no, next_hop, chute, flow, flow_version, created_at, recorded_at)
				  SELECT id, id, station_id, tracking_no, 'SG-L01', 3, 'full', 1, created_at, created_at FROM w
				)
				INSERT INTO %s (station_id, tracking_no, visit, op, state, next_hop, chute, work_order_id, at, recorded_at)
				SELECT station_id, tracking_no, 1, 'sort', 'sorted', 'SG-L01', 3, id, created_at, created_at FROM w`,
				part("work_orders"), part("tracking_outbox"), part("sort_results"), part("parcel_state_history")),
				from, to, base, perDay)
		}
		for _, t := range historyTables {
			// The check lets the attach skip its scan of the day's rows.
			lo, hi := d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)
			exec(fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT bench_day CHECK (%s IS NOT NULL AND %s >= '%s' AND %s < '%s')",
				part(t.name), t.key, t.key, lo, t.key, hi))
			exec(fmt.Sprintf("ALTER TABLE %s ATTACH PARTITION %s FOR VALUES FROM ('%s') TO ('%s')", t.name, part(t.name), lo, hi))
			exec(fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT bench_day", part(t.name)))
		}
	}
	exec("ALTER TABLE scan_keys ADD CONSTRAINT scan_keys_pkey PRIMARY KEY (station_id, scan_id)")
	exec("CREATE INDEX scan_keys_created ON scan_keys (created_at)")
	exec("VACUUM ANALYZE")
}

// databaseURL is the test server's URL with its database replaced.
func databaseURL(b *testing.B, name string) string {
	b.Helper()
	u, err := url.Parse(dbtest.ServerURL())
	if err != nil {
		b.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// migrate brings the database at dsn to the current schema with the
// production migrations and returns its version.
func migrate(b *testing.B, dsn string) int64 {
	b.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		b.Fatal(err)
	}
	db := stdlib.OpenDB(*cfg)
	defer func(db *sql.DB) { _ = db.Close() }(db)
	m, err := migrations.New(db)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := m.Up(context.Background()); err != nil {
		b.Fatal(err)
	}
	v, err := m.Version(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// migrationsHash names the content of the migrations up to version: the
// ones a kept database was built with must not have changed since.
func migrationsHash(b *testing.B, version int64) string {
	b.Helper()
	files := migrations.Files()
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		b.Fatal(err)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		v, err := strconv.ParseInt(strings.SplitN(n, "_", 2)[0], 10, 64)
		if err != nil {
			b.Fatalf("migration %s: no version: %v", n, err)
		}
		if v > version {
			continue
		}
		body, err := fs.ReadFile(files, n)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(h, "%s\x00%d\x00", n, len(body))
		h.Write(body)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// rowsLabel is 20m for 20,000,000, 500k for 500,000.
func rowsLabel(n int) string {
	switch {
	case n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "m"
	case n%1_000 == 0:
		return strconv.Itoa(n/1_000) + "k"
	}
	return strconv.Itoa(n)
}
