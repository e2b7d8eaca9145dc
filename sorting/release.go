package sorting

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Release errors.
var (
	ErrInvalidRule     = fault.New(fault.Invalid, "invalid_release_rule", "invalid release rule")
	ErrRuleConflict    = fault.New(fault.Precondition, "version_conflict", "release rule was changed by someone else")
	ErrMatchRateTooLow = fault.New(fault.Conflict, "match_rate_too_low", "shadow match rate too low to raise the ratio")
	ErrReasonRequired  = fault.New(fault.Invalid, "reason_required", "a reason is required")
)

// Release modes.
const (
	ModeOff    = "off"
	ModeShadow = "shadow"
	ModeSplit  = "split"
)

// Buckets is the number of buckets parcels are hashed into: a ratio is in
// basis points, one bucket each.
const Buckets = 10000

// RampSteps are the ratios a ramp goes through; in split mode the buckets
// of the next step are shadowed, so the guard measures exactly the parcels
// the next raise would move.
var RampSteps = []int{0, 100, 500, 1000, 2500, 5000, 10000}

// Rule is a site's release rule.
type Rule struct {
	SiteID           string    `json:"site_id"`
	StableFlow       string    `json:"stable_flow"`
	StableVersion    int       `json:"stable_version"`
	CandidateFlow    string    `json:"candidate_flow,omitempty"`
	CandidateVersion int       `json:"candidate_version,omitempty"`
	Mode             string    `json:"mode"`
	RatioBP          int       `json:"ratio_bp"`
	Salt             string    `json:"salt"`
	Version          int       `json:"version"`
	UpdatedBy        string    `json:"updated_by"`
	UpdatedAt        time.Time `json:"updated_at"`
	// Ramp, when set, steps the split ratio up by itself (ramp.go).
	Ramp          *Ramp     `json:"ramp,omitempty"`
	RampStep      int       `json:"ramp_step"`            // index into Ramp.StepsBP
	RampState     string    `json:"ramp_state,omitempty"` // running, done, rolled_back
	StepStartedAt time.Time `json:"step_started_at"`
	BaseCompared  int64     `json:"-"` // the site's shadow comparisons when the step started
	BaseMismatch  int64     `json:"-"`
}

// ruleColumns are the release_rules columns in Rule's field order.
const ruleColumns = `site_id, stable_flow, stable_version, coalesce(candidate_flow, ''), coalesce(candidate_version, 0),
	mode, ratio_bp, salt, version, updated_by, updated_at, ramp, ramp_step, ramp_state, step_started_at,
	step_base_comparisons, step_base_mismatches`

// Bucket is the sticky bucket (0..9999) of a parcel under a salt: the same
// on every instance, every retry and every restart.
func Bucket(salt string, tn ident.TrackingNo) int {
	var d xxhash.Digest
	d.Reset()
	_, _ = d.WriteString(salt)
	_, _ = d.WriteString(":")
	_, _ = d.WriteString(string(tn))
	return int(d.Sum64() % Buckets)
}

// NextRampStep is the ramp step after ratio.
func NextRampStep(ratio int) int {
	for _, s := range RampSteps {
		if s > ratio {
			return s
		}
	}
	return Buckets
}

// Decision says which flow serves a parcel and whether the candidate is run
// beside it in shadow.
type Decision struct {
	ServeCandidate bool
	Shadow         bool
	Bucket         int
}

// Decide applies the rule to one parcel. Split serves the candidate to the
// buckets below the ratio, so raising the ratio keeps every parcel already
// on the candidate on it, and shadows the next ramp step's buckets. Shadow
// serves the stable flow to everyone and shadows the buckets below the ratio
// (all of them at ratio 0): exactly the parcels a ramp to that ratio would
// move.
func (r Rule) Decide(tn ident.TrackingNo) Decision {
	if r.Mode == ModeOff || r.CandidateFlow == "" {
		return Decision{}
	}
	b := Bucket(r.Salt, tn)
	switch r.Mode {
	case ModeSplit:
		if b < r.RatioBP {
			return Decision{ServeCandidate: true, Bucket: b}
		}
		return Decision{Shadow: b < r.nextRatio(), Bucket: b}
	case ModeShadow:
		return Decision{Shadow: r.RatioBP == 0 || b < r.RatioBP, Bucket: b}
	}
	return Decision{Bucket: b}
}

