package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
)

const crashPassword = "crash-test-password"

// viaParcels returns n Normal tracking numbers of the station's market whose
// route passes the station: parcels that are received and sorted without an
// exception. Bounded: it scans at most 50 candidates per parcel.
func viaParcels(t testing.TB, fx *sim.Fixtures, station string, n int) []string {
	t.Helper()
	site, ok := fx.Site(station)
	if !ok {
		t.Fatalf("unknown station %s", station)
	}
	out := make([]string, 0, n)
	for j := 0; len(out) < n && j < 50*n; j++ {
		no := sim.TrackingNo(site.Market, sim.Normal, j)
		p, err := fx.Parcel(no)
		if err != nil || !fx.Via(p.Origin, p.Destination, station) {
			continue
		}
		out = append(out, no)
	}
	if len(out) < n {
		t.Fatalf("only %d parcels via %s", len(out), station)
	}
	return out
}

// scanAck is one acknowledged scan: the answer a terminal got.
type scanAck struct {
	kind        string // receive | sort
	trackingNo  string
	scanID      string
	workOrderID string
	replayed    bool
	retried     bool // the first attempt got no answer or a 5xx
	exception   bool // answered with a business exception
}

// TestCrashMidLoadLosesNoTrackingEvent starts `station serve` as a process,
// sends receive+sort scans from several terminals, SIGKILLs the process
// mid-load, restarts it, lets the terminals retry what went unanswered (same
// scan ids) and the relay drain, and then checks the order center: every
// event of every committed work order arrived, once, in per-parcel order.
func TestCrashMidLoadLosesNoTrackingEvent(t *testing.T) {
	t.Parallel()
	const (
		station = "SG-H01"
		parcels = 1500 // two scans each: 3000 scans
		workers = 8
	)
	killAt := []int64{1000, 2000} // acknowledged scans before each SIGKILL
	s := startSimProc(t)
	fx := s.Fx
	dbURL := dbtest.URL(t)
	_, prefix := dbtest.Redis(t)
	env := serveEnv{DatabaseURL: dbURL, RedisAddr: dbtest.RedisAddr(), Prefix: prefix, DownstreamAddr: s.Addr}
	db := dbtest.PoolFor(t, dbURL)

	addOperator(t, env, "op1", station, "operator", crashPassword)
	addOperator(t, env, "op3", station, "operator", crashPassword)
	addOperator(t, env, "sup1", station, "supervisor", crashPassword)
	proc := newServe(t, env)
	proc.start()
	c := newClient(t, proc.URL)
	sup := c.login(t, "sup1", crashPassword)
	c.must(t, "PUT", "/api/v1/stations/"+station+"/chutes", sup, sorting.NumberedChuteMap(fx.NextHops(station)), http.StatusOK, nil)
	tokens := []string{c.login(t, "op1", crashPassword), c.login(t, "op3", crashPassword)}

	tns := viaParcels(t, fx, station, parcels)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	var (
		acked   atomic.Int64
		mu      sync.Mutex
		acks    []scanAck
		failure error
	)
	fail := func(err error) {
		mu.Lock()
		if failure == nil {
			failure = err
		}
		mu.Unlock()
		cancel()
	}
	// scan sends one scan until it is answered 200, retrying with the same
	// scan id while the station is down or restarting.
	scan := func(token, kind, tn string) (scanAck, error) {
		ack := scanAck{kind: kind, trackingNo: tn, scanID: kind + "-" + tn}
		for attempt := 0; ; attempt++ {
			a, err := c.send(ctx, "POST", "/api/v1/"+kind, token, map[string]string{"tracking_no": tn, "scan_id": ack.scanID})
			switch {
			case err != nil && ctx.Err() != nil:
				return ack, fmt.Errorf("%s %s: gave up: %w", kind, tn, err)
			case err != nil || a.Status >= 500:
				ack.retried = true
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(min(attempt+1, 10)) * 20 * time.Millisecond):
				}
				continue
			case a.Status != http.StatusOK:
				return ack, fmt.Errorf("%s %s: status %d: %s", kind, tn, a.Status, a.Body)
			}
			var body struct {
				WorkOrderID string           `json:"work_order_id"`
				Exception   *json.RawMessage `json:"exception"`
			}
			if err := json.Unmarshal(a.Body, &body); err != nil || body.WorkOrderID == "" {
				return ack, fmt.Errorf("%s %s: answer %s", kind, tn, a.Body)
			}
			// An exception (a slow downstream under load) is an answer too:
			// it has its work order and its tracking event.
			ack.exception = body.Exception != nil && string(*body.Exception) != "null"
			ack.workOrderID = body.WorkOrderID
			ack.replayed = a.Header.Get("Idempotent-Replayed") == "true"
			return ack, nil
		}
	}

	jobs := make(chan string)
	var wg sync.WaitGroup
	for w := range workers {
		token := tokens[w%len(tokens)]
		wg.Go(func() {
			for tn := range jobs {
				for _, kind := range []string{"receive", "sort"} {
					ack, err := scan(token, kind, tn)
					if err != nil {
						fail(err)
						return
					}
					mu.Lock()
					acks = append(acks, ack)
					mu.Unlock()
					acked.Add(1)
				}
			}
		})
	}
	// The crashes: SIGKILL at each mark of acknowledged scans, then a
	// restart on the same ports and database.
	crashed := make(chan struct{})
	var ackedAtKill []int64
	go func() {
		defer close(crashed)
		for _, mark := range killAt {
			for acked.Load() < mark {
				select {
				case <-ctx.Done():
					return
				case <-time.After(2 * time.Millisecond):
				}
			}
			proc.kill()
			ackedAtKill = append(ackedAtKill, acked.Load())
			time.Sleep(300 * time.Millisecond) // terminals see refused connections meanwhile
			if err := proc.startErr(); err != nil {
				fail(fmt.Errorf("restart after SIGKILL: %w", err))
				return
			}
		}
	}()
	loadStart := time.Now()
