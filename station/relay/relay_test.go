package relay_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/workorder"
)

func TestRelayDeliversEveryEventInParcelOrder(t *testing.T) {
	w := newWorld(t)
	var parcels []string
	for range 20 {
		no := w.parcel()
		parcels = append(parcels, no)
		w.record("SG-H01", no, "arrived")
		w.record("SG-H01", no, "sorted")
		w.record("SG-H01", no, "bagged", "bag_sealed")
	}
	reg := prometheus.NewRegistry()
	r := relay.New(w.db, w.orderCenter(), relay.Config{BatchSize: 7}, nil, reg)
	got := drain(t, r)
	if got.Delivered != 80 || got.Failed != 0 || got.Dead != 0 {
		t.Fatalf("drain: %+v", got)
	}
	w.checkDelivered(parcels)
	if n := w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered' OR delivered_at IS NULL`); n != 0 {
		t.Fatalf("%d rows not delivered", n)
	}
	if v := counterValue(t, reg, "station_relay_delivered_total"); v != 80 {
		t.Fatalf("delivered counter %v", v)
	}
	ev := w.sim.TrackingEvents(parcels[0])
	if ev[0].OperatorID != "op-1" || ev[0].StationID != "SG-H01" || ev[0].Type != "arrived" || !strings.Contains(ev[0].PayloadJSON, `"n"`) {
		t.Fatalf("event as received: %+v", ev[0])
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestLaterEventWaitsWhileAnEarlierOneIsHeld: an earlier event of the
// parcel locked by another relay holds the later ones back; other parcels
// go on.
func TestLaterEventWaitsWhileAnEarlierOneIsHeld(t *testing.T) {
	w := newWorld(t)
	held, free := w.parcel(), w.parcel()
	w.record("SG-H01", held, "arrived")
	w.record("SG-H01", held, "sorted")
	w.record("SG-H01", free, "arrived")

	ctx := context.Background()
	other, err := w.db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Rollback(ctx) }()
	if _, err := other.Exec(ctx, `SELECT id FROM tracking_outbox WHERE tracking_no = $1 ORDER BY id LIMIT 1 FOR UPDATE`, held); err != nil {
		t.Fatal(err)
	}
	r := w.relay(relay.Config{})
	res, err := r.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Claimed != 2 || res.Delivered != 1 {
		t.Fatalf("with the first event held: %+v", res)
	}
	if got := w.received(held); len(got) != 0 {
		t.Fatalf("later event delivered while an earlier one was held: %v", got)
	}
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	drain(t, r)
	w.checkDelivered([]string{held, free})
}

