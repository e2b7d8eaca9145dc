package belt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Service errors (besides ident.ErrInvalidTrackingNo, sorting.ErrNoChuteMap and sorting.ErrNoFlow,
// which also mean an unknown station here).
var (
	ErrBatchTooLarge = fault.New(fault.Invalid, "batch_size", "pre-sort batch too large")
	ErrEmptyBatch    = fault.New(fault.Invalid, "batch_size", "pre-sort batch is empty")
)

// DecisionSource says how a belt decision was reached.
type DecisionSource string

const (
	FromPresort  DecisionSource = "presorted"  // the stored answer of an earlier sort
	FromOnTheFly DecisionSource = "on_the_fly" // sorted during this call
	FromFallback DecisionSource = "fallback"   // not sorted: the reject chute
)

// Decision is where one parcel goes at the belt. (Decision is a
// release rule's choice of flow.)
type Decision struct {
	TrackingNo  string
	Chute       int
	ChuteKind   sorting.ChuteKind
	NextHop     string
	ReasonCode  string
	Reason      string
	Source      DecisionSource
	Flow        string
	FlowVersion int
	Degraded    bool
}

// Config tunes the belt. Zero values take the defaults in brackets.
type Config struct {
	// TTL is how long a stored answer is used [12h].
	TTL time.Duration
	// SafetyMargin is kept back from a call's deadline for the answer's way
	// back to the machine [20ms].
	SafetyMargin time.Duration
	// DefaultBudget is the time for a call without a deadline [150ms].
	DefaultBudget time.Duration
	// Parallelism bounds the concurrent sorts of one pre-sort batch [64].
	Parallelism int
	// MaxBatch bounds a pre-sort batch [10000].
	MaxBatch int
	// OnTheFly bounds concurrent on-the-fly sorts per instance: past it a
	// miss is rejected at once (the parcel recirculates) [256].
	OnTheFly int
	// CacheEntries bounds the in-process cache [200000].
	CacheEntries int
	// CacheTTL bounds an entry's life in the in-process cache [10m].
	CacheTTL time.Duration
	// ConfirmMaxAhead and ConfirmMaxAge bound a Confirm's occurred_at
	// against the server clock [5m, 168h]: outside, InvalidArgument.
	ConfirmMaxAhead, ConfirmMaxAge time.Duration
	// RedisPrefix prefixes every Redis key and the signal channel.
	RedisPrefix string
	// Log receives warnings (Redis trouble); nil discards.
	Log *slog.Logger
	// Registerer receives the belt's metrics; nil keeps them unexported.
	Registerer prometheus.Registerer
	// Bags are the bags under chutes that confirms fill; nil: confirms
	// fill no bag.
	Bags Bags
	// OnFloorChange is told of each recorded confirm and chute change, for
	// the supervisors' live floor; nil: nobody listens.
	OnFloorChange func(station string)
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.TTL, 12*time.Hour)
	def(&c.SafetyMargin, 20*time.Millisecond)
	def(&c.DefaultBudget, 150*time.Millisecond)
	def(&c.CacheTTL, 10*time.Minute)
	def(&c.ConfirmMaxAhead, 5*time.Minute)
	def(&c.ConfirmMaxAge, 7*24*time.Hour)
	defInt(&c.Parallelism, 64)
	defInt(&c.MaxBatch, 10000)
	defInt(&c.OnTheFly, 256)
	defInt(&c.CacheEntries, 200000)
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// Service answers the sorting machine: pre-sort ahead of time, resolve at the
// belt, record what the machine reports. Answers live in PostgreSQL (the
// arbiter), a Redis hash per station (shared by instances) and a small
// in-process cache; invalidations reach all three and every instance at
// once over Redis pub/sub.
type Service struct {
	router *sorting.Router
	db     *pgxpool.Pool
	rdb    redis.UniversalClient
	cfg    Config
	log    *slog.Logger
	cache  *cache
	states *chuteStates
	now    func() time.Time

	// trusted is true while the signal channel is subscribed: only then can
	// this instance's caches hear of changes and be used.
	trusted atomic.Bool

	decisions *prometheus.CounterVec // by source and chute kind
	bags      Bags
	metrics   beltMetrics
	lastWarn  atomic.Int64 // unix ns of the last warning, see warn
	// redisSkipUntil (unix ns) is set when Redis fails: until then the belt
	// goes straight to PostgreSQL instead of paying a timeout per parcel.
	redisSkipUntil atomic.Int64
	// pgSkipUntil (unix ns) is the same for PostgreSQL on the belt's
	// lookups: while it is out of reach, a miss in memory and Redis is
	// sorted on the fly at once instead of spending its budget waiting.
	pgSkipUntil atomic.Int64

	fly     chan struct{} // on-the-fly sort slots
	mu      sync.Mutex
	flights map[key]*flight
	closed  bool
	wg      sync.WaitGroup
}

// onTheFlyCap bounds an on-the-fly sort and its store, whatever the flow's
// own deadline says.
const onTheFlyCap = 5 * time.Second

// flight is one on-the-fly sort; later resolves of the same parcel wait for
// it instead of sorting again.
type flight struct {
	done chan struct{}
	res  sorting.Result
	ok   bool // the sort ran (false: no slot was free)
}

// New builds the belt over the router, which chooses and runs flows as for
// a manual sort. The sorting service takes the belt as its
// sorting.PresortedAnswers, so a manual sort drops the parcel's belt answer.
// while wiring, before anything sorts.
func New(router *sorting.Router, db *pgxpool.Pool, rdb redis.UniversalClient, cfg Config) *Service {
	cfg = cfg.withDefaults()
	b := &Service{
		router: router, db: db, rdb: rdb, cfg: cfg, log: cfg.Log,
		cache:   newCache(cfg.CacheEntries, cfg.CacheTTL),
		states:  &chuteStates{ttl: cfg.CacheTTL, cache: map[string]cachedChutes{}},
		now:     time.Now,
		fly:     make(chan struct{}, cfg.OnTheFly),
		flights: map[key]*flight{},
	}
	b.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "station_belt_decisions_total",
		Help: "Chutes answered to the sorting machine, by how they were decided (presorted, on_the_fly, fallback) and chute kind.",
	}, []string{"source", "kind"})
	b.bags = cfg.Bags
	b.metrics = newBeltMetrics(cfg.Registerer)
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(b.decisions)
	}
	return b
}