feed:
	for _, tn := range tns {
		select {
		case jobs <- tn:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	loadTook := time.Since(loadStart)
	<-crashed
	if failure != nil {
		t.Fatal(failure)
	}
	if len(ackedAtKill) != len(killAt) {
		t.Fatalf("the station was killed %d times, want %d", len(ackedAtKill), len(killAt))
	}
	if len(acks) != 2*parcels {
		t.Fatalf("%d scans acknowledged, want %d", len(acks), 2*parcels)
	}

	drainStart := time.Now()
	waitDrained(t, db, 60*time.Second)
	drainTook := time.Since(drainStart)

	r := checkDelivery(t, db, s.TrackingEvents(t), acks)
	report(t, "crash: %d scans by %d terminals in %v; SIGKILL after %v acknowledged; %d scans retried across the crashes (%d answered as replays); %d exceptions; outbox drained %v after the load",
		len(acks), workers, loadTook.Round(time.Millisecond), ackedAtKill, r.retried, r.replayed, r.exceptions, drainTook.Round(time.Millisecond))
	report(t, "crash: %d work orders, %d events committed, %d stored by the order center; lost %d, extra %d, stored twice %d, out of order %d; %d redelivered pushes absorbed by dedup",
		r.workOrders, r.events, r.stored, r.lost, r.extra, r.storedTwice, r.outOfOrder, r.redelivered)
}

// waitDrained waits until no tracking event is pending, failing on a dead
// letter or at the deadline.
func waitDrained(t testing.TB, db *pgxpool.Pool, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var pending, dead int
		err := db.QueryRow(context.Background(),
			`SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'dead') FROM tracking_outbox`).Scan(&pending, &dead)
		if err != nil {
			t.Fatal(err)
		}
		if dead > 0 {
			t.Fatalf("%d tracking events went dead", dead)
		}
		if pending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d tracking events still pending after %v", pending, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type deliveryReport struct {
	workOrders, events, stored           int
	lost, extra, storedTwice, outOfOrder int
	redelivered                          int64
	retried, replayed, exceptions        int
}

type outboxRow struct {
	ID          int64
	EventID     string
	WorkOrderID string
	TrackingNo  string
	StationID   string
	Type        string
}

// checkDelivery compares what the terminals were told, what PostgreSQL
// committed and what the order center stored.
func checkDelivery(t testing.TB, db *pgxpool.Pool, stored []sim.RecordedEvent, acks []scanAck) deliveryReport {
	t.Helper()
	ctx := context.Background()
	var r deliveryReport

	// Every acknowledged scan has exactly one work order, of its kind and parcel.
	type wo struct{ typ, tn, scanID string }
	rows, _ := db.Query(ctx, `SELECT id::text, type, coalesce(tracking_no, ''), scan_id FROM work_orders`)
	wos, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (struct {
		id string
		wo
	}, error) {
		var v struct {
			id string
			wo
		}
		return v, row.Scan(&v.id, &v.typ, &v.tn, &v.scanID)
	})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]wo{}
	for _, w := range wos {
		byID[w.id] = w.wo
	}
	r.workOrders = len(byID)
	seen := map[string]bool{}
	for _, a := range acks {
		w, ok := byID[a.workOrderID]
		if !ok {
			t.Errorf("%s %s acknowledged with work order %s, which was never committed", a.kind, a.trackingNo, a.workOrderID)
			continue
		}
		if w.typ != a.kind || w.tn != a.trackingNo || w.scanID != a.scanID {
			t.Errorf("work order %s is %+v, acknowledged as %s %s %s", a.workOrderID, w, a.kind, a.trackingNo, a.scanID)
		}
		if seen[a.workOrderID] {
			t.Errorf("work order %s acknowledged for two scans", a.workOrderID)
		}
		seen[a.workOrderID] = true
		if a.retried {
			r.retried++
		}
		if a.replayed {
			r.replayed++
		}
		if a.exception {
			r.exceptions++
		}
	}
	if len(byID) != len(acks) {
		t.Errorf("%d work orders committed for %d acknowledged scans", len(byID), len(acks))
	}

	// The outbox: one event per work order, all delivered.
	rows, _ = db.Query(ctx, `SELECT id, event_id::text, work_order_id::text, tracking_no, station_id, type FROM tracking_outbox ORDER BY id`)
	events, err := pgx.CollectRows(rows, pgx.RowToStructByPos[outboxRow])
	if err != nil {
		t.Fatal(err)
	}
	r.events = len(events)
	perWO := map[string]int{}
	for _, e := range events {
		perWO[e.WorkOrderID]++
		want := map[string]string{"receive": "arrived", "sort": "sorted"}[byID[e.WorkOrderID].typ]
		if e.Type != want && e.Type != "exception" {
			t.Errorf("event %s of a %s work order has type %s, want %s or exception", e.EventID, byID[e.WorkOrderID].typ, e.Type, want)
		}
	}
	for id := range byID {
		if perWO[id] != 1 {
			t.Errorf("work order %s has %d tracking events, want 1", id, perWO[id])
		}
	}

	// The order center: the same events, each stored once, per parcel in
	// commit order.
	ev := compareEvents(t, events, stored)
	r.stored, r.lost, r.extra, r.storedTwice, r.outOfOrder, r.redelivered = ev.stored, ev.lost, ev.extra, ev.storedTwice, ev.outOfOrder, ev.redelivered
	storedTypes := map[string][]string{} // tracking no -> event types in arrival order
	for _, e := range stored {
		storedTypes[e.TrackingNo] = append(storedTypes[e.TrackingNo], e.Type)
	}
	for tn, got := range storedTypes {
		// Receive was acknowledged before sort was sent: its event, an
		// arrival or an exception, comes first.
		if len(got) != 2 || got[1] == "arrived" || got[0] == "sorted" {
			r.outOfOrder++
			t.Errorf("parcel %s: stored %v, want the receive's event before the sort's", tn, got)
		}
	}
	return r
}