// TestTwoInstancesDeliverExactlyOnceInParcelOrder runs two relays, each
// with its own pool and clients as two instances would, while writers keep
// adding events; every event arrives once, in order per parcel.
func TestTwoInstancesDeliverExactlyOnceInParcelOrder(t *testing.T) {
	w := newWorld(t)
	const parcels, steps = 60, 5
	nos := make([]string, parcels)
	for i := range nos {
		nos[i] = w.parcel()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var relays sync.WaitGroup
	for range 2 {
		r := w.relay(relay.Config{BatchSize: 25, Workers: 2})
		relays.Go(func() { r.Run(ctx) })
	}
	// Writers: each parcel's steps in order, parcels interleaved by four
	// concurrent writers.
	var writers sync.WaitGroup
	types := []string{"arrived", "sorted", "bagged", "bag_sealed", "departed"}
	for g := range 4 {
		writers.Go(func() {
			for s := range steps {
				for i := g; i < parcels; i += 4 {
					if err := record(context.Background(), w.db, "SG-H01", nos[i], w.seq.Add(1), types[s]); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	writers.Wait()
	waitFor(t, "the outbox to drain", func() bool {
		return w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`) == 0
	})
	cancel()
	relays.Wait()
	w.checkDelivered(nos)
	accepted, dups := w.sim.EventTotals()
	if accepted != parcels*steps {
		t.Fatalf("order center accepted %d events, want %d", accepted, parcels*steps)
	}
	t.Logf("accepted %d, duplicates %d", accepted, dups)
}

// TestOrderCenterDownThenBack: while the order center is unavailable
// nothing is lost and no attempts are burnt; when it is back the backlog
// drains in order.
func TestOrderCenterDownThenBack(t *testing.T) {
	w := newWorld(t)
	if err := w.sim.SetFault("PushTrackingEvents", sim.Fault{ErrorRate: 1, Code: codes.Unavailable}); err != nil {
		t.Fatal(err)
	}
	var nos []string
	for range 30 {
		no := w.parcel()
		nos = append(nos, no)
		w.record("SG-H01", no, "arrived")
		w.record("SG-H01", no, "sorted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := w.relay(relay.Config{BatchSize: 16, MaxAttempts: 2})
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()

	waitFor(t, "the relay to try a few times", func() bool { return w.sim.Calls("PushTrackingEvents") >= 3 })
	if n := w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'pending' OR attempts <> 0`); n != 0 {
		t.Fatalf("%d rows changed while the order center was down", n)
	}
	// More work arrives during the outage.
	for _, no := range nos {
		w.record("SG-H01", no, "bagged")
	}
	if err := w.sim.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the backlog to drain", func() bool {
		return w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`) == 0
	})
	cancel()
	<-done
	w.checkDelivered(nos)
}

// TestDeadLetterAndRedrive: failures that are not unavailability count
// attempts; after max_attempts the event is dead, holds its parcel's later
// events back, and a re-drive delivers both in order.
func TestDeadLetterAndRedrive(t *testing.T) {
	w := newWorld(t)
	no, other := w.parcel(), w.parcel()
	w.record("SG-H01", no, "arrived")
	w.record("SG-H01", other, "arrived")
	if err := w.sim.SetFault("PushTrackingEvents", sim.Fault{ErrorRate: 1, Code: codes.Internal}); err != nil {
		t.Fatal(err)
	}
	r := w.relay(relay.Config{MaxAttempts: 3})
	outbox := workorder.NewOutbox(w.db)
	waitFor(t, "both events to go dead", func() bool {
		if _, err := r.RunOnce(context.Background()); err != nil {
			t.Fatal(err)
		}
		return w.count(`SELECT count(*) FROM tracking_outbox WHERE status = 'dead'`) == 2
	})
	dead, err := outbox.Dead(context.Background(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dead) != 2 || dead[0].Attempts != 3 || dead[0].TrackingNo != no || !strings.Contains(dead[0].LastError, "Internal") {
		t.Fatalf("dead: %+v", dead)
	}
	st, err := outbox.Stats(context.Background())
	if err != nil || st.Dead != 2 || st.Pending != 0 {
		t.Fatalf("stats %+v %v", st, err)
	}

	// The order center is fine again; a later event of the dead event's
	// parcel must wait for it.
	if err := w.sim.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	w.record("SG-H01", no, "sorted")
	drain(t, r)
	if got := w.received(no); len(got) != 0 {
		t.Fatalf("delivered past a dead event: %v", got)
	}
	st, _ = outbox.Stats(context.Background())
	if st.Pending != 1 || st.OldestPendingAt == nil {
		t.Fatalf("stats %+v", st)
	}

	e, redriven, err := outbox.Retry(context.Background(), dead[0].ID, "ops-1")
	if err != nil || !redriven || e.Status != "pending" || e.Attempts != 0 || e.RedrivenBy != "ops-1" {
		t.Fatalf("retry: %+v %v %v", e, redriven, err)
	}
	_, redriven, err = outbox.Retry(context.Background(), dead[0].ID, "ops-1")
	if err != nil || redriven {
		t.Fatalf("second retry: %v %v", redriven, err)
	}
	_, _, err = outbox.Retry(context.Background(), 1<<40, "ops-1")
	if !errorsIs(err, workorder.ErrEventNotFound) {
		t.Fatalf("retry of a missing row: %v", err)
	}
	drain(t, r)
	w.checkDelivered([]string{no})
	if got := w.received(other); len(got) != 0 {
		t.Fatal("the other dead event was delivered without a re-drive")
	}
}

func TestRejectedEventIsDeadAtOnce(t *testing.T) {
	w := newWorld(t)
	no := w.parcel()
	w.record("", no, "arrived") // no station: the order center rejects it
	r := w.relay(relay.Config{MaxAttempts: 5})
	res := drain(t, r)
	if res.Dead != 1 || res.Delivered != 0 {
		t.Fatalf("%+v", res)
	}
	dead, err := workorder.NewOutbox(w.db).Dead(context.Background(), 0, 10)
	if err != nil || len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, "station_id") {
		t.Fatalf("%+v %v", dead, err)
	}
}

// TestShutdownFinishesOrReleasesTheBatch: cancelling Run while a push is in
// flight leaves every row delivered (and recorded by the order center) or
// pending and unlocked.
func TestShutdownFinishesOrReleasesTheBatch(t *testing.T) {
	w := newWorld(t)
	var nos []string
	for range 50 {
		no := w.parcel()
		nos = append(nos, no)
		w.record("SG-H01", no, "arrived")
	}
	if err := w.sim.SetFault("PushTrackingEvents", sim.Fault{AddedLatency: 300 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	r := w.relay(relay.Config{BatchSize: 10})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	waitFor(t, "a push in flight", func() bool { return w.sim.Calls("PushTrackingEvents") >= 1 })
	cancel()
	<-done

	delivered := w.count(`SELECT count(*) FROM tracking_outbox WHERE status = 'delivered'`)
	if delivered == 0 {
		t.Fatal("the batch in flight was not finished")
	}
	if n := w.count(`SELECT count(*) FROM tracking_outbox WHERE status = 'pending'`); n+delivered != 50 {
		t.Fatalf("%d delivered + %d pending != 50", delivered, n)
	}
	// Nothing is left locked: another instance can claim the rest at once.
	if err := w.sim.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	drain(t, w.relay(relay.Config{}))
	w.checkDelivered(nos)
}

func TestOutboxStatsOnAnEmptyOutbox(t *testing.T) {
	st, err := workorder.NewOutbox(dbtest.Pool(t)).Stats(context.Background())
	if err != nil || st.Pending != 0 || st.Dead != 0 || st.OldestPendingAt != nil || st.OldestPendingAgeSeconds != 0 {
		t.Fatalf("%+v %v", st, err)
	}
}

// TestBatchLargerThanOnePushIsChunked: the order center takes at most
// 1,000 events per call; a bigger batch goes out in consecutive chunks.
func TestBatchLargerThanOnePushIsChunked(t *testing.T) {
	w := newWorld(t)
	w.fill(t, 1500)
	r := w.relay(relay.Config{BatchSize: 1500})
	res, err := r.RunOnce(context.Background())
	if err != nil || res.Delivered != 1500 {
		t.Fatalf("%+v %v", res, err)
	}
	if n := w.sim.Calls("PushTrackingEvents"); n != 2 {
		t.Fatalf("%d pushes, want 2", n)
	}
}

// TestPermanentPushErrorIsDeadAtOnce: a push the order center refuses as
// such (InvalidArgument, FailedPrecondition) goes dead on its first
// attempt with the error in last_error, not after max_attempts retries;
// a bulk re-drive, once the cause is fixed, delivers it.
func TestPermanentPushErrorIsDeadAtOnce(t *testing.T) {
	for _, code := range []codes.Code{codes.InvalidArgument, codes.FailedPrecondition} {
		t.Run(code.String(), func(t *testing.T) {
			w := newWorld(t)
			no := w.parcel()
			w.record("SG-H01", no, "arrived")
			if err := w.sim.SetFault("PushTrackingEvents", sim.Fault{ErrorRate: 1, Code: code}); err != nil {
				t.Fatal(err)
			}
			r := w.relay(relay.Config{MaxAttempts: 10})
			res, err := r.RunOnce(context.Background())
			if err != nil || res.Dead != 1 || res.Failed != 0 {
				t.Fatalf("%+v %v", res, err)
			}
			outbox := workorder.NewOutbox(w.db)
			dead, err := outbox.Dead(context.Background(), 0, 10)
			if err != nil || len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, code.String()) {
				t.Fatalf("dead %+v %v", dead, err)
			}
			if err := w.sim.ClearFaults(""); err != nil {
				t.Fatal(err)
			}
			n, err := outbox.RedriveDead(context.Background(), workorder.OpsAction{Actor: "ops-1", Reason: "order center fixed"})
			if err != nil || n != 1 {
				t.Fatalf("re-drive: %d %v", n, err)
			}
			drain(t, r)
			w.checkDelivered([]string{no})
			audit, err := outbox.Audit(context.Background(), 10)
			if err != nil || len(audit) != 1 || audit[0].Action != "redrive" || audit[0].Actor != "ops-1" ||
				audit[0].Changed != 1 || audit[0].EventIDs != nil || audit[0].Reason != "order center fixed" {
				t.Fatalf("audit %+v %v", audit, err)
			}
		})
	}
}

// TestFailingEventShowsItsErrorAndRetriesNowOnRequest: a transient
// failure leaves the event pending with its error visible to ops; "retry
// now" makes it due without waiting out its backoff, audited.
func TestFailingEventShowsItsErrorAndRetriesNowOnRequest(t *testing.T) {
	w := newWorld(t)
	no, other := w.parcel(), w.parcel()
	w.record("SG-H01", no, "arrived")
	if err := w.sim.SetFault("PushTrackingEvents", sim.Fault{ErrorRate: 1, Code: codes.Internal}); err != nil {
		t.Fatal(err)
	}
	r := w.relay(relay.Config{MaxAttempts: 10, BaseBackoff: time.Hour, MaxBackoff: time.Hour})
	if res, err := r.RunOnce(context.Background()); err != nil || res.Failed != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	outbox := workorder.NewOutbox(w.db)
	failing, err := outbox.Pending(context.Background(), 0, 10, true)
	if err != nil || len(failing) != 1 || failing[0].Attempts != 1 || !strings.Contains(failing[0].LastError, "Internal") ||
		!failing[0].NextAttemptAt.After(time.Now().Add(10*time.Minute)) {
		t.Fatalf("failing %+v %v", failing, err)
	}
	if st, err := outbox.Stats(context.Background()); err != nil || st.Failing != 1 || st.Pending != 1 {
		t.Fatalf("stats %+v %v", st, err)
	}
	if err := w.sim.ClearFaults(""); err != nil {
		t.Fatal(err)
	}
	w.record("SG-H01", other, "arrived") // due now: not touched by retry now
	if res, _ := r.RunOnce(context.Background()); res.Delivered != 1 {
		t.Fatalf("the other parcel: %+v", res)
	}
	if res, _ := r.RunOnce(context.Background()); res.Claimed != 0 {
		t.Fatalf("the failed event went before its backoff: %+v", res)
	}
	n, err := outbox.RetryNow(context.Background(), workorder.OpsAction{Actor: "ops-1", IDs: []int64{failing[0].ID}})
	if err != nil || n != 1 {
		t.Fatalf("retry now: %d %v", n, err)
	}
	if res, _ := r.RunOnce(context.Background()); res.Delivered != 1 {
		t.Fatalf("after retry now: %+v", res)
	}
	w.checkDelivered([]string{no, other})
	if n, err := outbox.RetryNow(context.Background(), workorder.OpsAction{Actor: "ops-1"}); err != nil || n != 0 {
		t.Fatalf("second retry now: %d %v", n, err)
	}
	audit, err := outbox.Audit(context.Background(), 10)
	if err != nil || len(audit) != 2 || audit[1].Action != "retry_now" || audit[1].Changed != 1 ||
		len(audit[1].EventIDs) != 1 || audit[0].Changed != 0 || audit[0].EventIDs != nil {
		t.Fatalf("audit %+v %v", audit, err)
	}
}

// TestUnknownStoredTypeIsDeadWithAClearError: an outbox row whose type is
// none of the station's event types (written by hand, by a newer version)
// is never sent as UNSPECIFIED: it is dead at once with a reason naming the
// type, its parcel's later events wait behind it, other parcels go on.
func TestUnknownStoredTypeIsDeadWithAClearError(t *testing.T) {
	w := newWorld(t)
	no, other := w.parcel(), w.parcel()
	w.record("SG-H01", no, "arrived")
	if _, err := w.db.Exec(context.Background(), `UPDATE tracking_outbox SET type = 'teleported' WHERE tracking_no = $1`, no); err != nil {
		t.Fatal(err)
	}
	w.record("SG-H01", no, "sorted")
	w.record("SG-H01", other, "arrived")
	r := w.relay(relay.Config{MaxAttempts: 10})
	res := drain(t, r)
	if res.Dead != 1 || res.Delivered != 1 {
		t.Fatalf("%+v", res)
	}
	dead, err := workorder.NewOutbox(w.db).Dead(context.Background(), 0, 10)
	if err != nil || len(dead) != 1 || dead[0].Attempts != 1 || !strings.Contains(dead[0].LastError, `unknown tracking event type "teleported"`) {
		t.Fatalf("dead %+v %v", dead, err)
	}
	if got := w.received(no); len(got) != 0 {
		t.Fatalf("the order center got %v", got)
	}
	w.checkDelivered([]string{other})
}
