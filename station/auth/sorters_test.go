package auth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/expresshub/station/migrations/dbtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// pgtestdb's pools are closed at cleanup, after goleak's check of a test.
		goleak.IgnoreTopFunction("github.com/jackc/pgx/v5/pgxpool.(*Pool).backgroundHealthCheck"),
		goleak.IgnoreTopFunction("database/sql.(*DB).connectionOpener"),
	)
}

// keyLookups counts the sorter key lookups that reach PostgreSQL.
type keyLookups struct{ n atomic.Int64 }

func (k *keyLookups) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	if len(d.Args) == 1 && d.SQL == `SELECT id, station_id FROM sorters WHERE key_hash = $1 AND active` {
		k.n.Add(1)
	}
	return ctx
}
func (k *keyLookups) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func sortersWithCount(t *testing.T, ttl time.Duration) (*Sorters, *keyLookups) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	k := &keyLookups{}
	cfg.ConnConfig.Tracer = k
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return NewSorters(pool, ttl), k
}

// A belt's calls arrive together: when a key is not cached, the calls in
// flight share one database lookup instead of each making its own.
func TestConcurrentCallsWithAnUncachedKeyShareOneLookup(t *testing.T) {
	s, lookups := sortersWithCount(t, time.Minute)
	ctx := context.Background()
	key, err := s.AddSorter(ctx, Sorter{ID: "asm1", StationID: "SG-H01"})
	if err != nil {
		t.Fatal(err)
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			<-start
			if p, err := s.AuthenticateSorter(ctx, key); err != nil || p.ID != "asm1" {
				t.Errorf("authenticate: %+v %v", p, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := lookups.n.Load(); n != 1 {
		t.Fatalf("50 concurrent calls made %d lookups, want 1", n)
	}
}

// A key in use is looked up again in the background once half its TTL has
// passed, so no call waits for the database; a revocation still shows within
// the TTL.
func TestAKeyInUseIsRefreshedAheadAndARevocationStillShows(t *testing.T) {
	const ttl = time.Minute
	s, lookups := sortersWithCount(t, ttl)
	var mu sync.Mutex
	clock := time.Now()
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	ctx := context.Background()
	key, err := s.AddSorter(ctx, Sorter{ID: "asm1", StationID: "SG-H01"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateSorter(ctx, key); err != nil {
		t.Fatal(err)
	}
	waitLookups := func(want int64) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); lookups.n.Load() < want; {
			if time.Now().After(deadline) {
				t.Fatalf("%d lookups, want %d", lookups.n.Load(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitLookups(1)

	advance(ttl/2 + time.Second)
	if _, err := s.AuthenticateSorter(ctx, key); err != nil {
		t.Fatalf("a key past half its TTL: %v", err)
	}
	waitLookups(2) // the refresh, in the background

	if err := s.RevokeSorter(ctx, "asm1"); err != nil {
		t.Fatal(err)
	}
	advance(ttl/2 + time.Second)
	// Still within the TTL of the refreshed entry: answered from memory,
	// and refreshed again, which finds the revocation.
	if _, err := s.AuthenticateSorter(ctx, key); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	waitLookups(3)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		_, err := s.AuthenticateSorter(ctx, key)
		if errors.Is(err, ErrUnauthenticated) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the revoked key still works: %v", err)
		}
	}
}

// A key that worked and cannot be checked again, PostgreSQL being out of
// reach, keeps working: the belt must not stop because its key's cache
// entry ran out during an outage. A key never seen is still refused.
func TestAGoodKeyKeepsWorkingWhilePostgresIsOut(t *testing.T) {
	const ttl = time.Minute
	s, _ := sortersWithCount(t, ttl)
	var mu sync.Mutex
	clock := time.Now()
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); clock = clock.Add(d); mu.Unlock() }
	ctx := context.Background()
	key, err := s.AddSorter(ctx, Sorter{ID: "asm1", StationID: "SG-H01"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.AddSorter(ctx, Sorter{ID: "asm2", StationID: "SG-H01"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AuthenticateSorter(ctx, key); err != nil {
		t.Fatal(err)
	}

	s.db.Close() // PostgreSQL is gone: every lookup fails at once
	for i := range 3 {
		advance(ttl + time.Second)
		p, err := s.AuthenticateSorter(ctx, key)
		if err != nil || p.ID != "asm1" {
			t.Fatalf("check %d with PostgreSQL out: %+v, %v; want asm1", i, p, err)
		}
	}
	if _, err := s.AuthenticateSorter(ctx, other); err == nil || errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("a key never checked, with PostgreSQL out: %v, want an error that is not ErrUnauthenticated", err)
	}
}
