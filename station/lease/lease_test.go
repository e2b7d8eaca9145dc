package lease_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/lease"
	"github.com/expresshub/station/station/stationtest/linkproxy"
)

func holders(t *testing.T, db lease.DB, n int) []*lease.Holder {
	t.Helper()
	hs := make([]*lease.Holder, n)
	for i := range hs {
		hs[i] = lease.NewHolder(db, lease.Options{ID: fmt.Sprintf("instance-%d", i), Log: zaptest.NewLogger(t)})
	}
	return hs
}

// waitFor polls cond until it holds, failing the test after a generous
// deadline (a bound on waiting, not a measure of speed).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type row struct {
	holder string
	fence  int64
}

func leaseRow(t *testing.T, db *pgxpool.Pool, name string) row {
	t.Helper()
	var r row
	if err := db.QueryRow(context.Background(), `SELECT holder, fence FROM job_leases WHERE name = $1`, name).Scan(&r.holder, &r.fence); err != nil {
		t.Fatal(err)
	}
	return r
}

// forceExpire plays a holder that stopped renewing (paused, partitioned):
// its row runs out, whatever the holder believes.
func forceExpire(t *testing.T, db *pgxpool.Pool, name string) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `UPDATE job_leases SET expires_at = now() - interval '1 second' WHERE name = $1`, name); err != nil {
		t.Fatal(err)
	}
}

func TestExactlyOneContenderHoldsAndTheFenceRisesOnEveryTakeover(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	hs := holders(t, db, 3)

	var lastFence int64
	var last *lease.Lease
	for round := 1; round <= 4; round++ {
		// Every contender tries at once; exactly one may win.
		won := make([]*lease.Lease, len(hs))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, h := range hs {
			wg.Go(func() {
				<-start
				l, err := h.TryAcquire(ctx, "job", 10*time.Second)
				if err != nil && !errors.Is(err, lease.ErrNotAcquired) {
					t.Errorf("contender %d: %v", i, err)
				}
				won[i] = l
			})
		}
		close(start)
		wg.Wait()
		var winner *lease.Lease
		var who int
		for i, l := range won {
			if l == nil {
				continue
			}
			if winner != nil {
				t.Fatalf("round %d: two holders at once", round)
			}
			winner, who = l, i
		}
		if winner == nil {
			t.Fatalf("round %d: nobody acquired a free lease", round)
		}
		if winner.Fence() != lastFence+1 {
			t.Fatalf("round %d: fence %d after %d", round, winner.Fence(), lastFence)
		}
		if r := leaseRow(t, db, "job"); r.holder != hs[who].ID() || r.fence != winner.Fence() {
			t.Fatalf("round %d: row %+v, holder %s fence %d", round, r, hs[who].ID(), winner.Fence())
		}
		if last != nil && last.Context().Err() == nil {
			t.Fatal("the previous holding is still live")
		}
		// Alternate the ways a lease ends: released, or run out.
		if round%2 == 1 {
			if err := winner.Release(ctx); err != nil {
				t.Fatal(err)
			}
		} else {
			forceExpire(t, db, "job")
			t.Cleanup(func() { _ = winner.Release(ctx) })
			waitFor(t, "the expired holder to notice", func() bool { return winner.Context().Err() != nil })
		}
		lastFence, last = winner.Fence(), winner
	}
}

func TestRenewalKeepsTheLeaseAcrossSeveralTTLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	hs := holders(t, db, 2)
	const ttl = time.Second
	l, err := hs[0].TryAcquire(ctx, "job", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(ctx) }()
	// Wait, by the database's clock, for four TTLs past the acquisition;
	// the other instance must be refused all along.
	waitFor(t, "four TTLs to pass", func() bool {
		if _, err := hs[1].TryAcquire(ctx, "job", ttl); !errors.Is(err, lease.ErrNotAcquired) {
			t.Fatalf("contender got %v while the lease is renewed", err)
		}
		var passed bool
		if err := db.QueryRow(ctx, `SELECT now() - acquired_at > $2 * interval '1 microsecond' FROM job_leases WHERE name = $1`,
			"job", (4 * ttl).Microseconds()).Scan(&passed); err != nil {
			t.Fatal(err)
		}
		return passed
	})
	if err := l.Err(); err != nil {
		t.Fatalf("lease lost while renewing: %v", err)
	}
	if r := leaseRow(t, db, "job"); r.holder != hs[0].ID() || r.fence != 1 {
		t.Fatalf("row %+v", r)
	}
}

