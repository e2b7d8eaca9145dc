package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/workorder"
)

// fill writes n events for n distinct parcels, 1,000 per work order, the
// way a handover close writes its "departed" events.
func (w *world) fill(tb testing.TB, n int) {
	tb.Helper()
	ctx := context.Background()
	for done := 0; done < n; {
		k := min(1000, n-done)
		o := workorder.Order{ID: workorder.NewID(), StationID: "SG-H01", Type: "bench",
			Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op-1"}, ScanID: fmt.Sprintf("fill-%d", w.seq.Add(1)),
			RequestHash: []byte{1}, Outcome: "ok", Response: []byte("{}")}
		for range k {
			o.Events = append(o.Events, workorder.Event{TrackingNo: w.parcel(), Type: workorder.EventDeparted,
				Payload: map[string]any{"bag_id": "BGSGH01X000001", "next_hop": "SG-H02"}})
		}
		if _, err := workorder.Commit[json.RawMessage](ctx, w.db, o, nil); err != nil {
			tb.Fatal(err)
		}
		done += k
	}
}

// BenchmarkRelayThroughput drains 20,000 events per iteration to the
// simulator's order center over loopback gRPC (zero latency profile) and
// reports events/s. Goal: 20,000/s on the 2-core machine.
func BenchmarkRelayThroughput(b *testing.B) {
	const perIter = 20_000
	for _, tc := range []struct{ batch, workers int }{{500, 1}, {1000, 2}, {1000, 4}} {
		b.Run(fmt.Sprintf("batch=%d/workers=%d", tc.batch, tc.workers), func(b *testing.B) {
			w := newWorld(b)
			r := w.relay(relay.Config{BatchSize: tc.batch})
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				w.fill(b, perIter)
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for range tc.workers {
					wg.Go(func() {
						for {
							res, err := r.RunOnce(context.Background())
							if err != nil {
								b.Error(err)
								return
							}
							if res.Claimed == 0 {
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed += time.Since(start)
			}
			if n := w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`); n != 0 {
				b.Fatalf("%d events left", n)
			}
			b.ReportMetric(float64(perIter*b.N)/elapsed.Seconds(), "events/s")
		})
	}
}

// BenchmarkOutboxLag measures how long an event waits in the outbox under
// a steady write load (about 2,000 events/s from 4 writers, one event per
// work order like single scans) with the relay running as in serve.
func BenchmarkOutboxLag(b *testing.B) {
	w := newWorld(b)
	r := w.relay(relay.Config{BatchSize: 500, Interval: 50 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	const writers, perWriter = 4, 500 // per iteration: 2,000 events over about a second
	for b.Loop() {
		var wg sync.WaitGroup
		for range writers {
			wg.Go(func() {
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				for range perWriter {
					<-tick.C
					if err := record(context.Background(), w.db, "SG-H01", w.parcel(), w.seq.Add(1), "sorted"); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	waitFor(b, "the outbox to drain", func() bool {
		return w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`) == 0
	})
	cancel()
	<-done
	rows, err := w.db.Query(context.Background(),
		`SELECT extract(epoch FROM delivered_at - occurred_at) * 1000 FROM tracking_outbox`)
	if err != nil {
		b.Fatal(err)
	}
	var lags []float64
	for rows.Next() {
		var ms float64
		if err := rows.Scan(&ms); err != nil {
			b.Fatal(err)
		}
		lags = append(lags, ms)
	}
	rows.Close()
	sort.Float64s(lags)
	b.ReportMetric(lags[len(lags)/2], "lag-p50-ms")
	b.ReportMetric(lags[len(lags)*99/100], "lag-p99-ms")
}

// BenchmarkRelaySinkThroughput is BenchmarkRelayThroughput (batch 1000, 2
// workers) for each sink: the order center over gRPC, JetStream on the
// real server, Kafka on kfake. Delivered means acknowledged by the sink;
// the simulated order center consumes the brokers meanwhile.
func BenchmarkRelaySinkThroughput(b *testing.B) {
	const perIter, workers = 20_000, 2
	for _, mk := range []func(*world) sink{(*world).grpcSink, (*world).jetStreamSink, (*world).kafkaSink} {
		w := newWorld(b)
		s := mk(w)
		b.Run("sink="+s.name, func(b *testing.B) {
			r := w.relayTo(s.pusher(), relay.Config{BatchSize: 1000})
			var elapsed time.Duration
			for b.Loop() {
				b.StopTimer()
				w.fill(b, perIter)
				b.StartTimer()
				start := time.Now()
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for {
							res, err := r.RunOnce(context.Background())
							if err != nil {
								b.Error(err)
								return
							}
							if res.Claimed == 0 {
								return
							}
						}
					})
				}
				wg.Wait()
				elapsed += time.Since(start)
			}
			if n := w.count(`SELECT count(*) FROM tracking_outbox WHERE status <> 'delivered'`); n != 0 {
				b.Fatalf("%d events left", n)
			}
			b.ReportMetric(float64(perIter*b.N)/elapsed.Seconds(), "events/s")
		})
	}
}