// warn logs a store problem at most once a second: when Redis is down,
// every belt call would otherwise add a line.
func (b *Service) warn(msg string, args ...any) {
	now := b.now().UnixNano()
	last := b.lastWarn.Load()
	if now-last < int64(time.Second) || !b.lastWarn.CompareAndSwap(last, now) {
		return
	}
	b.log.Warn(msg, args...)
}

// redisTimeout bounds one Redis call on the belt's path: Redis answers in
// well under a millisecond or is treated as down.
const redisTimeout = 25 * time.Millisecond

// redisOK reports whether Redis is worth asking now.
func (b *Service) redisOK() bool { return b.now().UnixNano() >= b.redisSkipUntil.Load() }

// redisFailed notes a Redis failure (a miss is not one): Redis is skipped
// for a second.
func (b *Service) redisFailed(err error) {
	if err != nil && !errors.Is(err, redis.Nil) {
		b.redisSkipUntil.Store(b.now().Add(time.Second).UnixNano())
	}
}

// pgOK reports whether PostgreSQL is worth asking on the belt's path now.
func (b *Service) pgOK() bool { return b.now().UnixNano() >= b.pgSkipUntil.Load() }

// pgFailed notes that PostgreSQL did not answer a belt lookup: it is
// skipped for a second.
func (b *Service) pgFailed() { b.pgSkipUntil.Store(b.now().Add(time.Second).UnixNano()) }

// pgBound bounds a PostgreSQL lookup on the belt's path to half of what is
// left of ctx: a database that does not answer must leave the parcel time
// to be sorted on the fly, or rejected, before the deadline.
func pgBound(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(dl)/2)
}

// count records a decision (its hit, miss or fallback) and passes it on.
func (b *Service) count(d Decision) Decision {
	b.decisions.WithLabelValues(string(d.Source), string(d.ChuteKind)).Inc()
	return d
}

// Config is the belt's effective configuration.
func (b *Service) Config() Config { return b.cfg }

// cacheTrusted reports whether this instance's caches may answer.
func (b *Service) cacheTrusted() bool { return b.trusted.Load() }

// CheckStation reports whether the station can be served: it has a chute
// map and a flow. It wraps sorting.ErrNoChuteMap or sorting.ErrNoFlow otherwise.
func (b *Service) CheckStation(ctx context.Context, station string) error {
	if _, err := b.router.Chutes().Get(ctx, station); err != nil {
		return err
	}
	_, err := b.router.Flows().ForStation(station)
	return err
}