// writes is a table a job writes to under the guard.
func writesTable(t *testing.T, db *pgxpool.Pool) {
	t.Helper()
	if _, err := db.Exec(context.Background(), `CREATE TABLE job_writes (by text NOT NULL, fence bigint NOT NULL)`); err != nil {
		t.Fatal(err)
	}
}

func guardedWrite(ctx context.Context, db *pgxpool.Pool, l *lease.Lease, by string) error {
	return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if err := l.Guard(ctx, tx); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `INSERT INTO job_writes (by, fence) VALUES ($1, $2)`, by, l.Fence())
		return err
	})
}

func countWrites(t *testing.T, db *pgxpool.Pool, by string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM job_writes WHERE by = $1`, by).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAStolenLeaseCancelsTheJobAndItsGuardedWritesWriteNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	writesTable(t, db)
	reg := prometheus.NewRegistry()
	old := lease.NewHolder(db, lease.Options{ID: "old", Registerer: reg, Log: zaptest.NewLogger(t)})
	thief := lease.NewHolder(db, lease.Options{ID: "new", Log: zaptest.NewLogger(t)})

	stale, err := old.TryAcquire(ctx, "job", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stale.Release(ctx) }()
	if err := guardedWrite(stale.Context(), db, stale, "old"); err != nil {
		t.Fatalf("a write under a held lease: %v", err)
	}
	if metric(t, reg, "station_lease_held", nil) != 1 {
		t.Fatal("held gauge not set")
	}

	forceExpire(t, db, "job")
	current, err := thief.TryAcquire(ctx, "job", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = current.Release(ctx) }()
	if current.Fence() != stale.Fence()+1 {
		t.Fatalf("fence %d after %d", current.Fence(), stale.Fence())
	}

	// The stale holder may not have noticed yet; its write is refused by
	// the database all the same. A background context: the fence, not the
	// cancellation, is what stops it.
	err = guardedWrite(context.Background(), db, stale, "old")
	if !errors.Is(err, lease.ErrLeaseLost) {
		t.Fatalf("stale write: %v, want ErrLeaseLost", err)
	}
	if n := countWrites(t, db, "old"); n != 1 {
		t.Fatalf("%d rows by the stale holder, want only the one written while it held the lease", n)
	}
	select {
	case <-stale.Context().Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the stale holder's job context was not cancelled")
	}
	if !errors.Is(context.Cause(stale.Context()), lease.ErrLeaseLost) || !errors.Is(stale.Err(), lease.ErrLeaseLost) {
		t.Fatalf("cause %v", context.Cause(stale.Context()))
	}
	if metric(t, reg, "station_lease_held", nil) != 0 {
		t.Fatal("held gauge still set after the loss")
	}
	if err := guardedWrite(ctx, db, current, "new"); err != nil || countWrites(t, db, "new") != 1 {
		t.Fatalf("the new holder's write: %v", err)
	}
}

// metric is the sum of a metric's series whose labels include want.
func metric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// A guarded transaction holds the lease row: a takeover of a lease that
// ran out meanwhile waits until the write has committed.
func TestATakeoverWaitsForAGuardedWriteInFlight(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := dbtest.Pool(t)
	writesTable(t, db)
	hs := holders(t, db, 2)
	first, err := hs[0].TryAcquire(ctx, "job", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = first.Release(ctx) }()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := first.Guard(ctx, tx); err != nil {
		t.Fatal(err)
	}
	// Renewals queue behind the guard too, so the row runs out by the
	// database's clock while the write is open.
	waitFor(t, "the lease row to run out", func() bool {
		var out bool
		_ = db.QueryRow(ctx, `SELECT expires_at <= now() FROM job_leases WHERE name = 'job'`).Scan(&out)
		return out
	})
	taken := make(chan *lease.Lease, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		l, err := hs[1].TryAcquire(ctx, "job", 5*time.Second)
		if err != nil {
			t.Error(err)
		}
		taken <- l
	})
	waitFor(t, "the takeover to queue behind the guard", func() bool {
		var waiting int
		_ = db.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO job_leases%'`).Scan(&waiting)
		return waiting > 0
	})
	if _, err := tx.Exec(ctx, `INSERT INTO job_writes (by, fence) VALUES ('first', $1)`, first.Fence()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-taken:
		t.Fatal("taken over while a guarded write was in flight")
	default:
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatalf("the guarded write could not commit: %v", err)
	}
	second := <-taken
	wg.Wait()
	if second == nil {
		t.FailNow()
	}
	defer func() { _ = second.Release(ctx) }()
	if second.Fence() != first.Fence()+1 || countWrites(t, db, "first") != 1 {
		t.Fatalf("fence %d after %d", second.Fence(), first.Fence())
	}
	waitFor(t, "the first holder to notice", func() bool { return first.Context().Err() != nil })
}

