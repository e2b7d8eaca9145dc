package sorting

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/workorder"
)

// ShadowConfig bounds shadow runs.
type ShadowConfig struct {
	// Budget is how many shadow runs may be in flight at once; beyond it a
	// shadow run is dropped and counted, never queued behind served sorts.
	Budget int
	// Deadline bounds one shadow run, independent of the served request.
	Deadline time.Duration
	// NoiseEvery runs the stable flow a second time on one shadowed parcel
	// in NoiseEvery, to measure how often the comparison differs by itself
	// (old versus old). 0 disables.
	NoiseEvery int
	// FlushEvery is how often counts are written to PostgreSQL.
	FlushEvery time.Duration
}

// Shadow runs candidate flows after served sorts, compares, and records
// counts and mismatches. It owns its goroutines: Close waits for them.
type Shadow struct {
	router *Router
	db     *pgxpool.Pool
	cfg    ShadowConfig
	log    *zap.Logger

	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	slots  chan struct{}
	seq    atomic.Uint64

	mu     sync.Mutex
	counts map[countKey]*count

	comparisons, mismatches, drops, servedByCandidate *prometheus.CounterVec
}

type countKey struct {
	site, source string
	minute       time.Time
}

type count struct{ comparisons, mismatches, drops int }

// NewShadow builds the shadow runner; reg may be nil.
func NewShadow(router *Router, db *pgxpool.Pool, cfg ShadowConfig, log *zap.Logger, reg prometheus.Registerer) *Shadow {
	if cfg.Budget <= 0 {
		cfg.Budget = 64
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = time.Second
	}
	if cfg.FlushEvery <= 0 {
		cfg.FlushEvery = time.Second
	}
	base, cancel := context.WithCancel(context.Background())
	vec := func(name, help string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"site"})
		if reg != nil {
			reg.MustRegister(v)
		}
		return v
	}
	return &Shadow{
		router: router, db: db, cfg: cfg, log: log, base: base, cancel: cancel,
		slots:             make(chan struct{}, cfg.Budget),
		counts:            map[countKey]*count{},
		comparisons:       vec("station_shadow_comparisons_total", "Shadow comparisons by site."),
		mismatches:        vec("station_shadow_mismatches_total", "Shadow comparisons that differed, by site."),
		drops:             vec("station_shadow_drops_total", "Shadow runs dropped because the budget was spent, by site."),
		servedByCandidate: vec("station_served_by_candidate_total", "Sorts served by a candidate flow (split), by site."),
	}
}

// launch reserves a shadow run for a served sort. It never blocks: with
// the budget spent it counts a drop and returns a no-op. The returned
// function hands the served answer over and starts the candidate; it must
// be called exactly once, and Sort calls it once the answer is recorded.
// The candidate starts only then, not beside the served flow: at the same
// time, on a loaded machine it took CPU from the very sort it shadows. What
// the moments apart can change is what the noise check (the stable flow run
// again) measures.
func (sh *Shadow) launch(site string, tn ident.TrackingNo, stable, candidate *Flow) func(Result, *dag.Result) {
	select {
	case sh.slots <- struct{}{}:
	default:
		sh.drops.WithLabelValues(site).Inc()
		sh.add(site, "shadow", 0, 0, 1)
		return func(Result, *dag.Result) {}
	}
	sh.wg.Add(1)
	return func(res Result, run *dag.Result) {
		go func() {
			defer sh.wg.Done()
			defer func() { <-sh.slots }()
			if sh.base.Err() != nil {
				return
			}
			ctx, cancel := context.WithTimeout(sh.base, sh.cfg.Deadline)
			defer cancel()
			cand, candRun := sh.run(ctx, candidate, site, tn)
			sh.compare(ctx, "shadow", site, tn, stable, candidate, res, run, cand, candRun)
			if sh.cfg.NoiseEvery > 0 && sh.seq.Add(1)%uint64(sh.cfg.NoiseEvery) == 0 {
				again, againRun := sh.run(ctx, stable, site, tn)
				sh.compare(ctx, "noise", site, tn, stable, stable, res, run, again, againRun)
			}
		}()
	}
}

// run executes a flow in dry run, turning a panic into an exception so a
// broken candidate cannot take anything down.
func (sh *Shadow) run(ctx context.Context, flow *Flow, site string, tn ident.TrackingNo) (res Result, run *dag.Result) {
	defer func() {
		if v := recover(); v != nil {
			res = Result{Exception: &Exception{Code: CodeDownstreamUnavailable, Reason: fmt.Sprintf("candidate panicked: %v", v)}}
		}
	}()
	return sh.router.Run(ctx, flow, site, tn, dag.Options{DryRun: true, Sequential: flow.Sequential})
}

