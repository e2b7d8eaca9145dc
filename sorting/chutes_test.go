package sorting

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/migrations/dbtest"
)

// The belt reads the chute map on every parcel: once a map has been read,
// PostgreSQL going away must not take it from the belt.
func TestChuteStoreKeepsTheLastGoodMapWhilePostgresIsOut(t *testing.T) {
	db := dbtest.Pool(t)
	ctx := context.Background()
	s := NewChuteStore(db, time.Second)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	want := NumberedChuteMap([]string{"SG-L01", "SG-L02"})
	if _, err := s.Put(ctx, "SG-H01", want, 0, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "SG-H01"); err != nil {
		t.Fatal(err)
	}

	db.Close() // PostgreSQL is gone: every load fails at once
	for i := range 3 {
		clock = clock.Add(time.Minute) // long past the TTL
		got, err := s.Get(ctx, "SG-H01")
		if err != nil {
			t.Fatalf("Get %d with PostgreSQL out: %v, want the last good map", i, err)
		}
		if got.RejectChute != want.RejectChute || got.NextHops["SG-L02"][0] != want.NextHops["SG-L02"][0] {
			t.Fatalf("Get %d: %+v, want %+v", i, got.ChuteMap, want)
		}
		waitForRefresh(t, s, "SG-H01")
	}
	// A station never read has nothing to fall back on: an error, not a
	// made-up map.
	if _, err := s.Get(ctx, "SG-H02"); err == nil {
		t.Fatal("a map never read answered with PostgreSQL out")
	}
}

// A hung database (the link frozen, not refused) must not hold a caller
// that has a map to answer with, nor one without past its own deadline.
func TestChuteStoreNeverWaitsForAHungDatabase(t *testing.T) {
	s := NewChuteStore(hungPool(t), time.Second)
	m := StoredChuteMap{StationID: "SG-H01", Version: 3, ChuteMap: NumberedChuteMap([]string{"SG-L01"})}
	s.cache["SG-H01"] = cachedMap{m: m, fetched: time.Now().Add(-time.Hour)}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got, err := s.Get(ctx, "SG-H01")
	if err != nil || got.Version != 3 {
		t.Fatalf("stale map with the database hung: %+v, %v; want version 3 at once", got, err)
	}

	// Without a map the caller waits for the load, but only as long as it
	// is willing to: cancelling it ends the wait, the shared load runs on.
	errc := make(chan error, 1)
	go func() {
		_, err := s.Get(ctx, "SG-H02")
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Get without a map, caller cancelled: %v, want context.Canceled", err)
	}
}

// waitForRefresh waits until no load of station is in flight.
func waitForRefresh(t *testing.T, s *ChuteStore, station string) {
	t.Helper()
	<-s.loads.DoChan(station, func() (any, error) { return nil, nil })
}

// hungPool is a pool whose server accepts connections and never answers:
// a PostgreSQL behind a frozen link.
func hungPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), "postgres://station@"+lis.Addr().String()+"/station?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() { // before the pool closes: its connects fail now
		_ = lis.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
	})
	return pool
}