// Resolve answers the chute of one parcel at the belt, within ctx's
// deadline less the safety margin (DefaultBudget without a deadline). A
// parcel always gets a chute; the error is only for a station that cannot
// be served (sorting.ErrNoChuteMap, sorting.ErrNoFlow) or a store failure on a hit path
// that PostgreSQL also failed.
func (b *Service) Resolve(ctx context.Context, station string, tn ident.TrackingNo) (Decision, error) {
	start := b.now()
	m, err := b.router.Chutes().Get(ctx, station)
	if err != nil {
		return Decision{}, err
	}
	flow, err := b.flowFor(station, tn)
	if err != nil {
		return Decision{}, err
	}
	// The hot path: a pre-sorted parcel in this instance's cache, full
	// chutes known, no I/O.
	if b.cacheTrusted() {
		if e, ok := b.cache.get(key{station, tn}, start); ok && e.usable(start, flow) {
			if full, ok := b.states.get(station, start); ok {
				return b.count(decide(tn, m.ChuteMap, full, e, FromPresort)), nil
			}
		}
	}
	budget := b.cfg.DefaultBudget
	if dl, ok := ctx.Deadline(); ok {
		budget = dl.Sub(start)
	}
	budget -= b.cfg.SafetyMargin
	// The lookups are bounded by the budget too: a slow Redis or database
	// must not hold the belt.
	lctx, cancel := context.WithTimeout(ctx, max(budget, 0))
	defer cancel()

	e, found := b.lookup(lctx, station, tn, flow, start)
	if found {
		full, _ := b.fullChutesOrNone(lctx, station)
		return b.count(decide(tn, m.ChuteMap, full, e, FromPresort)), nil
	}
	res, ok := b.sortOnTheFly(lctx, station, tn, flow)
	if !ok {
		if lctx.Err() == nil && ctx.Err() == nil {
			return b.count(reject(tn, m.ChuteMap, sorting.ReasonOverloaded, "station is at its on-the-fly sort limit; recirculate")), nil
		}
		return b.count(reject(tn, m.ChuteMap, sorting.ReasonNotDecidedInTime, "not sorted within the belt's deadline; recirculate")), nil
	}
	if !storable(res) {
		return b.count(reject(tn, m.ChuteMap, res.Exception.Code, res.Exception.Reason)), nil
	}
	full, _ := b.fullChutesOrNone(lctx, station)
	return b.count(decide(tn, m.ChuteMap, full, entryOf(res, sourceOnTheFly, start, b.cfg.TTL), FromOnTheFly)), nil
}

// fullChutesOrNone is fullChutes that never fails the belt: without chute
// states the parcel still goes to its first chute.
func (b *Service) fullChutesOrNone(ctx context.Context, station string) (fullChutes, error) {
	f, err := b.fullChutes(ctx, station)
	if err != nil {
		b.warn("chute states unavailable; answering first chutes", "station", station, "error", err)
	}
	return f, err
}

// lookup finds a usable stored answer: this instance's cache, then Redis,
// then PostgreSQL. Store failures are misses, not errors: the parcel is
// sorted on the fly instead.
func (b *Service) lookup(ctx context.Context, station string, tn ident.TrackingNo, flow *sorting.Flow, now time.Time) (entry, bool) {
	k := key{station, tn}
	trusted := b.cacheTrusted()
	if trusted {
		if e, ok := b.cache.get(k, now); ok && e.usable(now, flow) {
			return e, true
		}
	}
	if b.redisOK() {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		v, err := b.rdb.HGet(rctx, b.presortKey(station), string(tn)).Result()
		cancel()
		if err == nil {
			if e, tomb, err := decodeEntry(v); err == nil && tomb == 0 && e.usable(now, flow) {
				if trusted {
					b.cache.put(k, e, now)
				}
				return e, true
			}
		} else if !errors.Is(err, redis.Nil) && ctx.Err() == nil {
			b.redisFailed(err)
			b.warn("belt lookup in Redis failed; asking PostgreSQL", "error", err)
		}
	}
	if ctx.Err() != nil || !b.pgOK() {
		return entry{}, false
	}
	pctx, cancel := pgBound(ctx)
	e, ok, err := b.loadPG(pctx, station, tn)
	cancel()
	if err != nil && ctx.Err() == nil {
		b.pgFailed()
		b.warn("belt lookup in PostgreSQL failed; sorting on the fly", "error", err)
	}
	if err != nil || !ok || !e.usable(now, flow) {
		return entry{}, false
	}
	if v, err := encodeEntry(e); err == nil && b.redisOK() {
		// Read repair: the next instance asking finds it in Redis.
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		b.redisFailed(b.redisPut(rctx, station, []string{string(tn)}, []int64{e.SortedAt}, []string{v}))
		cancel()
	}
	if trusted {
		b.cache.put(k, e, now)
	}
	return e, true
}

