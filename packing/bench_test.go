package packing_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/workorder"
)

// presort records n new parcels as sorted to nextHop, in two COPYs: their
// sort results and their state at the station (a bag takes only a parcel
// sorted there), as the sort's work orders would have left them.
func (e *env) presort(tb testing.TB, n int, nextHop string) []string {
	tb.Helper()
	parcels := make([]string, n)
	results, states := make([][]any, n), make([][]any, n)
	now := time.Now().UTC()
	for i := range parcels {
		parcels[i] = e.parcel()
		id := workorder.NewID()
		results[i] = []any{id, station, parcels[i], nextHop, int32(4), "bench", int32(1)}
		states[i] = []any{station, parcels[i], int32(1), string(workorder.StateSorted), nextHop, int32(4), id, now, id, now}
	}
	ctx := context.Background()
	if _, err := e.db.CopyFrom(ctx, pgx.Identifier{"sort_results"},
		[]string{"id", "station_id", "tracking_no", "next_hop", "chute", "flow", "flow_version"}, pgx.CopyFromRows(results)); err != nil {
		tb.Fatal(err)
	}
	if _, err := e.db.CopyFrom(ctx, pgx.Identifier{"parcel_states"},
		[]string{"station_id", "tracking_no", "visit", "state", "next_hop", "chute", "work_order_id", "visit_started_at",
			"visit_work_order_id", "updated_at"}, pgx.CopyFromRows(states)); err != nil {
		tb.Fatal(err)
	}
	return parcels
}

// BenchmarkAddItem measures parcel scans into bags from 8 concurrent
// operators: into one bag (every add waits for the bag's row lock) and
// spread over 16 bags (the usual case: one bag per next hop and chute).
// Each add is one transaction with its work order and tracking event.
func BenchmarkAddItem(b *testing.B) {
	for _, bags := range []int{1, 16} {
		b.Run(fmt.Sprintf("bags=%d", bags), func(b *testing.B) {
			e := newEnv(b)
			ids := make([]string, bags)
			for i := range ids {
				ids[i] = e.open(hop).ID
			}
			parcels := e.presort(b, b.N, hop)
			var next atomic.Int64
			b.SetParallelism(4) // 4 x GOMAXPROCS goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := next.Add(1) - 1
					if _, err := e.svc.AddItem(context.Background(), e.op, ids[k%int64(bags)], parcels[k], fmt.Sprintf("b-%d", k)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "adds/s")
		})
	}
}

// BenchmarkBagCycle measures a whole bag: open (container service over
// loopback gRPC), 20 adds, seal with 20 bag_sealed events.
func BenchmarkBagCycle(b *testing.B) {
	e := newEnv(b)
	const perBag = 20
	parcels := e.presort(b, b.N*perBag, hop)
	b.ResetTimer()
	i := 0
	for range b.N {
		bag := e.open(hop)
		for range perBag {
			e.add(bag.ID, parcels[i])
			i++
		}
		if _, err := e.svc.Seal(context.Background(), e.op, bag.ID, 5000, e.scan()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "bags/s")
}