func (r Rule) validate(flows *FlowSet) error {
	var problems []string
	if _, err := flows.Version(r.StableFlow, r.StableVersion); err != nil {
		problems = append(problems, fmt.Sprintf("stable flow %s v%d does not exist", r.StableFlow, r.StableVersion))
	}
	switch r.Mode {
	case ModeOff, ModeShadow, ModeSplit:
	default:
		problems = append(problems, fmt.Sprintf("mode %q is not off, shadow or split", r.Mode))
	}
	if r.RatioBP < 0 || r.RatioBP > Buckets {
		problems = append(problems, fmt.Sprintf("ratio_bp %d is not between 0 and 10000", r.RatioBP))
	}
	if r.Mode != ModeOff || r.CandidateFlow != "" {
		if r.CandidateFlow == "" {
			problems = append(problems, "mode "+r.Mode+" needs a candidate flow")
		} else if _, err := flows.Version(r.CandidateFlow, r.CandidateVersion); err != nil {
			problems = append(problems, fmt.Sprintf("candidate flow %s v%d does not exist", r.CandidateFlow, r.CandidateVersion))
		}
	}
	if r.CandidateFlow == r.StableFlow && r.CandidateVersion == r.StableVersion && r.CandidateFlow != "" {
		problems = append(problems, "candidate is the stable flow itself")
	}
	if len(r.Salt) > 64 {
		problems = append(problems, "salt is longer than 64 characters")
	}
	if r.Ramp != nil {
		problems = append(problems, r.Ramp.problems()...)
		if r.RampStep < 0 || r.RampStep >= max(len(r.Ramp.StepsBP), 1) {
			problems = append(problems, fmt.Sprintf("ramp step %d is not one of the schedule's", r.RampStep))
		}
		if r.Mode == ModeShadow {
			problems = append(problems, "a ramp steps a split ratio: use mode split (or off)")
		}
	}
	if len(problems) > 0 {
		return &RuleError{Problems: problems}
	}
	return nil
}

// RuleError lists every problem of a rejected rule.
type RuleError struct{ Problems []string }

func (e *RuleError) Error() string { return fmt.Sprintf("invalid release rule: %v", e.Problems) }

// Unwrap is ErrInvalidRule with every problem as a detail, for the edges.
func (e *RuleError) Unwrap() error {
	return ErrInvalidRule.With(map[string]any{"problems": e.Problems}, "%s", e.Error())
}

// GuardConfig is the match-rate guard on raising a ratio.
type GuardConfig struct {
	MinMatchRate   float64       // default 0.999
	MinComparisons int           // default 1000
	Window         time.Duration // how recent "recent" is; default 24h
}

// RuleChange is an ops request to change a rule.
type RuleChange struct {
	Rule          Rule
	ExpectVersion int    // 0: the site has no rule yet
	Actor         string // who
	Force         bool   // skip the match-rate guard (needs a reason)
	Reason        string

	// Set by the ramp job only.
	system  bool                                // the ramp's own step: guarded by the ramp's guards, not the raise guard
	guard   map[string]any                      // a rollback's guard, value and threshold, for the audit
	inTx    func(context.Context, pgx.Tx) error // the lease's fencing check
	newStep bool                                // the ramp starts a step: note when, and the comparison totals
}

// GuardError is the guard's refusal with the figures behind it.
type GuardError struct {
	MatchRate      float64
	Comparisons    int
	MinMatchRate   float64
	MinComparisons int
}

func (e *GuardError) Error() string {
	return fmt.Sprintf("shadow match rate %.4f over %d comparisons; raising needs %.4f over at least %d (or force with a reason)",
		e.MatchRate, e.Comparisons, e.MinMatchRate, e.MinComparisons)
}

// Unwrap is ErrMatchRateTooLow with the guard's figures as details, for
// the edges.
func (e *GuardError) Unwrap() error {
	return ErrMatchRateTooLow.With(map[string]any{"match_rate": e.MatchRate, "comparisons": e.Comparisons,
		"min_match_rate": e.MinMatchRate, "min_comparisons": e.MinComparisons}, "%s", e.Error())
}