// sortOnTheFly sorts a parcel missing from the table. The sort runs on its
// own goroutine bounded by the flow's deadline, so when the caller's budget
// runs out first the sort still finishes and is stored: the recirculated
// parcel is a hit at its next pass. Concurrent calls for one parcel share
// one sort. ok is false when no answer came within ctx or no slot was free.
func (b *Service) sortOnTheFly(ctx context.Context, station string, tn ident.TrackingNo, flow *sorting.Flow) (sorting.Result, bool) {
	if ctx.Err() != nil {
		return sorting.Result{}, false
	}
	k := key{station, tn}
	b.mu.Lock()
	f, joined := b.flights[k]
	if !joined {
		if b.closed {
			b.mu.Unlock()
			return sorting.Result{}, false
		}
		select {
		case b.fly <- struct{}{}:
		default:
			b.mu.Unlock()
			return sorting.Result{}, false
		}
		f = &flight{done: make(chan struct{})}
		b.flights[k] = f
		b.wg.Add(1)
	}
	b.mu.Unlock()
	if !joined {
		go func() {
			// Detached from the caller: its deadline is the belt's, not the
			// sort's; the flow's own deadline bounds the run, and this cap
			// the store after it.
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), onTheFlyCap)
			defer cancel()
			defer b.wg.Done()
			defer func() { <-b.fly }()
			start := b.now().Truncate(time.Millisecond)
			res, _ := b.router.Run(sctx, flow, station, tn, dag.Options{Sequential: flow.Sequential})
			// Answer first, store after: the belt must not wait for the
			// store. Resolves arriving meanwhile still join this flight.
			f.res, f.ok = res, true
			close(f.done)
			if storable(res) {
				if _, err := b.store(sctx, station, []keyedEntry{{tn, entryOf(res, sourceOnTheFly, start, b.cfg.TTL)}}); err != nil {
					b.log.Warn("on-the-fly sort not stored", "station", station, "error", err)
				}
			}
			b.mu.Lock()
			delete(b.flights, k)
			b.mu.Unlock()
		}()
	}
	select {
	case <-f.done:
		return f.res, f.ok
	case <-ctx.Done():
		return sorting.Result{}, false
	}
}

// decide picks the chute for a stored answer: the first chute of its next
// hop that is not full, else overflow; the exception chute for an
// exception; the map as it is now, whatever it was when the parcel was
// sorted.
func decide(tn ident.TrackingNo, m sorting.ChuteMap, full fullChutes, e entry, src DecisionSource) Decision {
	d := Decision{TrackingNo: string(tn), NextHop: e.NextHop, Source: src, Flow: e.Flow, FlowVersion: e.Version, Degraded: e.Degraded}
	if e.ExcCode != "" {
		d.Chute, d.ChuteKind, d.ReasonCode, d.Reason = m.ExceptionChute, sorting.ChuteException, e.ExcCode, e.ExcReason
		return d
	}
	chutes := m.NextHops[e.NextHop]
	if len(chutes) == 0 {
		d.Chute, d.ChuteKind, d.ReasonCode = m.ExceptionChute, sorting.ChuteException, sorting.CodeNoChute
		d.Reason = fmt.Sprintf("the chute map has no chute for %s", e.NextHop)
		return d
	}
	for _, c := range chutes {
		if !full.has(c) {
			d.Chute, d.ChuteKind = c, sorting.ChuteNextHop
			return d
		}
	}
	d.Chute, d.ChuteKind, d.ReasonCode = m.OverflowChute, sorting.ChuteOverflow, sorting.ReasonChuteFull
	d.Reason = fmt.Sprintf("every chute of %s is full", e.NextHop)
	return d
}

func reject(tn ident.TrackingNo, m sorting.ChuteMap, code, reason string) Decision {
	return Decision{TrackingNo: string(tn), Chute: m.RejectChute, ChuteKind: sorting.ChuteReject, ReasonCode: code, Reason: reason, Source: FromFallback}
}

// Reject is the answer for a parcel the belt cannot look up at all (a
// malformed code on a stream): the station's reject chute.
func (b *Service) Reject(ctx context.Context, station, trackingNo, code, reason string) (Decision, error) {
	m, err := b.router.Chutes().Get(ctx, station)
	if err != nil {
		return Decision{}, err
	}
	return reject(ident.TrackingNo(trackingNo), m.ChuteMap, code, reason), nil
}

