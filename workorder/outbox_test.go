package workorder_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/workorder"
)

func noGuard(context.Context, pgx.Tx) error { return nil }

// scanKey records a scan key created ago.
func scanKey(t *testing.T, db *pgxpool.Pool, scanID string, ago time.Duration) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `INSERT INTO scan_keys (station_id, scan_id, work_order_id, created_at)
		VALUES ('SG-H01', $1, gen_random_uuid(), now() - $2 * interval '1 microsecond')`, scanID, ago.Microseconds()); err != nil {
		t.Fatal(err)
	}
}

func scanKeysLeft(t *testing.T, db *pgxpool.Pool) []string {
	t.Helper()
	rows, err := db.Query(context.Background(), `SELECT scan_id FROM scan_keys ORDER BY scan_id`)
	if err != nil {
		t.Fatal(err)
	}
	left, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return left
}

func TestTrimScanKeysDeletesOnlyKeysOlderThanTheRetention(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	const retain = 72 * time.Hour
	for _, id := range []string{"old-1", "old-2", "old-3", "old-4", "old-5", "old-6", "old-7"} {
		scanKey(t, db, id, 100*time.Hour)
	}
	scanKey(t, db, "recent", time.Hour)
	n, err := workorder.TrimScanKeys(context.Background(), db, retain, 3, 10, noGuard) // batches of 3: 3, 3, 1
	if err != nil || n != 7 {
		t.Fatalf("trimmed %d, %v; want the 7 old keys", n, err)
	}
	if left := scanKeysLeft(t, db); !slices.Equal(left, []string{"recent"}) {
		t.Fatalf("left %v", left)
	}
	if n, err := workorder.TrimScanKeys(context.Background(), db, retain, 3, 10, noGuard); err != nil || n != 0 {
		t.Fatalf("second trim: %d, %v", n, err)
	}
}

func TestTrimScanKeysStopsAtARefusingGuard(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	scanKey(t, db, "old-1", 100*time.Hour)
	lost := errors.New("lease lost")
	n, err := workorder.TrimScanKeys(context.Background(), db, 72*time.Hour, 1, 10,
		func(context.Context, pgx.Tx) error { return lost })
	if !errors.Is(err, lost) || n != 0 {
		t.Fatalf("trimmed %d, %v; want nothing and the guard's error", n, err)
	}
	if left := scanKeysLeft(t, db); len(left) != 1 {
		t.Fatalf("left %v", left)
	}
}

// recordEvents writes one work order with one event per type for the
// parcel, as a domain package does.
func recordEvents(t *testing.T, db *pgxpool.Pool, scanID, tn string, types ...string) {
	t.Helper()
	o := workorder.Order{ID: workorder.NewID(), StationID: "SG-H01", Type: "test", TrackingNo: tn,
		Actor: workorder.Actor{Kind: workorder.ActorSorter, ID: "SORTER-1"}, ScanID: scanID,
		RequestHash: []byte{1}, Outcome: "ok", Response: []byte("{}")}
	for _, typ := range types {
		et, err := workorder.ParseEventType(typ)
		if err != nil {
			t.Fatal(err)
		}
		o.Events = append(o.Events, workorder.Event{TrackingNo: tn, Type: et})
	}
	if _, err := workorder.Commit[json.RawMessage](context.Background(), db, o, nil); err != nil {
		t.Fatal(err)
	}
}