// Releases keeps release rules: PostgreSQL is the source of truth, every
// instance holds them all in memory, a change is announced on Redis pub/sub
// and a periodic resync covers missed messages and Redis outages.
type Releases struct {
	db      *pgxpool.Pool
	rdb     *redis.Client
	channel string
	flows   *FlowSet
	guard   GuardConfig
	log     *zap.Logger

	rules   atomic.Pointer[map[string]Rule]
	applied atomic.Int64 // changes applied from signals, for tests and metrics
	mu      sync.Mutex   // serialises reloads
	onApply func(site string, version int)

	rampDefaults Ramp
	ramp         *rampMetrics // nil without WithRamp
}

// NewReleases builds the rule store; Load must run before use and Watch keeps
// it current.
func NewReleases(db *pgxpool.Pool, rdb *redis.Client, prefix string, flows *FlowSet, guard GuardConfig, log *zap.Logger, opts ...ReleasesOption) *Releases {
	if guard.MinMatchRate == 0 {
		guard.MinMatchRate = 0.999
	}
	if guard.MinComparisons == 0 {
		guard.MinComparisons = 1000
	}
	if guard.Window == 0 {
		guard.Window = 24 * time.Hour
	}
	r := &Releases{db: db, rdb: rdb, channel: prefix + "release", flows: flows, guard: guard, log: log, rampDefaults: DefaultRamp()}
	for _, o := range opts {
		o(r)
	}
	empty := map[string]Rule{}
	r.rules.Store(&empty)
	return r
}

// OnApply registers a callback run whenever this instance applies a rule
// version (metrics, tests of propagation).
func (r *Releases) OnApply(f func(site string, version int)) { r.onApply = f }

// Rule is the site's current rule and whether it has one.
func (r *Releases) Rule(site string) (Rule, bool) {
	rule, ok := (*r.rules.Load())[site]
	return rule, ok
}

// Get returns the site's rule, or the implicit one: the market flow, off.
func (r *Releases) Get(site string) (Rule, error) {
	if rule, ok := r.Rule(site); ok {
		return rule, nil
	}
	flow, err := r.flows.ForStation(site)
	if err != nil {
		return Rule{}, err
	}
	return Rule{SiteID: site, StableFlow: flow.Name, StableVersion: flow.Version, Mode: ModeOff}, nil
}