// Same reports whether two sort answers agree on what the belt and the
// terminal act on: next hop, chute and exception code.
func Same(a, b Result) bool {
	return hopOf(a.NextHop) == hopOf(b.NextHop) && a.Chute == b.Chute && excCode(a.Exception) == excCode(b.Exception)
}

func hopOf(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func excCode(e *Exception) string {
	if e == nil {
		return ""
	}
	return e.Code
}

func (sh *Shadow) compare(ctx context.Context, source, site string, tn ident.TrackingNo, stable, candidate *Flow, a Result, aRun *dag.Result, b Result, bRun *dag.Result) {
	if Same(a, b) {
		sh.comparisons.WithLabelValues(site).Inc()
		sh.add(site, source, 1, 0, 0)
		return
	}
	sh.comparisons.WithLabelValues(site).Inc()
	sh.mismatches.WithLabelValues(site).Inc()
	sh.add(site, source, 1, 1, 0)
	if err := recordMismatch(ctx, sh.db, source, site, tn, stable, candidate, a, aRun, b, bRun); err != nil {
		sh.log.Warn("shadow mismatch not recorded", zap.String("site", site), zap.Error(err))
	}
}

// recordMismatch stores both answers, both traces and the step the
// difference is put down to (blameOf). Whether that step is in one flow
// only is read back from the traces (see onlyInSQL).
func recordMismatch(ctx context.Context, db reconWriter, source, site string, tn ident.TrackingNo, stable, candidate *Flow,
	a Result, aRun *dag.Result, b Result, bRun *dag.Result) error {
	var node, key *string
	if blame, ok := blameOf(aRun, bRun); ok {
		node = &blame.Node
		if blame.Key != "" {
			key = &blame.Key
		}
	}
	a.Trace, b.Trace = nil, nil
	stableJSON, _ := json.Marshal(a)
	candJSON, _ := json.Marshal(b)
	var aTrace, bTrace []byte
	if aRun != nil {
		aTrace, _ = json.Marshal(aRun.Trace)
	}
	if bRun != nil {
		bTrace, _ = json.Marshal(bRun.Trace)
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	_, err := db.Exec(wctx, `INSERT INTO reconciliation_mismatches
		(id, site_id, source, tracking_no, stable_flow, stable_version, candidate_flow, candidate_version, stable, candidate,
		 first_diff_node, first_diff_key, stable_trace, candidate_trace)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
		workorder.NewID(), site, source, string(tn), stable.Name, stable.Version, candidate.Name, candidate.Version,
		stableJSON, candJSON, node, key, aTrace, bTrace)
	return err
}

func (sh *Shadow) add(site, source string, comparisons, mismatches, drops int) {
	k := countKey{site: site, source: source, minute: time.Now().UTC().Truncate(time.Minute)}
	sh.mu.Lock()
	c := sh.counts[k]
	if c == nil {
		c = &count{}
		sh.counts[k] = c
	}
	c.comparisons += comparisons
	c.mismatches += mismatches
	c.drops += drops
	sh.mu.Unlock()
}

// Flush writes the counts gathered since the last flush.
func (sh *Shadow) Flush(ctx context.Context) error {
	sh.mu.Lock()
	pending := sh.counts
	sh.counts = map[countKey]*count{}
	sh.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	return writeCounts(ctx, sh.db, pending)
}

func writeCounts(ctx context.Context, db reconWriter, counts map[countKey]*count) error {
	batch := &pgx.Batch{}
	for k, c := range counts {
		batch.Queue(`INSERT INTO reconciliation_counts (site_id, minute, source, comparisons, mismatches, drops)
			VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (site_id, minute, source) DO UPDATE SET comparisons = reconciliation_counts.comparisons + $4,
			  mismatches = reconciliation_counts.mismatches + $5, drops = reconciliation_counts.drops + $6`,
			k.site, k.minute, k.source, c.comparisons, c.mismatches, c.drops)
	}
	if err := db.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("sorting: write reconciliation counts: %w", err)
	}
	return nil
}

// Run flushes counts until ctx ends, then waits for the shadow runs in
// flight and flushes a last time.
func (sh *Shadow) Run(ctx context.Context) {
	t := time.NewTicker(sh.cfg.FlushEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			sh.Close()
			return
		case <-t.C:
			if err := sh.Flush(ctx); err != nil && ctx.Err() == nil {
				sh.log.Warn("shadow counts not flushed", zap.Error(err))
			}
		}
	}
}

// Close stops shadow runs, waits for them and flushes what they counted.
func (sh *Shadow) Close() {
	sh.wg.Wait()
	sh.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := sh.Flush(ctx); err != nil {
		sh.log.Warn("shadow counts not flushed at shutdown", zap.Error(err))
	}
}

func dagDryRun(f *Flow) dag.Options { return dag.Options{DryRun: true, Sequential: f.Sequential} }
