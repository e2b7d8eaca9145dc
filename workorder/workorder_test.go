package workorder_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/workorder"
)

// countingTracer counts what reaches PostgreSQL: single queries (BEGIN and
// COMMIT included) and batches.
type countingTracer struct{ queries, batches atomic.Int64 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *countingTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}
func (c *countingTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *countingTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func tracedPool(t *testing.T) (*pgxpool.Pool, *countingTracer) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	tr := &countingTracer{}
	cfg.ConnConfig.Tracer = tr
	// Statements are described on first use: only the cached path is
	// counted, so one connection, warmed before counting.
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool, tr
}

func order(scanID, tn string, response string) workorder.Order {
	return workorder.Order{ID: workorder.NewID(), StationID: "SG-H01", Type: "sort", TrackingNo: tn,
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op1"}, ScanID: scanID,
		RequestHash: workorder.RequestHash("sort", tn), Outcome: "ok", Response: []byte(response),
		Events: []workorder.Event{{TrackingNo: tn, Type: workorder.EventSorted, OccurredAt: time.Now(), Payload: map[string]any{"chute": 3}}}}
}

// commit records o as sorting does, with the answer as raw JSON.
func commit(ctx context.Context, db *pgxpool.Pool, o workorder.Order, write func(*pgx.Batch)) (workorder.Receipt[json.RawMessage], error) {
	return workorder.Commit[json.RawMessage](ctx, db, o, write)
}

func count(t *testing.T, db *pgxpool.Pool, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// receipt queues the operation's own row, as sorting does for a sort
// result, and reads it back through the batch's callback.
func receipt(o workorder.Order, got *int) func(b *pgx.Batch) {
	return func(b *pgx.Batch) {
		b.Queue(`INSERT INTO receipts (id, work_order_id, station_id, tracking_no, created_at)
			VALUES ($1, $1, $2, $3, now()) RETURNING 1`, o.ID, o.StationID, o.TrackingNo).
			QueryRow(func(row pgx.Row) error { return row.Scan(got) })
	}
}

func TestCommitBatchWritesEverythingInOneRoundTrip(t *testing.T) {
	db, tr := tracedPool(t)
	ctx := context.Background()
	var got int
	warm := order("warm", "SG1000000001", `{"warm":true}`)
	if _, err := commit(ctx, db, warm, receipt(warm, &got)); err != nil {
		t.Fatal(err)
	}
	queries, batches := tr.queries.Load(), tr.batches.Load()
	o := order("scan-1", "SG1000000002", `{"answer":1}`)
	r, err := commit(ctx, db, o, receipt(o, &got))
	if err != nil || r.Replayed || string(r.Body) != `{"answer":1}` || got != 1 {
		t.Fatalf("commit: %q %v %v (callback saw %d)", r.Body, r.Replayed, err, got)
	}
	if q, b := tr.queries.Load()-queries, tr.batches.Load()-batches; q != 0 || b != 1 {
		t.Fatalf("%d queries and %d batches, want one batch and nothing else (no BEGIN, no COMMIT)", q, b)
	}
	for q, want := range map[string]int{
		`SELECT count(*) FROM work_orders WHERE scan_id = 'scan-1'`:                                                 1,
		`SELECT count(*) FROM tracking_outbox WHERE tracking_no = 'SG1000000002'`:                                   1,
		`SELECT count(*) FROM receipts WHERE work_order_id = (SELECT id FROM work_orders WHERE scan_id = 'scan-1')`: 1,
	} {
		if n := count(t, db, q); n != want {
			t.Errorf("%s: %d, want %d", q, n, want)
		}
	}
}

func TestCommitBatchReplaysATakenScanIDAndWritesNothing(t *testing.T) {
	db := dbtest.Pool(t)
	ctx := context.Background()
	var got int
	first := order("scan-1", "SG1000000003", `{"first":true}`)
	if _, err := commit(ctx, db, first, receipt(first, &got)); err != nil {
		t.Fatal(err)
	}
	again := order("scan-1", "SG1000000003", `{"second":true}`)
	r, err := commit(ctx, db, again, receipt(again, &got))
	if err != nil || !r.Replayed || string(r.Body) != `{"first":true}` {
		t.Fatalf("replay: %q %v %v", r.Body, r.Replayed, err)
	}
	other := order("scan-1", "SG1000000004", `{}`)
	if _, err := commit(ctx, db, other, receipt(other, &got)); !errors.Is(err, workorder.ErrScanIDReused) {
		t.Fatalf("another request with the scan id: %v", err)
	}
	if n := count(t, db, `SELECT count(*) FROM tracking_outbox`); n != 1 {
		t.Fatalf("%d events, want 1", n)
	}
	if n := count(t, db, `SELECT count(*) FROM receipts`); n != 1 {
		t.Fatalf("%d receipts, want 1", n)
	}
}

func TestCommitBatchIsAllOrNothing(t *testing.T) {
	db := dbtest.Pool(t)
	ctx := context.Background()
	o := order("scan-doomed", "SG1000000005", `{}`)
	_, err := commit(ctx, db, o, func(b *pgx.Batch) {
		b.Queue(`INSERT INTO receipts (id, work_order_id, station_id, tracking_no, created_at) VALUES ($1, $1, $2, $3, now())`,
			o.ID, o.StationID, o.TrackingNo)
		b.Queue(`SELECT 1/0`) // the last statement fails after every insert ran
	})
	if err == nil {
		t.Fatal("a failing statement was not reported")
	}
	for _, q := range []string{`SELECT count(*) FROM work_orders`, `SELECT count(*) FROM tracking_outbox`, `SELECT count(*) FROM receipts`} {
		if n := count(t, db, q); n != 0 {
			t.Fatalf("%s: %d rows survived a failed batch", q, n)
		}
	}
	// The scan id was not taken: the retry records.
	var got int
	if r, err := commit(ctx, db, o, receipt(o, &got)); err != nil || r.Replayed {
		t.Fatalf("retry: %v %v", r.Replayed, err)
	}
}

func TestReplayAnswersNewSeenAndReused(t *testing.T) {
	db := dbtest.Pool(t)
	ctx := context.Background()
	var got int
	first := order("scan-r", "SG1000000005", `{"first":true}`)
	if _, err := commit(ctx, db, first, receipt(first, &got)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, scanID, tn string
		body             string
		err              error
	}{
		{"a new scan id", "scan-new", "SG1000000005", "", workorder.ErrNotFound},
		{"a retry", "scan-r", "SG1000000005", `{"first":true}`, nil},
		{"the scan id on another parcel", "scan-r", "SG1000000006", "", workorder.ErrScanIDReused},
	} {
		r, found, err := workorder.Find[json.RawMessage](ctx, db, "SG-H01", c.scanID, workorder.RequestHash("sort", c.tn))
		if c.err == workorder.ErrNotFound {
			if found || err != nil {
				t.Errorf("%s: found %v, %v", c.name, found, err)
			}
			continue
		}
		if string(r.Body) != c.body || !errors.Is(err, c.err) {
			t.Errorf("%s: %q %v, want %q %v", c.name, r.Body, err, c.body, c.err)
		}
	}
}
