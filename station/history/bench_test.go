package history_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/history"
	"github.com/expresshub/station/workorder"
)

func benchCount(full, short int) int {
	if testing.Short() {
		return short
	}
	return full
}

func mustExec(b *testing.B, db *pgxpool.Pool, sql string, args ...any) {
	b.Helper()
	if _, err := db.Exec(context.Background(), sql, args...); err != nil {
		b.Fatal(err)
	}
}

// fillHistory writes n work orders of past days (2.5 million a day, a
// 500,000-parcel hub's rate) with their scan keys, a delivered event, a
// sort result and a state change each, straight into the tables.
func fillHistory(b *testing.B, db *pgxpool.Pool, n int) {
	b.Helper()
	const perDay = 2_500_000
	days := (n + perDay - 1) / perDay
	mustExec(b, db, `SELECT history_partitions(t, $1::date, $2::date)
		FROM unnest(ARRAY['work_orders', 'sort_results', 'tracking_outbox', 'parcel_state_history']) AS t`,
		day(-days), day(-1))
	const chunk = 500_000
	for from := 0; from < n; from += chunk {
		to := min(from+chunk, n)
		mustExec(b, db, `WITH w AS (
			  INSERT INTO work_orders (id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash, outcome,
			                           response, created_at)
			  SELECT gen_random_uuid(), 'SG-H01', 'sort', 'H' || lpad(i::text, 11, '0'), 'operator', 'op1', 'hist-' || i,
			         '\x00', 'ok', convert_to('{"chute": 3, "next_hop": "SG-L01"}', 'UTF8'),
			         $3::timestamptz - (i / $4) * interval '1 day' - (i % $4) * interval '30 milliseconds'
			    FROM generate_series($1::int, $2::int - 1) AS i
			  RETURNING id, station_id, scan_id, tracking_no, created_at
			), k AS (
			  INSERT INTO scan_keys (station_id, scan_id, work_order_id, created_at) SELECT station_id, scan_id, id, created_at FROM w
			), o AS (
			  INSERT INTO tracking_outbox (event_id, work_order_id, tracking_no, station_id, type, actor_kind, actor_id, occurred_at,
			                               status, delivered_at, created_at)
			  SELECT gen_random_uuid(), id, tracking_no, station_id, 'sorted', 'operator', 'op1', created_at, 'delivered', created_at, created_at FROM w
			), s AS (
			  INSERT INTO sort_results (id, work_order_id, station_id, tracking_no, next_hop, chute, flow, flow_version, created_at, recorded_at)
			  SELECT id, id, station_id, tracking_no, 'SG-L01', 3, 'full', 1, created_at, created_at FROM w
			)
			INSERT INTO parcel_state_history (station_id, tracking_no, visit, op, state, next_hop, chute, work_order_id, at, recorded_at)
			SELECT station_id, tracking_no, 1, 'sort', 'sorted', 'SG-L01', 3, id, created_at, created_at FROM w`,
			from, to, day(0).Add(-time.Minute), perDay)
	}
	mustExec(b, db, "VACUUM ANALYZE")
}