// Load reads every rule from PostgreSQL and swaps them in.
func (r *Releases) Load(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rows, err := r.db.Query(ctx, `SELECT `+ruleColumns+` FROM release_rules`)
	if err != nil {
		return fmt.Errorf("sorting: load release rules: %w", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[Rule])
	if err != nil {
		return fmt.Errorf("sorting: load release rules: %w", err)
	}
	old := *r.rules.Load()
	next := make(map[string]Rule, len(all))
	for _, rule := range all {
		next[rule.SiteID] = rule
	}
	r.rules.Store(&next)
	for site, rule := range next {
		if old[site].Version != rule.Version && r.onApply != nil {
			r.onApply(site, rule.Version)
		}
		if r.ramp != nil {
			served := 0
			if rule.Mode == ModeSplit {
				served = rule.RatioBP
			}
			r.ramp.ratio.WithLabelValues(site).Set(float64(served))
		}
	}
	return nil
}

// Watch applies announced changes and resyncs every interval until ctx ends.
func (r *Releases) Watch(ctx context.Context, resync time.Duration) {
	watch(ctx, r.rdb, r.channel, resync, func(ctx context.Context) error {
		err := r.Load(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("release rules reload failed", zap.Error(err))
		}
		return err
	}, func() { r.applied.Add(1) })
}

// Put validates and stores a rule change, checks the match-rate guard when
// the change raises the share of parcels the candidate serves, audits it, and
// announces it to every instance.
func (r *Releases) Put(ctx context.Context, c RuleChange) (Rule, error) {
	return r.write(ctx, c, "update")
}

// Kill switches a site's rule off at once; never guarded.
func (r *Releases) Kill(ctx context.Context, site, actor, reason string) (Rule, error) {
	cur, err := r.Get(site)
	if err != nil {
		return Rule{}, err
	}
	next := cur
	next.Mode, next.RatioBP = ModeOff, 0
	return r.write(ctx, RuleChange{Rule: next, ExpectVersion: cur.Version, Actor: actor, Reason: reason, Force: true}, "kill")
}

func (r *Releases) write(ctx context.Context, c RuleChange, action string) (Rule, error) {
	next := c.Rule
	if next.Salt == "" {
		if cur, ok := r.Rule(next.SiteID); ok {
			next.Salt = cur.Salt
		} else {
			var b [8]byte
			_, _ = rand.Read(b[:])
			next.Salt = hex.EncodeToString(b[:])
		}
	}
	if next.Mode == ModeOff && next.CandidateFlow == "" {
		next.CandidateVersion = 0
	}
	switch {
	case c.system: // the ramp job set the step itself
	case action == "kill":
		if next.Ramp != nil && next.RampState == RampRunning {
			next.RampState = RampRolledBack
		}
	case next.Ramp != nil:
		// Ops set a schedule: it starts (again) at the step of the ratio
		// asked for, or the first one.
		ramp := next.Ramp.withDefaults(r.rampDefaults)
		next.Ramp, next.RampStep, next.RampState, c.newStep = &ramp, 0, "", true
		if next.Mode == ModeSplit && len(ramp.problems()) == 0 {
			next.RampStep = max(slices.Index(ramp.StepsBP, next.RatioBP), 0)
			next.RatioBP = ramp.StepsBP[next.RampStep]
			next.RampState = RampRunning
			if next.RampStep == len(ramp.StepsBP)-1 {
				next.RampState = RampDone
			}
		}
	default:
		next.RampStep, next.RampState = 0, ""
	}
	if err := next.validate(r.flows); err != nil {
		// A flow version published on another instance a moment ago may
		// not have reached this one yet: look once more in PostgreSQL.
		if rerr := r.flows.Reload(ctx); rerr != nil {
			return Rule{}, err
		}
		if err := next.validate(r.flows); err != nil {
			return Rule{}, err
		}
	}
	if c.Force && c.Reason == "" {
		return Rule{}, fmt.Errorf("forcing past the guard: %w", ErrReasonRequired)
	}
	var out Rule
	err := pgx.BeginFunc(ctx, r.db, func(tx pgx.Tx) error {
		if c.inTx != nil {
			if err := c.inTx(ctx, tx); err != nil {
				return err
			}
		}
		var before *Rule
		var cur Rule
		rows, err := tx.Query(ctx, `SELECT `+ruleColumns+` FROM release_rules WHERE site_id = $1 FOR UPDATE`, next.SiteID)
		if err == nil {
			cur, err = pgx.CollectExactlyOneRow(rows, pgx.RowToStructByPos[Rule])
		}
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if c.ExpectVersion != 0 {
				return ErrRuleConflict
			}
		case err != nil:
			return err
		default:
			if cur.Version != c.ExpectVersion {
				return ErrRuleConflict
			}
			before = &cur
		}
		if !c.Force && !c.system && raisesCandidateShare(before, next) {
			if err := r.checkGuard(ctx, tx, next.SiteID); err != nil {
				return err
			}
		}
		next.Version = 1
		if before != nil {
			next.Version = before.Version + 1
		}
		switch {
		case c.newStep:
			err := tx.QueryRow(ctx, `SELECT now(), coalesce(sum(comparisons), 0), coalesce(sum(mismatches), 0)
				FROM reconciliation_counts WHERE site_id = $1 AND source = 'shadow'`, next.SiteID).
				Scan(&next.StepStartedAt, &next.BaseCompared, &next.BaseMismatch)
			if err != nil {
				return err
			}
		case before != nil:
			next.StepStartedAt, next.BaseCompared, next.BaseMismatch = before.StepStartedAt, before.BaseCompared, before.BaseMismatch
		default:
			next.StepStartedAt = time.Now()
		}
		var cand *string
		var candV *int
		if next.CandidateFlow != "" {
			cand, candV = &next.CandidateFlow, &next.CandidateVersion
		}
		err = tx.QueryRow(ctx, `INSERT INTO release_rules
			(site_id, stable_flow, stable_version, candidate_flow, candidate_version, mode, ratio_bp, salt, version, updated_by, updated_at,
			 ramp, ramp_step, ramp_state, step_started_at, step_base_comparisons, step_base_mismatches)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now(), $11, $12, $13, $14, $15, $16)
			ON CONFLICT (site_id) DO UPDATE SET stable_flow = $2, stable_version = $3, candidate_flow = $4, candidate_version = $5,
			  mode = $6, ratio_bp = $7, salt = $8, version = $9, updated_by = $10, updated_at = now(),
			  ramp = $11, ramp_step = $12, ramp_state = $13, step_started_at = $14, step_base_comparisons = $15, step_base_mismatches = $16
			RETURNING updated_at`,
			next.SiteID, next.StableFlow, next.StableVersion, cand, candV, next.Mode, next.RatioBP, next.Salt, next.Version, c.Actor,
			next.Ramp, next.RampStep, next.RampState, next.StepStartedAt, next.BaseCompared, next.BaseMismatch).
			Scan(&next.UpdatedAt)
		if err != nil {
			return err
		}
		next.UpdatedBy = c.Actor
		beforeJSON, _ := json.Marshal(before)
		afterJSON, _ := json.Marshal(next)
		if before == nil {
			beforeJSON = nil
		}
		forced := c.Force && action != "kill" && !c.system && raisesCandidateShare(before, next)
		var guardJSON []byte
		if c.guard != nil {
			guardJSON, _ = json.Marshal(c.guard)
		}
		_, err = tx.Exec(ctx, `INSERT INTO release_audit (site_id, actor, action, reason, forced, before, after, guard)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			next.SiteID, c.Actor, action, c.Reason, forced, beforeJSON, afterJSON, guardJSON)
		out = next
		return err
	})
	if err != nil {
		if errors.Is(err, ErrRuleConflict) {
			return Rule{}, fmt.Errorf("site %s: %w", next.SiteID, err)
		}
		return Rule{}, err
	}
	// Apply here at once, then tell the others. A lost signal is covered by
	// the resync.
	if err := r.Load(ctx); err != nil {
		r.log.Warn("release rules reload failed", zap.Error(err))
	}
	if r.rdb != nil {
		if err := r.rdb.Publish(ctx, r.channel, out.SiteID+":"+strconv.Itoa(out.Version)).Err(); err != nil {
			r.log.Warn("release change not announced; instances pick it up at the next resync", zap.Error(err))
		}
	}
	return out, nil
}

// raisesCandidateShare reports whether next serves more parcels with the
// candidate than before: what the guard protects.
func raisesCandidateShare(before *Rule, next Rule) bool {
	share := func(r Rule) int {
		if r.Mode == ModeSplit {
			return r.RatioBP
		}
		return 0
	}
	prev := 0
	if before != nil {
		prev = share(*before)
		if before.CandidateFlow != next.CandidateFlow || before.CandidateVersion != next.CandidateVersion || before.Salt != next.Salt {
			prev = 0 // a new candidate starts from nothing
		}
	}
	return share(next) > prev
}

func (r *Releases) checkGuard(ctx context.Context, tx pgx.Tx, site string) error {
	var comparisons, mismatches int
	err := tx.QueryRow(ctx, `SELECT coalesce(sum(comparisons), 0), coalesce(sum(mismatches), 0) FROM reconciliation_counts
		WHERE site_id = $1 AND source = 'shadow' AND minute >= now() - make_interval(secs => $2)`,
		site, r.guard.Window.Seconds()).Scan(&comparisons, &mismatches)
	if err != nil {
		return err
	}
	rate := 0.0
	if comparisons > 0 {
		rate = float64(comparisons-mismatches) / float64(comparisons)
	}
	if comparisons < r.guard.MinComparisons || rate < r.guard.MinMatchRate {
		return &GuardError{MatchRate: rate, Comparisons: comparisons, MinMatchRate: r.guard.MinMatchRate, MinComparisons: r.guard.MinComparisons}
	}
	return nil
}

// AuditEntry is one rule change.
type AuditEntry struct {
	ID        int64           `json:"id"`
	SiteID    string          `json:"site_id"`
	Actor     string          `json:"actor"`
	Action    string          `json:"action"`
	Reason    string          `json:"reason"`
	Forced    bool            `json:"forced"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	CreatedAt time.Time       `json:"created_at"`
	Guard     json.RawMessage `json:"guard,omitempty"` // a ramp rollback's guard, value and threshold
}

// Audit lists rule changes, newest first; site "" means every site.
func (r *Releases) Audit(ctx context.Context, site string, limit int) ([]AuditEntry, error) {
	rows, err := r.db.Query(ctx, `SELECT id, site_id, actor, action, reason, forced, coalesce(before, 'null'::jsonb), after, created_at, guard
		FROM release_audit WHERE $1 = '' OR site_id = $1 ORDER BY id DESC LIMIT $2`, site, limit)
	if err != nil {
		return nil, fmt.Errorf("sorting: audit: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowToStructByPos[AuditEntry])
}