// TestDeliverHandsOverParcelPrefixesAndRecordsTheSettlement: Deliver gives
// send each parcel's unbroken prefix in outbox order, with its actor, and
// applies exactly what send settled; rows left out stay pending.
func TestDeliverHandsOverParcelPrefixesAndRecordsTheSettlement(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	ctx := context.Background()
	recordEvents(t, db, "s1", "TN-A", "arrived", "sorted")
	recordEvents(t, db, "s2", "TN-B", "arrived")
	recordEvents(t, db, "s3", "TN-C", "arrived")
	outbox := workorder.NewOutbox(db)

	var seen []string
	res, err := outbox.Deliver(ctx, 10, func(_ context.Context, ready []workorder.Claimed) workorder.Settlement {
		var s workorder.Settlement
		for _, c := range ready {
			seen = append(seen, c.TrackingNo+"/"+c.Type.String())
			if c.Actor != (workorder.Actor{Kind: workorder.ActorSorter, ID: "SORTER-1"}) || c.StationID != "SG-H01" || c.EventID == "" {
				t.Errorf("claimed %+v", c)
			}
			switch c.TrackingNo {
			case "TN-A":
				s.Delivered = append(s.Delivered, c.ID)
			case "TN-B":
				s.Failed = append(s.Failed, workorder.Failure{ID: c.ID, Dead: true, Err: "rejected: bad"})
			}
			// TN-C: left out, stays as it was.
		}
		return s
	})
	if err != nil || res.Claimed != 4 || res.Ready != 4 {
		t.Fatalf("%+v %v", res, err)
	}
	if want := []string{"TN-A/arrived", "TN-A/sorted", "TN-B/arrived", "TN-C/arrived"}; !slices.Equal(seen, want) {
		t.Fatalf("handed over %v, want %v", seen, want)
	}
	for status, want := range map[string]int{"delivered": 2, "dead": 1, "pending": 1} {
		if n := count(t, db, `SELECT count(*) FROM tracking_outbox WHERE status = $1`, status); n != want {
			t.Fatalf("%d %s, want %d", n, status, want)
		}
	}
	dead, err := outbox.Dead(ctx, 0, 10)
	if err != nil || len(dead) != 1 || dead[0].LastError != "rejected: bad" || dead[0].Attempts != 1 {
		t.Fatalf("dead %+v %v", dead, err)
	}

	// TN-B's later event waits behind its dead one; send is not called
	// when nothing is ready.
	recordEvents(t, db, "s4", "TN-B", "sorted")
	if _, err := db.Exec(ctx, `UPDATE tracking_outbox SET status = 'delivered' WHERE tracking_no = 'TN-C'`); err != nil {
		t.Fatal(err)
	}
	res, err = outbox.Deliver(ctx, 10, func(context.Context, []workorder.Claimed) workorder.Settlement {
		t.Error("send called with nothing ready")
		return workorder.Settlement{}
	})
	if err != nil || res.Claimed != 0 {
		t.Fatalf("%+v %v", res, err)
	}
}

// TestDeliverSkipsRowsAnotherDeliveryHolds: two deliveries at once never
// hand over the same row, and a parcel whose first event the other holds
// waits.
func TestDeliverSkipsRowsAnotherDeliveryHolds(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	ctx := context.Background()
	for i := range 6 {
		recordEvents(t, db, fmt.Sprintf("s%d", i), fmt.Sprintf("TN-%d", i), "arrived", "sorted")
	}
	outbox := workorder.NewOutbox(db)
	var first, second []int64
	_, err := outbox.Deliver(ctx, 5, func(ctx context.Context, ready []workorder.Claimed) workorder.Settlement {
		for _, c := range ready {
			first = append(first, c.ID)
		}
		// While this delivery holds its rows, another runs.
		if _, err := outbox.Deliver(ctx, 100, func(_ context.Context, ready []workorder.Claimed) workorder.Settlement {
			for _, c := range ready {
				second = append(second, c.ID)
			}
			return workorder.Settlement{}
		}); err != nil {
			t.Error(err)
		}
		return workorder.Settlement{Delivered: first}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The first took 5 rows: parcels 0 and 1 whole, parcel 2's first event.
	// The second must not take parcel 2's later event.
	if len(first) != 5 || len(second) != 6 {
		t.Fatalf("first %v, second %v", first, second)
	}
	for _, id := range second {
		if slices.Contains(first, id) {
			t.Fatalf("row %d handed to both", id)
		}
	}
	if n := count(t, db, `SELECT count(*) FROM tracking_outbox WHERE tracking_no = 'TN-2' AND status = 'delivered'`); n != 1 {
		t.Fatalf("TN-2: %d delivered", n)
	}
}
