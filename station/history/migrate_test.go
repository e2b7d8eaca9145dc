package history_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/workorder"
)

// TestPartitioningKeepsEveryRow: a station's database from before the
// partitioned history (version 15), with rows of today, of last month and
// of last year, comes over to the partitioned tables with every row, every
// scan key and the outbox's order, and keeps working: a replayed scan is
// answered from the migrated work order, a new one is recorded.
func TestPartitioningKeepsEveryRow(t *testing.T) {
	ctx := context.Background()
	url := dbtest.EmptyURL(t)
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	m, closeM, err := migrations.FromPool(db)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = closeM() }()
	if _, err := m.UpTo(ctx, 15); err != nil {
		t.Fatal(err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := db.Exec(ctx, sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	// 3000 work orders over the last 400 days, one event each, a sort
	// result and a state change for each.
	exec(`INSERT INTO work_orders (id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash, outcome,
		    response, created_at)
		SELECT gen_random_uuid(), 'SG-H01', 'sort', 'SG' || lpad(i::text, 10, '0'), 'sorter', 'm1', 'scan-' || i,
		       $1::bytea, 'ok', convert_to('{"chute": 3}', 'UTF8'), now() - (i % 400) * interval '1 day'
		  FROM generate_series(1, 3000) AS i`, workorder.RequestHash("old"))
	exec(`INSERT INTO tracking_outbox (event_id, work_order_id, tracking_no, station_id, type, actor_id, occurred_at, status)
		SELECT gen_random_uuid(), id, tracking_no, station_id, 'sorted', actor_id, created_at,
		       CASE WHEN created_at > now() - interval '1 day' THEN 'pending' ELSE 'delivered' END
		  FROM work_orders ORDER BY created_at`)
	exec(`INSERT INTO sort_results (id, work_order_id, station_id, tracking_no, chute, flow, flow_version, created_at)
		SELECT id, id, station_id, tracking_no, 3, 'f', 1, created_at FROM work_orders`)
	exec(`INSERT INTO parcel_state_history (station_id, tracking_no, visit, op, state, work_order_id, at)
		SELECT station_id, tracking_no, 1, 'sort', 'sorted', id, created_at FROM work_orders`)
	counts := func() map[string]int64 {
		t.Helper()
		out := map[string]int64{}
		for _, table := range []string{"work_orders", "tracking_outbox", "sort_results", "parcel_state_history"} {
			var n int64
			if err := db.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil {
				t.Fatal(err)
			}
			out[table] = n
		}
		var n int64
		if err := db.QueryRow(ctx, `SELECT count(*) FROM tracking_outbox WHERE status = 'pending'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		out["pending"] = n
		return out
	}
	before := counts()
	var maxOutbox int64
	if err := db.QueryRow(ctx, `SELECT max(id) FROM tracking_outbox`).Scan(&maxOutbox); err != nil {
		t.Fatal(err)
	}

	if _, err := m.Up(ctx); err != nil {
		t.Fatal(err)
	}
	db.Reset() // connections planned against the old tables
	after := counts()
	for k, v := range before {
		if after[k] != v || v == 0 {
			t.Errorf("%s: %d rows before, %d after", k, v, after[k])
		}
	}
	var keys, partitioned int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM scan_keys`).Scan(&keys); err != nil || keys != before["work_orders"] {
		t.Fatalf("scan keys %d, %v; want %d", keys, err, before["work_orders"])
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid
		WHERE c.relname IN ('work_orders', 'tracking_outbox', 'sort_results', 'parcel_state_history')`).Scan(&partitioned); err != nil || partitioned != 4 {
		t.Fatalf("partitioned tables %d, %v", partitioned, err)
	}
	// Rows older than 60 days are in one partition per table, the rest in days.
	var old int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM work_orders_p_old`).Scan(&old); err != nil || old == 0 {
		t.Fatalf("work_orders_p_old: %d, %v", old, err)
	}

	// A replay of a migrated scan is answered from its work order; a new
	// event's outbox id follows the migrated ones.
	stored, err := workorder.Lookup(ctx, db, "SG-H01", "scan-399")
	if err != nil || string(stored.Response) != `{"chute": 3}` {
		t.Fatalf("lookup of a migrated scan: %+v, %v", stored, err)
	}
	o := workorder.Order{ID: workorder.NewID(), StationID: "SG-H01", Type: "sort", TrackingNo: "SG0000000399",
		Actor: workorder.Actor{Kind: workorder.ActorSorter, ID: "m1"}, ScanID: "scan-399", RequestHash: workorder.RequestHash("old"),
		Outcome: "ok", Response: []byte(`{"chute":9}`)}
	r, err := workorder.Commit[map[string]int](ctx, db, o, nil)
	if err != nil || !r.Replayed || r.Value["chute"] != 3 {
		t.Fatalf("replay of a migrated scan: %+v, %v", r, err)
	}
	o.ID, o.ScanID = workorder.NewID(), "scan-new"
	o.Events = []workorder.Event{{TrackingNo: "SG0000000399", Type: workorder.EventSorted}}
	if r, err := workorder.Commit[map[string]int](ctx, db, o, nil); err != nil || r.Replayed {
		t.Fatalf("new scan: %+v, %v", r, err)
	}
	var next int64
	if err := db.QueryRow(ctx, `SELECT max(id) FROM tracking_outbox`).Scan(&next); err != nil || next <= maxOutbox {
		t.Fatalf("new outbox id %d after %d, %v", next, maxOutbox, err)
	}
}