// record records one sort the way sorting does: the work order, its event,
// the parcel's move and the sort result, in one batch.
func record(ctx context.Context, db *pgxpool.Pool, seq int) error {
	tn := fmt.Sprintf("R%011d", seq)
	id := workorder.NewID()
	body, _ := json.Marshal(map[string]any{"tracking_no": tn, "chute": 3, "next_hop": "SG-L01"})
	o := workorder.Order{ID: id, StationID: "SG-H01", Type: "sort", TrackingNo: tn,
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op1"}, ScanID: fmt.Sprintf("rec-%d", seq),
		RequestHash: workorder.RequestHash("sort", tn), Outcome: "ok", Response: body,
		Events: []workorder.Event{{TrackingNo: tn, Type: workorder.EventSorted, Payload: map[string]any{"chute": 3}}},
		Moves:  []workorder.Move{{Op: workorder.OpSort, TrackingNo: tn, To: workorder.StateSorted, NextHop: "SG-L01", Chute: 3}},
	}
	_, err := workorder.Commit[map[string]any](ctx, db, o, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO sort_results (id, work_order_id, station_id, tracking_no, next_hop, chute, flow, flow_version, created_at)
			VALUES ($1, $1, 'SG-H01', $2, 'SG-L01', 3, 'full', 1, now())`, id, tn)
	})
	return err
}

// recordRate records n sorts from workers goroutines and returns sorts/s.
func recordRate(b *testing.B, db *pgxpool.Pool, seq *atomic.Int64, n, workers int) float64 {
	b.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	var left atomic.Int64
	left.Store(int64(n))
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 {
				if err := record(ctx, db, int(seq.Add(1))); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds()
}

// BenchmarkRecordingHistory: sorts recorded per second (workorder.Commit
// with an event, a move and a sort result, 8 workers) on a database with no
// history against one holding 20 million work orders (200,000 with -short)
// and their events, sort results and state changes over the past days.
// Rounds alternate between the two databases so drift on the shared
// machine hits both. Goal: full/empty >= 0.9 (partitions and the scan key
// table keep the write's indexes small where it writes).
func BenchmarkRecordingHistory(b *testing.B) {
	const workers = 8
	empty, full := dbtest.Pool(b), dbtest.Pool(b)
	size := benchCount(20_000_000, 200_000)
	fillHistory(b, full, size)
	n := benchCount(3000, 200)
	var seq atomic.Int64
	var emptyRate, fullRate float64
	rounds := 0
	for b.Loop() {
		for range 2 {
			emptyRate += recordRate(b, empty, &seq, n, workers)
			fullRate += recordRate(b, full, &seq, n, workers)
			rounds++
		}
	}
	emptyRate, fullRate = emptyRate/float64(rounds), fullRate/float64(rounds)
	b.ReportMetric(emptyRate, "sorts/s-empty")
	b.ReportMetric(fullRate, "sorts/s-full")
	b.ReportMetric(fullRate/emptyRate, "full/empty")
	b.ReportMetric(float64(size), "history-rows")
}

// BenchmarkRetentionDrop: removing one day of 1 million work orders
// (50,000 with -short) by retention (detach and drop its partition)
// against deleting the same rows with DELETE.
func BenchmarkRetentionDrop(b *testing.B) {
	db := dbtest.Pool(b)
	ctx := context.Background()
	rows := benchCount(1_000_000, 50_000)
	fill := func() {
		mustExec(b, db, `SELECT history_partitions('work_orders', $1::date, $1::date)`, day(-10))
		mustExec(b, db, `INSERT INTO work_orders (id, station_id, type, tracking_no, actor_kind, actor_id, scan_id, request_hash,
			    outcome, response, created_at)
			SELECT gen_random_uuid(), 'SG-H01', 'sort', 'D' || lpad(i::text, 11, '0'), 'operator', 'op1', 'day-' || i, '\x00', 'ok',
			       convert_to('{"chute": 3, "next_hop": "SG-L01"}', 'UTF8'), $1::timestamptz + (i % 86000) * interval '1 second'
			  FROM generate_series(1, $2::int) AS i`, day(-10), rows)
		mustExec(b, db, "VACUUM ANALYZE work_orders")
	}
	k := history.New(db, 7, history.Table{Name: "work_orders", Retain: 72 * time.Hour})
	var dropTime, deleteTime time.Duration
	for b.Loop() {
		fill()
		start := time.Now()
		rep, err := k.Run(ctx, noGuard)
		dropTime += time.Since(start)
		if err != nil || len(rep.Dropped) != 1 {
			b.Fatalf("drop: %+v, %v", rep, err)
		}
		fill()
		start = time.Now()
		tag, err := db.Exec(ctx, `DELETE FROM work_orders WHERE created_at < $1`, day(-9))
		deleteTime += time.Since(start)
		if err != nil || tag.RowsAffected() != int64(rows) {
			b.Fatalf("delete: %v, %v", tag, err)
		}
		mustExec(b, db, `DROP TABLE `+pgx.Identifier{"work_orders_p" + day(-10).Format("20060102")}.Sanitize())
	}
	b.ReportMetric(float64(dropTime.Milliseconds())/float64(b.N), "drop-ms")
	b.ReportMetric(float64(deleteTime.Milliseconds())/float64(b.N), "delete-ms")
	b.ReportMetric(float64(rows), "rows")
}
