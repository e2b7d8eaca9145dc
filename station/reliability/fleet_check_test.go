package reliability

import (
	"context"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/clients/sim"
)

// queryRows collects every row of a query with scan, failing the test on error.
func queryRows[T any](t testing.TB, db *pgxpool.Pool, sql string, scan func(pgx.CollectableRow) (T, error)) []T {
	t.Helper()
	rows, _ := db.Query(context.Background(), sql)
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return out
}

// scanPair reads a row of two text columns.
func scanPair(row pgx.CollectableRow) ([2]string, error) {
	var p [2]string
	return p, row.Scan(&p[0], &p[1])
}

// workOrderCheck: every acknowledged write has exactly one work order, of
// its kind, the one its answer named; no work order exists that no answer
// acknowledged.
type workOrderCheck struct {
	acked, committed             int
	missing, mismatched, unacked int
	retried, replayed            int
	byKind                       map[string]int
}

type storedWorkOrder struct{ id, typ, scanID, trackingNo string }

func checkWorkOrders(t testing.TB, db *pgxpool.Pool, l *fleetLedger) workOrderCheck {
	t.Helper()
	wos := queryRows(t, db, `SELECT id::text, type, scan_id, coalesce(tracking_no, '') FROM work_orders`,
		func(row pgx.CollectableRow) (storedWorkOrder, error) {
			var w storedWorkOrder
			return w, row.Scan(&w.id, &w.typ, &w.scanID, &w.trackingNo)
		})
	byScan := map[string]storedWorkOrder{}
	for _, w := range wos {
		byScan[w.scanID] = w
	}
	c := workOrderCheck{acked: len(l.acks), committed: len(wos), byKind: map[string]int{}}
	acked := map[string]bool{}
	for _, a := range l.acks {
		c.byKind[a.kind]++
		if a.retried {
			c.retried++
		}
		if a.replayed {
			c.replayed++
		}
		if acked[a.scanID] {
			c.mismatched++
			t.Errorf("scan %s acknowledged twice", a.scanID)
		}
		acked[a.scanID] = true
		w, ok := byScan[a.scanID]
		switch {
		case !ok:
			c.missing++
			t.Errorf("%s scan %s acknowledged with work order %s, which was never committed", a.kind, a.scanID, a.workOrderID)
		case w.id != a.workOrderID || w.typ != a.kind || w.trackingNo != a.trackingNo:
			c.mismatched++
			t.Errorf("scan %s: committed %+v, acknowledged as %s %s %s", a.scanID, w, a.kind, a.trackingNo, a.workOrderID)
		}
	}
	for _, w := range wos {
		if !acked[w.scanID] {
			c.unacked++
			if c.unacked <= 5 {
				t.Errorf("work order %+v was committed but never acknowledged", w)
			}
		}
	}
	return c
}

// eventCheck compares the outbox (what was committed) with what the order
// center stored.
type eventCheck struct {
	events, stored                       int
	lost, extra, storedTwice, outOfOrder int
	redelivered                          int64
	wrongCounts                          int // work orders with the wrong number of events
}

func committedEvents(t testing.TB, db *pgxpool.Pool) []outboxRow {
	t.Helper()
	return queryRows(t, db, `SELECT id, event_id::text, work_order_id::text, tracking_no, station_id, type FROM tracking_outbox ORDER BY id`,
		pgx.RowToStructByPos[outboxRow])
}

// compareEvents checks that every committed event was stored once by the
// order center, none that was not committed, and per parcel in commit
// (outbox id) order.
func compareEvents(t testing.TB, events []outboxRow, stored []sim.RecordedEvent) eventCheck {
	t.Helper()
	c := eventCheck{events: len(events), stored: len(stored)}
	storedByID := map[string]sim.RecordedEvent{}
	storedOrder := map[string][]string{} // tracking no -> event ids in arrival order
	for _, e := range stored {
		if _, dup := storedByID[e.EventID]; dup {
			c.storedTwice++
			t.Errorf("event %s stored twice", e.EventID)
		}
		storedByID[e.EventID] = e
		storedOrder[e.TrackingNo] = append(storedOrder[e.TrackingNo], e.EventID)
		c.redelivered += e.Duplicates
	}
	committed := map[string]bool{}
	committedOrder := map[string][]string{}
	for _, e := range events {
		committed[e.EventID] = true
		committedOrder[e.TrackingNo] = append(committedOrder[e.TrackingNo], e.EventID)
		got, ok := storedByID[e.EventID]
		if !ok {
			c.lost++
			if c.lost <= 5 {
				t.Errorf("event %s (%s %s) never reached the order center", e.EventID, e.Type, e.TrackingNo)
			}
			continue
		}
		if got.TrackingNo != e.TrackingNo || got.Type != e.Type || got.StationID != e.StationID {
			t.Errorf("event %s stored as %s %s at %s, committed as %s %s at %s", e.EventID,
				got.Type, got.TrackingNo, got.StationID, e.Type, e.TrackingNo, e.StationID)
		}
	}
	for id := range storedByID {
		if !committed[id] {
			c.extra++
			t.Errorf("order center holds event %s that no committed work order wrote", id)
		}
	}
	for tn, want := range committedOrder {
		// A lost event is counted above; the order is that of the others.
		want = slices.DeleteFunc(want, func(id string) bool { _, ok := storedByID[id]; return !ok })
		if got := storedOrder[tn]; !slices.Equal(got, want) {
			c.outOfOrder++
			if c.outOfOrder <= 5 {
				t.Errorf("parcel %s: events stored in order %v, committed %v", tn, got, want)
			}
		}
	}
	if c.lost > 0 {
		t.Errorf("%d of %d committed events lost", c.lost, len(events))
	}
	return c
}