// Invalidate drops a parcel's belt answer at once, everywhere: for a parcel
// intercepted, re-routed or otherwise changed after it was sorted. The next
// Resolve sorts it again.
func (b *Service) Invalidate(ctx context.Context, station string, tn ident.TrackingNo) error {
	at := b.now().Truncate(time.Millisecond)
	tx, err := b.db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("sorting: invalidate %s: %w", tn, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if err := b.invalidateTx(ctx, tx, station, tn, at); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("sorting: invalidate %s: %w", tn, err)
	}
	_ = b.spread(ctx, station, tn, at) // committed: the worker retries what Redis missed
	return nil
}

// Run listens for invalidations and chute changes from every instance and
// runs the belt's upkeep (spreading invalidations Redis missed, pruning
// expired answers) until ctx ends. While the channel is down, this
// instance's caches are not used.
func (b *Service) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { b.listen(ctx) })
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	lastPrune := b.now()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return
		case <-tick.C:
			b.retryPending(ctx)
			if b.now().Sub(lastPrune) > 5*time.Minute {
				b.prune(ctx)
				lastPrune = b.now()
			}
		}
	}
}

func (b *Service) listen(ctx context.Context) {
	ps := b.rdb.Subscribe(ctx, b.eventsChannel())
	defer func() { _ = ps.Close() }()
	// ReceiveTimeout does not return when ctx ends; closing the subscription
	// makes it, so shutdown does not wait out the read timeout.
	defer context.AfterFunc(ctx, func() { _ = ps.Close() })()
	defer b.trusted.Store(false)
	for ctx.Err() == nil {
		msg, err := ps.ReceiveTimeout(ctx, 5*time.Second)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Quiet channel: check that it is still alive.
				if perr := ps.Ping(ctx); perr == nil {
					continue
				}
			}
			if b.trusted.Swap(false) {
				b.log.Warn("belt signal channel lost; caches bypassed until it is back", "error", err)
			}
			b.cache.flush()
			b.states.flush()
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			if m.Kind == "subscribe" && !b.trusted.Load() {
				// (Re)subscribed: whatever was said while we were away is
				// lost, so start from empty caches and repair Redis.
				b.cache.flush()
				b.states.flush()
				b.trusted.Store(true)
				b.retryPending(ctx)
				b.resyncChutes(ctx)
			}
		case *redis.Message:
			b.apply(m.Payload)
		}
	}
}

// apply handles one signal.
func (b *Service) apply(payload string) {
	parts := strings.Split(payload, "|")
	switch {
	case len(parts) == 4 && parts[0] == "p":
		ms, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil {
			return
		}
		b.cache.tombstone(key{parts[1], ident.TrackingNo(parts[2])}, ms, b.now())
	case len(parts) == 2 && parts[0] == "c":
		b.states.drop(parts[1])
	}
}

// resyncChutes rewrites every station's chute state in Redis from
// PostgreSQL: a change made while Redis was down must not be shadowed by
// the copy Redis kept.
func (b *Service) resyncChutes(ctx context.Context) {
	rows, err := b.db.Query(ctx, `SELECT DISTINCT station_id FROM chute_states`)
	if err != nil {
		return
	}
	var stations []string
	for rows.Next() {
		var s string
		if rows.Scan(&s) == nil {
			stations = append(stations, s)
		}
	}
	rows.Close()
	for _, s := range stations {
		if f, err := b.loadChuteStates(ctx, b.db, s); err == nil {
			_ = setNewerState.Run(ctx, b.rdb, []string{b.chutesKey(s)}, f.version, f.encode()).Err()
		}
	}
}

// flowFor is the flow that serves a parcel, as a manual sort chooses it
// (the router: a release rule may serve a candidate), but never with a
// shadow run: the belt's answers are compared where people sort.
func (b *Service) flowFor(station string, tn ident.TrackingNo) (*sorting.Flow, error) {
	c, err := b.router.Choose(station, tn)
	return c.Flow, err
}

// QueueDrop is the sorting service's hook into the belt
// (sorting.PresortedAnswers): a parcel sorted by hand or flagged at arrival
// loses its belt answer, in the same transaction as the work order (the
// tombstone joins its batch), then everywhere, when the returned spread
// runs after the commit and the parcel had an answer to spread.
func (b *Service) QueueDrop(batch *pgx.Batch, station string, tn ident.TrackingNo, at time.Time) func(context.Context) {
	at = at.Truncate(time.Millisecond)
	var had bool
	batch.Queue(invalidateSQL, station, string(tn), at.Add(b.cfg.TTL), at, false).
		QueryRow(func(row pgx.Row) error { return row.Scan(&had) })
	return func(ctx context.Context) {
		if had {
			_ = b.spread(ctx, station, tn, at) // left pending on failure
		}
	}
}

// Close waits for on-the-fly sorts still running; none start after it.
func (b *Service) Close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.wg.Wait()
}