func TestAnUnreachableDatabaseCancelsTheJobWithinTheTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dsn := dbtest.URL(t)
	direct := dbtest.PoolFor(t, dsn)

	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	proxy := linkproxy.New(t, net.JoinHostPort(pc.ConnConfig.Host, strconv.Itoa(int(pc.ConnConfig.Port))))
	host, port, _ := net.SplitHostPort(proxy.Addr())
	p, _ := strconv.Atoi(port)
	pc.ConnConfig.Host, pc.ConnConfig.Port = host, uint16(p)
	pc.ConnConfig.ConnectTimeout = time.Second
	viaProxy, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer viaProxy.Close()

	reg := prometheus.NewRegistry()
	h := lease.NewHolder(viaProxy, lease.Options{ID: "cut-off", Registerer: reg, Log: zaptest.NewLogger(t)})
	const ttl = 2 * time.Second
	l, err := h.TryAcquire(ctx, "job", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Release(ctx) }()
	proxy.Cut()

	select {
	case <-l.Context().Done():
	case <-time.After(20 * time.Second):
		t.Fatal("the job kept running with its lease out of reach")
	}
	if !errors.Is(l.Err(), lease.ErrLeaseLost) {
		t.Fatalf("cause %v", l.Err())
	}
	if n := metric(t, reg, "station_lease_losses_total", map[string]string{"reason": "unreachable"}); n != 1 {
		t.Fatalf("losses{reason=unreachable} = %v", n)
	}
	// The row itself runs out by the database's clock; then another
	// instance takes over with a higher fence.
	other := lease.NewHolder(direct, lease.Options{ID: "other", Log: zaptest.NewLogger(t)})
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	next, err := other.Acquire(actx, "job", ttl)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = next.Release(ctx) }()
	if next.Fence() != l.Fence()+1 {
		t.Fatalf("fence %d after %d", next.Fence(), l.Fence())
	}
}

func TestRunRunsTheJobOnOneInstanceAndKeepsItsPeriodAcrossATakeover(t *testing.T) {
	t.Parallel()
	db := dbtest.Pool(t)
	hs := holders(t, db, 2)
	const ttl, every = time.Second, 2 * time.Second
	type run struct {
		by    string
		start time.Time // database time
	}
	var mu sync.Mutex
	var runs []run
	var inFlight atomic.Int32
	job := func(id string) lease.Job {
		return func(ctx context.Context, l *lease.Lease) error {
			if inFlight.Add(1) != 1 {
				t.Error("two runs at once")
			}
			defer inFlight.Add(-1)
			var now time.Time
			err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
				if err := l.Guard(ctx, tx); err != nil {
					return err
				}
				return tx.QueryRow(ctx, `SELECT now()`).Scan(&now)
			})
			if err == nil { // a run cut short by the stop is not a run
				mu.Lock()
				runs = append(runs, run{by: id, start: now})
				mu.Unlock()
			}
			return err
		}
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(runs)
	}
	stops := make([]context.CancelFunc, len(hs))
	var wg sync.WaitGroup
	for i, h := range hs {
		ctx, cancel := context.WithCancel(context.Background())
		stops[i] = cancel
		wg.Go(func() { h.Run(ctx, "job", ttl, every, job(h.ID())) })
	}
	defer func() {
		for _, stop := range stops {
			stop()
		}
		wg.Wait()
	}()
	waitFor(t, "two runs", func() bool { return count() >= 2 })
	first := leaseRow(t, db, "job")
	// The holder stops; the other takes over and runs the job, on schedule.
	for i, h := range hs {
		if h.ID() == first.holder {
			stops[i]()
		}
	}
	waitFor(t, "a run by the other instance", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return runs[len(runs)-1].by != first.holder
	})
	mu.Lock()
	defer mu.Unlock()
	// One holder, then the other, never interleaved; never two runs within
	// a period by the database's clock, across the takeover too.
	tookOver := false
	for i, r := range runs {
		if r.by != first.holder {
			tookOver = true
		} else if tookOver {
			t.Errorf("run %d by %s, which did not hold the lease", i, r.by)
		}
		if i > 0 && r.start.Sub(runs[i-1].start) < every {
			t.Errorf("run %d by %s came %v after the previous one, within the period %v", i, r.by, r.start.Sub(runs[i-1].start), every)
		}
	}
	if r := leaseRow(t, db, "job"); r.fence != first.fence+1 {
		t.Fatalf("fence %d after the takeover, want %d", r.fence, first.fence+1)
	}
}
