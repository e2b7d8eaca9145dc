package decisionlog_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt"
	"github.com/expresshub/station/sorting/belt/decisionlog"
)

// A full buffer drops the record and counts it, at once: the belt never
// waits for the writer. What was buffered is still written.
func TestFullBufferDropsAndCountsInsteadOfBlocking(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	reg := prometheus.NewRegistry()
	r := decisionlog.New(db, decisionlog.Config{Buffer: 2, Registerer: reg})
	received := time.Now()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 5 {
			r.Decided("SG-H01", "asm1", received, time.Time{}, belt.Decision{TrackingNo: "SG100000000" + string(rune('0'+i)),
				Source: belt.FromPresort, Chute: 3})
		}
	}()
	<-done // a blocked Decided would hang here, and the test with it
	if got := counterOf(t, reg, "station_belt_decision_records_dropped_total", "buffer_full"); got != 3 {
		t.Fatalf("dropped %v, want 3", got)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM belt_decisions`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows written (%v), want the 2 buffered", n, err)
	}
}

// counterOf reads one labelled series of a counter vector in reg.
func counterOf(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetValue() == label {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

// seriesOf counts the series of a metric in reg.
func seriesOf(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// Lateness is the answer against the deadline less the safety margin (the
// default budget without a deadline), or the belt's own NOT_DECIDED_IN_TIME.
func TestLatenessIsJudgedAgainstTheDeadlineLessTheMargin(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	reg := prometheus.NewRegistry()
	r := decisionlog.New(db, decisionlog.Config{SafetyMargin: 20 * time.Millisecond, DefaultBudget: 150 * time.Millisecond, Registerer: reg})
	now := time.Now()
	d := func(tn string, src belt.DecisionSource, reason string) belt.Decision {
		return belt.Decision{TrackingNo: tn, Source: src, ReasonCode: reason}
	}
	// Received a second ago with a deadline 10 s after: on time.
	r.Decided("SG-H01", "asm1", now.Add(-time.Second), now.Add(9*time.Second), d("SG1000000001", belt.FromOnTheFly, ""))
	// Received a second ago with no deadline: the default budget is blown.
	r.Decided("SG-H01", "asm1", now.Add(-time.Second), time.Time{}, d("SG1000000002", belt.FromOnTheFly, ""))
	// Received a second ago, deadline 15 ms later (less the margin): late.
	r.Decided("SG-H01", "asm1", now.Add(-time.Second), now.Add(-time.Second+15*time.Millisecond), d("SG1000000003", belt.FromPresort, ""))
	// In time, but the belt said it could not decide in time.
	r.Decided("SG-H01", "asm2", now, now.Add(time.Minute), d("SG1000000004", belt.FromFallback, sorting.ReasonNotDecidedInTime))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(context.Background(), `SELECT tracking_no, late FROM belt_decisions ORDER BY tracking_no`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	want := map[string]bool{"SG1000000001": false, "SG1000000002": true, "SG1000000003": true, "SG1000000004": true}
	seen := 0
	for rows.Next() {
		var tn string
		var late bool
		if err := rows.Scan(&tn, &late); err != nil {
			t.Fatal(err)
		}
		if want[tn] != late {
			t.Fatalf("%s late %v, want %v", tn, late, want[tn])
		}
		seen++
	}
	if seen != 4 {
		t.Fatalf("%d rows, want 4", seen)
	}
	if got := seriesOf(t, reg, "station_belt_late_decisions_total"); got != 3 {
		t.Fatalf("%d late series, want 3 (asm1 on_the_fly, asm1 presorted, asm2 fallback)", got)
	}
}

// On shutdown the flusher writes what is buffered and returns; the
// goroutine leak check of TestMain holds it to that.
func TestFlusherWritesTheRestAndStopsOnShutdown(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	r := decisionlog.New(db, decisionlog.Config{FlushEvery: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(ctx) })
	r.Decided("SG-H01", "asm1", time.Now(), time.Time{}, belt.Decision{TrackingNo: "SG1000000001", Source: belt.FromPresort})
	cancel()
	wg.Wait()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM belt_decisions`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows after shutdown (%v), want 1", n, err)
	}
}
