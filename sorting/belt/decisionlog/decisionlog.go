package decisionlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt"
)

// Record is one belt decision as the sorter met it.
type Record struct {
	Station    string
	Sorter     string
	TrackingNo string
	Source     belt.DecisionSource
	ReasonCode string
	// ReceivedAt is when the call (or the stream message) arrived.
	ReceivedAt time.Time
	// Latency is from receipt to answer; Budget is what the sorter's
	// deadline left from receipt, less the belt's safety margin.
	Latency, Budget time.Duration
	// Late: the answer came after the budget, or the belt answered that it
	// could not decide in time.
	Late bool
}

// Config tunes the recorder. Zero values take the defaults in brackets;
// SafetyMargin and DefaultBudget are the belt's own (belt.Config), so that
// "late" means what the belt aims for.
type Config struct {
	// Buffer bounds the records waiting to be written [65536].
	Buffer int
	// FlushEvery is how often the buffer is written [1s].
	FlushEvery time.Duration
	// SafetyMargin is kept back from the sorter's deadline [20ms].
	SafetyMargin time.Duration
	// DefaultBudget is a call's time when it names no deadline [150ms].
	DefaultBudget time.Duration
	// Log receives write failures; nil discards.
	Log *slog.Logger
	// Registerer receives the metrics; nil keeps them unexported.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() Config {
	if c.Buffer <= 0 {
		c.Buffer = 65536
	}
	if c.FlushEvery <= 0 {
		c.FlushEvery = time.Second
	}
	if c.SafetyMargin <= 0 {
		c.SafetyMargin = 20 * time.Millisecond
	}
	if c.DefaultBudget <= 0 {
		c.DefaultBudget = 150 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// maxBatch bounds one COPY: a backlog is written in several.
const maxBatch = 5000

// Recorder records belt decisions: metrics at once, rows through a bounded
// buffer that Run writes in batches.
type Recorder struct {
	db  *pgxpool.Pool
	cfg Config
	buf chan Record

	// The latency histogram's children for the three sources are looked up
	// once: the belt's path pays an atomic add, not a label hash.
	latency    map[belt.DecisionSource]prometheus.Observer
	latencyVec *prometheus.HistogramVec
	late       *prometheus.CounterVec // by sorter, source
	dropFull   prometheus.Counter
	dropWrite  prometheus.Counter

	flushMu sync.Mutex // one writer at a time: Run's ticks and Flush
	batch   []Record
}

// New builds a recorder writing to db.
func New(db *pgxpool.Pool, cfg Config) *Recorder {
	cfg = cfg.withDefaults()
	r := &Recorder{db: db, cfg: cfg, buf: make(chan Record, cfg.Buffer), batch: make([]Record, 0, maxBatch)}
	r.latencyVec = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "station_belt_decision_seconds",
		Help: "Time from a Resolve's receipt to its answer, by how it was decided (presorted, on_the_fly, fallback).",
		// From a cache hit (tens of microseconds) to a budget blown.
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .15, .25, .5, 1},
	}, []string{"source"})
	r.late = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "station_belt_late_decisions_total",
		Help: "Belt decisions answered after the sorter's deadline less the safety margin, or answered NOT_DECIDED_IN_TIME, by sorter and source.",
	}, []string{"sorter", "source"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "station_belt_decision_records_dropped_total",
		Help: "Belt decisions not written to belt_decisions, by reason (buffer_full: the belt never waits for the writer; write_failed).",
	}, []string{"reason"})
	r.dropFull, r.dropWrite = dropped.WithLabelValues("buffer_full"), dropped.WithLabelValues("write_failed")
	r.latency = map[belt.DecisionSource]prometheus.Observer{}
	for _, s := range []belt.DecisionSource{belt.FromPresort, belt.FromOnTheFly, belt.FromFallback} {
		r.latency[s] = r.latencyVec.WithLabelValues(string(s))
	}
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(r.latencyVec, r.late, dropped)
	}
	return r
}

// Decided records one decision answered now for a call received at
// received; deadline is the call's (zero: none, the belt's default budget
// applies). It never blocks: with the buffer full the row is dropped and
// counted, the metrics still see the decision.
func (r *Recorder) Decided(station, sorter string, received, deadline time.Time, d belt.Decision) {
	now := time.Now()
	budget := r.cfg.DefaultBudget
	if !deadline.IsZero() {
		budget = deadline.Sub(received)
	}
	budget -= r.cfg.SafetyMargin
	rec := Record{Station: station, Sorter: sorter, TrackingNo: clip(d.TrackingNo, 64), Source: d.Source,
		ReasonCode: d.ReasonCode, ReceivedAt: received, Latency: now.Sub(received), Budget: budget}
	rec.Late = rec.Latency > budget || d.ReasonCode == sorting.ReasonNotDecidedInTime
	r.record(rec)
}

func (r *Recorder) record(rec Record) {
	if o, ok := r.latency[rec.Source]; ok {
		o.Observe(rec.Latency.Seconds())
	} else {
		r.latencyVec.WithLabelValues(string(rec.Source)).Observe(rec.Latency.Seconds())
	}
	if rec.Late {
		r.late.WithLabelValues(rec.Sorter, string(rec.Source)).Inc()
	}
	select {
	case r.buf <- rec:
	default:
		r.dropFull.Inc()
	}
}

// clip bounds a field a machine sent (a malformed code on a stream is
// answered too, and recorded as it came).
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Run writes the buffer every FlushEvery until ctx ends, then writes what
// is left (bounded by a few seconds) and returns.
func (r *Recorder) Run(ctx context.Context) {
	tick := time.NewTicker(r.cfg.FlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
			_ = r.Flush(fctx)
			cancel()
			return
		case <-tick.C:
			_ = r.Flush(ctx)
		}
	}
}

// Flush writes the records buffered when it is called, one COPY per batch.
// A batch that cannot be written is dropped and counted: the belt's history
// is worth less than the belt's memory.
func (r *Recorder) Flush(ctx context.Context) error {
	r.flushMu.Lock()
	defer r.flushMu.Unlock()
	// Only what is buffered now: under a steady stream, a flush that
	// chased new records would never end.
	for left := len(r.buf); left > 0; {
		r.batch = r.batch[:0]
		for ; left > 0 && len(r.batch) < maxBatch; left-- {
			r.batch = append(r.batch, <-r.buf)
		}
		if err := r.write(ctx, r.batch); err != nil {
			r.dropWrite.Add(float64(len(r.batch)))
			r.cfg.Log.Warn("belt decisions not recorded", "rows", len(r.batch), "error", err)
			return err
		}
	}
	return nil
}

var columns = []string{"station_id", "sorter_id", "tracking_no", "source", "reason_code", "latency_us", "budget_us", "late", "decided_at"}

func (r *Recorder) write(ctx context.Context, batch []Record) error {
	_, err := r.db.CopyFrom(ctx, pgx.Identifier{"belt_decisions"}, columns, pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) {
		b := &batch[i]
		var reason *string
		if b.ReasonCode != "" {
			reason = &b.ReasonCode
		}
		return []any{b.Station, b.Sorter, b.TrackingNo, string(b.Source), reason, b.Latency.Microseconds(),
			b.Budget.Microseconds(), b.Late, b.ReceivedAt}, nil
	}))
	if err != nil {
		return fmt.Errorf("decisionlog: write %d decisions: %w", len(batch), err)
	}
	return nil
}
