package workorder

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations/dbtest"
)

// explain runs EXPLAIN over sql on conn and returns the plan's text.
func explain(t *testing.T, conn *pgxpool.Conn, sql string) string {
	t.Helper()
	r, err := conn.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for r.Next() {
		var line string
		if err := r.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(plan, "\n")
}

// addWorkOrders records work orders i in (from, to] of station SG-H01 with
// their scan keys, spread over the eight days of partitions made ahead, so
// the lookups below face several partitions holding rows.
func addWorkOrders(t *testing.T, conn *pgxpool.Conn, from, to int) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), `WITH k AS (
		  INSERT INTO scan_keys (station_id, scan_id, work_order_id, created_at)
		  SELECT 'SG-H01', 'scan-' || i, gen_random_uuid(), now() + (i % 8) * interval '1 day'
		    FROM generate_series($1::int + 1, $2::int) AS i
		  RETURNING scan_id, work_order_id, created_at
		)
		INSERT INTO work_orders
		  (id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash, outcome, response, created_at)
		SELECT work_order_id, 'SG-H01', 'sort', 'SG' || lpad(substr(scan_id, 6), 10, '0'), 'operator', 'op1', scan_id, '\x00',
		       'ok', convert_to(repeat('{"chute": 3}', 20), 'UTF8'), created_at
		  FROM k`, from, to); err != nil {
		t.Fatal(err)
	}
}

// TestLookupPlanUsesScanKey: the replay lookup is a prepared statement, and
// after a few runs PostgreSQL may keep one generic plan for the
// connection's life, costed on the tables as they were then. On a new
// station's database those are nearly empty, and an index led by
// station_id alone once won that costing: every later lookup then filtered
// all of the station's work orders, and sorts slowed down as the table grew
// (seen in BenchmarkSortThroughput). Whatever the tables' size, the generic
// plan must find the key by scan_keys' primary key and the work order by
// the primary key of the one partition the key names: the other
// partitions are pruned at run time, never read.
func TestLookupPlanUsesScanKey(t *testing.T) {
	ctx := context.Background()
	conn, err := dbtest.Pool(t).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "PREPARE lookup(text, text) AS "+lookupSQL); err != nil {
		t.Fatal(err)
	}
	rows := 0
	for _, size := range []int{0, 1, 10, 50, 200, 2000} {
		addWorkOrders(t, conn, rows, size)
		rows = size
		// A generic plan is made anew for EXPLAIN EXECUTE, with the
		// tables' size as the planner sees it now.
		text := explain(t, conn, "EXPLAIN EXECUTE lookup('SG-H01', 'scan-x')")
		if !strings.Contains(text, "using scan_keys_pkey") || !strings.Contains(text, "Index Cond: ((station_id = $1) AND (scan_id = $2))") {
			t.Errorf("with %d work orders the generic plan does not read the scan key:\n%s", rows, text)
		}
		if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "Index Cond: ((id = k.work_order_id) AND (created_at = k.created_at))") {
			t.Errorf("with %d work orders the generic plan does not read the work order by its key:\n%s", rows, text)
		}
	}
	// Run for a key that exists: one partition of work_orders is read.
	text := explain(t, conn, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE lookup('SG-H01', 'scan-7')")
	parts := strings.Count(text, "Index Scan using work_orders_p")
	if parts < 5 || strings.Count(text, "(never executed)") != parts-1 {
		t.Errorf("the lookup read more than the one partition its key names:\n%s", text)
	}
}

// TestParcelLookupPlansUseIndexes: a parcel's history (work orders and
// events by tracking number) is read through indexes in every partition,
// never by scanning one, whatever the tables' size.
func TestParcelLookupPlansUseIndexes(t *testing.T) {
	ctx := context.Background()
	db := dbtest.Pool(t)
	conn, err := db.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	addWorkOrders(t, conn, 0, 20000)
	if _, err := conn.Exec(ctx, `INSERT INTO tracking_outbox (event_id, work_order_id, tracking_no, station_id, type, actor_id,
		    occurred_at, status, created_at)
		SELECT gen_random_uuid(), id, tracking_no, station_id, 'sorted', actor_id, created_at, 'delivered', created_at
		  FROM work_orders`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "PREPARE history(text, text, int) AS "+historySQL); err != nil {
		t.Fatal(err)
	}
	text := explain(t, conn, "EXPLAIN EXECUTE history('SG-H01', 'SG0000000007', 500)")
	if strings.Contains(text, "Seq Scan") || !strings.Contains(text, "work_orders_p") ||
		!strings.Contains(text, "tracking_no = $2") {
		t.Errorf("a parcel's history is not read through indexes:\n%s", text)
	}
	for _, idx := range []string{"work_orders_p", "tracking_outbox_p"} {
		if !strings.Contains(text, idx) {
			t.Errorf("the plan does not read %s*:\n%s", idx, text)
		}
	}
	if _, _, err := History(ctx, db, "SG-H01", "SG0000000007"); err != nil {
		t.Fatal(err)
	}
}
