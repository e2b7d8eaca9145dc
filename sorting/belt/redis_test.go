package belt

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
)

// newTestBelt builds a sorting service and its belt on a fresh database,
// a zero-latency simulator and the given Redis.
func newTestBelt(t *testing.T, db *pgxpool.Pool, s *sim.Simulator, rdb redis.UniversalClient, prefix string) *Service {
	b, _ := newTestStation(t, db, s, rdb, prefix)
	return b
}

// newTestStation is newTestBelt with the sorting service that drops the
// belt's answers on a manual sort, wired as the app wires them.
func newTestStation(t *testing.T, db *pgxpool.Pool, s *sim.Simulator, rdb redis.UniversalClient, prefix string) (*Service, *sorting.Service) {
	t.Helper()
	ctx := context.Background()
	set, err := clients.Dial(ctx, clients.DefaultConfig().WithAddr(s.Addr()), clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	chutes := sorting.NewChuteStore(db, time.Second)
	if _, err := chutes.Get(ctx, "SG-H01"); err != nil {
		if _, err := chutes.Put(ctx, "SG-H01", sorting.NumberedChuteMap(s.Fixtures().NextHops("SG-H01")), 0, "test"); err != nil {
			t.Fatal(err)
		}
	}
	flows, err := sorting.NewFlowSet(ctx, db, sorting.Clients(set), chutes)
	if err != nil {
		t.Fatal(err)
	}
	router := sorting.NewRouter(flows, chutes, nil, nil)
	b := New(router, db, rdb, Config{RedisPrefix: prefix, Parallelism: 4})
	t.Cleanup(b.Close)
	return b, sorting.NewService(db, router, nil, b)
}

// Losing Redis costs speed, never correctness: answers come from
// PostgreSQL, and an invalidation Redis missed is applied once it is back.
func TestBeltWithoutRedisAnswersFromPostgreSQLAndCatchesUpLater(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	s := simtest.Start(t, simtest.WithZeroLatency())
	good, prefix := dbtest.Redis(t)
	down := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	b := newTestBelt(t, db, s, down, prefix)

	tn := ident.TrackingNo(sim.ViaStation("SG-H01", 0))
	ds, _, err := b.PreSort(ctx, "SG-H01", []string{string(tn)})
	if err != nil || ds[0].ChuteKind != sorting.ChuteNextHop {
		t.Fatalf("pre-sort without Redis: %+v %v", ds, err)
	}
	waybills := s.Calls("GetWaybill")
	d, err := b.Resolve(ctx, "SG-H01", tn)
	if err != nil || d.Source != FromPresort || d.Chute != ds[0].Chute {
		t.Fatalf("resolve without Redis: %+v %v", d, err)
	}
	if s.Calls("GetWaybill") != waybills {
		t.Fatal("a pre-sorted parcel was sorted again")
	}

	if err := b.Invalidate(ctx, "SG-H01", tn); err != nil {
		t.Fatal(err)
	}
	var pending bool
	if err := db.QueryRow(ctx, `SELECT redis_pending FROM presort_results WHERE tracking_no = $1`, string(tn)).Scan(&pending); err != nil || !pending {
		t.Fatalf("invalidation not left pending for Redis: %v %v", pending, err)
	}
	// Redis still holds the old answer (written before it went down, as a
	// stale copy would be): the retry must replace it with the tombstone.
	old, _ := encodeEntry(entry{NextHop: d.NextHop, Flow: d.Flow, Version: d.FlowVersion, Source: sourcePresort,
		SortedAt: time.Now().Add(-time.Minute).UnixMilli(), Expires: time.Now().Add(time.Hour).UnixMilli()})
	good.HSet(ctx, prefix+"belt:presort:SG-H01", string(tn), old)

	back := newTestBelt(t, db, s, good, prefix)
	back.retryPending(ctx)
	v, err := good.HGet(ctx, prefix+"belt:presort:SG-H01", string(tn)).Result()
	if err != nil || v[0] != '!' {
		t.Fatalf("Redis after the retry: %q %v", v, err)
	}
	if err := db.QueryRow(ctx, `SELECT redis_pending FROM presort_results WHERE tracking_no = $1`, string(tn)).Scan(&pending); err != nil || pending {
		t.Fatalf("still pending after the retry: %v %v", pending, err)
	}
	if d, _ := back.Resolve(ctx, "SG-H01", tn); d.Source != FromOnTheFly {
		t.Fatalf("after the invalidation: %+v", d)
	}
}