// checkEventCounts: each work order carries the tracking events its kind
// promises (one per scan, one per parcel of a sealed bag or a closed
// handover, none for opening things).
func checkEventCounts(t testing.TB, db *pgxpool.Pool, l *fleetLedger, events []outboxRow) int {
	t.Helper()
	perWO := map[string]int{}
	for _, e := range events {
		perWO[e.WorkOrderID]++
	}
	subjects := map[string]string{} // work order id -> bag or handover id
	for _, r := range queryRows(t, db, `SELECT id::text, coalesce(subject_id, '') FROM work_orders`, scanPair) {
		subjects[r[0]] = r[1]
	}
	wrong := 0
	for _, a := range l.acks {
		want := 0
		switch a.kind {
		case "receive", "sort", "bag_add", "bag_remove":
			want = 1
		case "sorter_confirm":
			if a.trackingNo != "" {
				want = 1
			}
		case "bag_seal":
			want = len(l.bags[subjects[a.workOrderID]].items)
		case "handover_close":
			for _, b := range l.handovers[subjects[a.workOrderID]].bags {
				want += len(l.bags[b].items)
			}
		}
		if got := perWO[a.workOrderID]; got != want {
			wrong++
			if wrong <= 5 {
				t.Errorf("%s work order %s has %d tracking events, want %d", a.kind, a.workOrderID, got, want)
			}
		}
	}
	return wrong
}

// packingCheck compares bags and handovers in PostgreSQL with the writes
// the driver got acknowledged.
type packingCheck struct {
	bags, parcels, handovers  int
	inTwoBags                 int
	bagsWrong, handoversWrong int
}

func checkPacking(t testing.TB, db *pgxpool.Pool, l *fleetLedger) packingCheck {
	t.Helper()
	type bagRow struct {
		ID, NextHop, Status string
		ItemCount           int
	}
	bags := queryRows(t, db, `SELECT id, next_hop, status, item_count FROM bags`, pgx.RowToStructByPos[bagRow])
	items := map[string]map[string]bool{}
	bagsOf := map[string][]string{} // parcel -> bags holding it
	for _, r := range queryRows(t, db, `SELECT bag_id, tracking_no FROM bag_items`, scanPair) {
		if items[r[0]] == nil {
			items[r[0]] = map[string]bool{}
		}
		items[r[0]][r[1]] = true
		bagsOf[r[1]] = append(bagsOf[r[1]], r[0])
	}
	onHandover := map[string]map[string]bool{}
	for _, r := range queryRows(t, db, `SELECT handover_id, bag_id FROM handover_bags`, scanPair) {
		if onHandover[r[0]] == nil {
			onHandover[r[0]] = map[string]bool{}
		}
		onHandover[r[0]][r[1]] = true
	}
	closed := map[string]bool{}
	for _, r := range queryRows(t, db, `SELECT id, status FROM handovers`, scanPair) {
		closed[r[0]] = r[1] == "closed"
	}

	c := packingCheck{bags: len(bags), parcels: len(bagsOf), handovers: len(closed)}
	for tn, held := range bagsOf {
		if len(held) > 1 {
			c.inTwoBags++
			t.Errorf("parcel %s is in bags %v", tn, held)
		}
	}
	departed := map[string]bool{}
	for id, h := range l.handovers {
		want := map[string]bool{}
		for _, b := range h.bags {
			want[b] = true
			departed[b] = h.closed
		}
		if !maps.Equal(onHandover[id], want) || closed[id] != h.closed {
			c.handoversWrong++
			t.Errorf("handover %s holds %v (closed %v), acknowledged %v (closed %v)", id, slices.Sorted(maps.Keys(onHandover[id])), closed[id], h.bags, h.closed)
		}
	}
	if len(closed) != len(l.handovers) {
		c.handoversWrong++
		t.Errorf("%d handovers in PostgreSQL, %d acknowledged", len(closed), len(l.handovers))
	}
	for _, b := range bags {
		book, ok := l.bags[b.ID]
		if !ok {
			c.bagsWrong++
			t.Errorf("bag %s was never acknowledged", b.ID)
			continue
		}
		want := "open"
		switch {
		case departed[b.ID]:
			want = "departed"
		case book.sealed:
			want = "sealed"
		}
		got := items[b.ID]
		if got == nil {
			got = map[string]bool{}
		}
		if !maps.Equal(got, book.items) || b.Status != want || b.ItemCount != len(book.items) || b.NextHop != book.hop {
			c.bagsWrong++
			t.Errorf("bag %s: %s, %d items %v for %s; acknowledged %s, %v for %s", b.ID, b.Status, b.ItemCount,
				slices.Sorted(maps.Keys(got)), b.NextHop, want, slices.Sorted(maps.Keys(book.items)), book.hop)
		}
	}
	if len(bags) != len(l.bags) {
		c.bagsWrong++
		t.Errorf("%d bags in PostgreSQL, %d acknowledged", len(bags), len(l.bags))
	}
	return c
}

// drainOutbox waits until no tracking event is pending, at most until
// since+within; it returns the time from since, what is still pending and
// the dead letters.
func drainOutbox(t testing.TB, db *pgxpool.Pool, since time.Time, within time.Duration) (took time.Duration, pending, dead int) {
	t.Helper()
	for {
		err := db.QueryRow(context.Background(),
			`SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'dead') FROM tracking_outbox`).Scan(&pending, &dead)
		if err != nil {
			t.Fatal(err)
		}
		took = time.Since(since)
		if pending == 0 || took > within {
			return took, pending, dead
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func verdictOf(ok bool) string {
	if ok {
		return "pass"
	}
	return "FAIL"
}
