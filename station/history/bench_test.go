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
// history against one holding 20 million work orders (200,000 with -short;
// STATION_BENCH_HISTORY_ROWS sets another size) and their events, sort
// results and state changes over the past days. The full-size history is
// built once and kept between runs (keptHistoryDB); -short builds its small
// one into a fresh database each time. Rounds alternate between the two
// databases so drift on the shared machine hits both. Goal: full/empty >=
// 0.9 (partitions and the scan key table keep the write's indexes small
// where it writes).
func BenchmarkRecordingHistory(b *testing.B) {
	const workers = 8
	empty := dbtest.Pool(b)
	size := historyRows(b)
	var full *pgxpool.Pool
	var build time.Duration
	if testing.Short() {
		full = dbtest.Pool(b)
		start := time.Now()
		buildHistory(b, full, size)
		build = time.Since(start)
	} else {
		full, build = keptHistoryDB(b, size)
	}
	n := benchCount(3000, 200)
	var seq atomic.Int64
	var emptyRate, fullRate float64
	rounds := 0
	for b.Loop() {
		for r := range 2 {
			// Each database goes first in one of the two rounds: the
			// first of a pair meets whatever the previous one left
			// (checkpoints, autovacuum, other sessions' load).
			if r == 0 {
				emptyRate += recordRate(b, empty, &seq, n, workers)
				fullRate += recordRate(b, full, &seq, n, workers)
			} else {
				fullRate += recordRate(b, full, &seq, n, workers)
				emptyRate += recordRate(b, empty, &seq, n, workers)
			}
			rounds++
		}
	}
	emptyRate, fullRate = emptyRate/float64(rounds), fullRate/float64(rounds)
	b.ReportMetric(emptyRate, "sorts/s-empty")
	b.ReportMetric(fullRate, "sorts/s-full")
	b.ReportMetric(fullRate/emptyRate, "full/empty")
	b.ReportMetric(float64(size), "history-rows")
	b.ReportMetric(build.Seconds(), "build-s")
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
