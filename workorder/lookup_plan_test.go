package workorder

import (
	"context"
	"strings"
	"testing"

	"github.com/expresshub/station/migrations/dbtest"
)

// TestLookupPlanUsesScanKey: the replay lookup is a prepared statement, and
// after a few runs PostgreSQL may keep one generic plan for the
// connection's life, costed on the table as it was then. On a new station's
// database that is a nearly empty table, and an index led by station_id
// alone once won that costing: every later lookup then filtered all of the
// station's work orders, and sorts slowed down as the table grew (seen in
// BenchmarkSortThroughput). Whatever the table's size, the generic plan must
// find the row by the (station_id, scan_id) key.
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
		if _, err := conn.Exec(ctx, `INSERT INTO work_orders
			(id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash, outcome, response)
			SELECT gen_random_uuid(), 'SG-H01', 'sort', 'SG' || lpad(i::text, 10, '0'), 'operator', 'op1',
			       'scan-' || i, '\x00', 'ok', convert_to(repeat('{"chute": 3}', 20), 'UTF8')
			  FROM generate_series($1::int + 1, $2::int) AS i`, rows, size); err != nil {
			t.Fatal(err)
		}
		rows = size
		// A generic plan is made anew for EXPLAIN EXECUTE, with the
		// table's size as the planner sees it now.
		var plan []string
		r, err := conn.Query(ctx, "EXPLAIN EXECUTE lookup('SG-H01', 'scan-x')")
		if err != nil {
			t.Fatal(err)
		}
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
		text := strings.Join(plan, "\n")
		if !strings.Contains(text, "using work_orders_scan") || !strings.Contains(text, "Index Cond: ((station_id = $1) AND (scan_id = $2))") {
			t.Errorf("with %d work orders the generic plan does not read the scan key:\n%s", rows, text)
		}
	}
}
