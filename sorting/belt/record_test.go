package belt

import (
	"context"
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/workorder"
)

// A manual sort always leaves a tombstone (a belt sort already running
// must not store its older answer), but spreads it through Redis only when
// the parcel had a belt answer that a cache may hold.
func TestManualSortSpreadsTheBeltInvalidationOnlyForAParcelWithAnAnswer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	s := simtest.Start(t, simtest.WithZeroLatency())
	rdb, prefix := dbtest.Redis(t)
	b, svc := newTestStation(t, db, s, rdb, prefix)
	hash := prefix + "belt:presort:SG-H01"
	scan := func(tn ident.TrackingNo, id string) sorting.Scan {
		return sorting.Scan{StationID: "SG-H01", TrackingNo: string(tn), ScanID: id, Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: "op1"}}
	}
	state := func(tn ident.TrackingNo) (tomb, pending bool) {
		t.Helper()
		if err := db.QueryRow(ctx, `SELECT invalidated_at >= sorted_at, redis_pending FROM presort_results
			WHERE station_id = 'SG-H01' AND tracking_no = $1`, string(tn)).Scan(&tomb, &pending); err != nil {
			t.Fatal(err)
		}
		return tomb, pending
	}

	fresh := ident.TrackingNo(sim.ViaStation("SG-H01", 0))
	if _, err := svc.Sort(ctx, scan(fresh, "m-1"), sorting.SortOptions{}); err != nil {
		t.Fatal(err)
	}
	if tomb, pending := state(fresh); !tomb || pending {
		t.Fatalf("never pre-sorted: tombstone %v, pending %v; want a tombstone, nothing to spread", tomb, pending)
	}
	if err := rdb.HGet(ctx, hash, string(fresh)).Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("Redis was written for a parcel it never held: %v", err)
	}
	// The tombstone still refuses a belt sort that started before the
	// manual one and stores after it.
	var sortedAt int64
	if err := db.QueryRow(ctx, `SELECT (extract(epoch FROM invalidated_at) * 1000)::bigint FROM presort_results WHERE tracking_no = $1`,
		string(fresh)).Scan(&sortedAt); err != nil {
		t.Fatal(err)
	}
	stale := entry{NextHop: "SG-L01", Flow: "full", Version: 1, Source: sourceOnTheFly, SortedAt: sortedAt - 5, Expires: sortedAt + 3_600_000}
	if kept, err := b.store(ctx, "SG-H01", []keyedEntry{{fresh, stale}}); err != nil || len(kept) != 0 {
		t.Fatalf("an older belt answer was stored over the manual sort: %v %v", kept, err)
	}

	presorted := ident.TrackingNo(sim.ViaStation("SG-H01", 1))
	if _, _, err := b.PreSort(ctx, "SG-H01", []string{string(presorted)}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Sort(ctx, scan(presorted, "m-2"), sorting.SortOptions{}); err != nil {
		t.Fatal(err)
	}
	if tomb, pending := state(presorted); !tomb || pending {
		t.Fatalf("pre-sorted: tombstone %v, pending %v; want a tombstone, spread", tomb, pending)
	}
	if v, err := rdb.HGet(ctx, hash, string(presorted)).Result(); err != nil || v[0] != '!' {
		t.Fatalf("Redis still holds the pre-sort: %q %v", v, err)
	}
}
