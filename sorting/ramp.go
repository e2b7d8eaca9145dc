package sorting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// Ramp states.
const (
	RampRunning    = "running"
	RampDone       = "done"
	RampRolledBack = "rolled_back"
)

// What a ramp does when a guard breaks.
const (
	BreachOff      = "off"      // the rule goes off: stable serves everyone
	BreachPrevious = "previous" // back one step, and the ramp stops there
)

// Guard names, as the audit, the metrics and the ops page show them.
const (
	GuardMatchRate     = "match_rate"
	GuardExceptionRate = "exception_rate"
	GuardNoChuteRate   = "no_chute_rate"
	GuardP99           = "sort_p99"
)

// Ramp is a release rule's schedule: the split ratio goes through StepsBP
// by itself, each step after at least MinStepTime and MinComparisons shadow
// comparisons of the next step's parcels, and only while every guard holds.
type Ramp struct {
	StepsBP        []int    `json:"steps_bp"`         // ascending basis points, e.g. [100, 500, 2500, 10000]
	MinStepTime    Duration `json:"min_step_time"`    // T: at least this long on each step
	MinComparisons int      `json:"min_comparisons"`  // N: shadow comparisons on each step
	MinMatchRate   float64  `json:"min_match_rate"`   // guard: shadow match rate at least this
	ExceptionDelta float64  `json:"exception_margin"` // guard: candidate's exception-chute rate at most stable's + this
	NoChuteDelta   float64  `json:"no_chute_margin"`  // guard: candidate's NO_CHUTE rate at most stable's + this
	MaxP99Ratio    float64  `json:"max_p99_ratio"`    // guard: candidate's sort p99 at most this times stable's
	MinSamples     int      `json:"min_samples"`      // sorts each flow needs on a step before the rate and p99 guards judge
	OnBreach       string   `json:"on_breach"`        // off or previous
}

// Duration is a time.Duration written as "10m" in JSON.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as Go writes it ("1m30s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "90s", "10m" and the like.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string like \"10m\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a number with a unit, like 10m", s)
	}
	*d = Duration(v)
	return nil
}

// withDefaults fills the fields left zero from def.
func (r Ramp) withDefaults(def Ramp) Ramp {
	if len(r.StepsBP) == 0 {
		r.StepsBP = slices.Clone(def.StepsBP)
	}
	if r.MinStepTime == 0 {
		r.MinStepTime = def.MinStepTime
	}
	if r.MinComparisons == 0 {
		r.MinComparisons = def.MinComparisons
	}
	if r.MinMatchRate == 0 {
		r.MinMatchRate = def.MinMatchRate
	}
	if r.ExceptionDelta == 0 {
		r.ExceptionDelta = def.ExceptionDelta
	}
	if r.NoChuteDelta == 0 {
		r.NoChuteDelta = def.NoChuteDelta
	}
	if r.MaxP99Ratio == 0 {
		r.MaxP99Ratio = def.MaxP99Ratio
	}
	if r.MinSamples == 0 {
		r.MinSamples = def.MinSamples
	}
	if r.OnBreach == "" {
		r.OnBreach = def.OnBreach
	}
	return r
}

// DefaultRamp is the schedule a rule gets for fields it leaves out, unless
// the configuration says otherwise (release.ramp).
func DefaultRamp() Ramp {
	return Ramp{StepsBP: []int{100, 500, 2500, 10000}, MinStepTime: Duration(10 * time.Minute), MinComparisons: 1000,
		MinMatchRate: 0.999, ExceptionDelta: 0.005, NoChuteDelta: 0.002, MaxP99Ratio: 1.5, MinSamples: 200, OnBreach: BreachOff}
}

func (r Ramp) problems() []string {
	var out []string
	if len(r.StepsBP) == 0 {
		out = append(out, "ramp.steps_bp needs at least one step")
	}
	for i, s := range r.StepsBP {
		if s < 1 || s > Buckets {
			out = append(out, fmt.Sprintf("ramp.steps_bp[%d] = %d is not between 1 and 10000", i, s))
		}
		if i > 0 && s <= r.StepsBP[i-1] {
			out = append(out, "ramp.steps_bp must be ascending")
		}
	}
	if r.MinStepTime < 0 || r.MinComparisons < 1 || r.MinSamples < 1 {
		out = append(out, "ramp.min_step_time must be at least 0, min_comparisons and min_samples at least 1")
	}
	if r.MinMatchRate <= 0 || r.MinMatchRate > 1 {
		out = append(out, "ramp.min_match_rate must be in (0, 1]")
	}
	if r.ExceptionDelta < 0 || r.NoChuteDelta < 0 || r.ExceptionDelta > 1 || r.NoChuteDelta > 1 {
		out = append(out, "ramp.exception_margin and no_chute_margin must be between 0 and 1")
	}
	if r.MaxP99Ratio < 1 {
		out = append(out, "ramp.max_p99_ratio must be at least 1")
	}
	if r.OnBreach != BreachOff && r.OnBreach != BreachPrevious {
		out = append(out, fmt.Sprintf("ramp.on_breach %q is not off or previous", r.OnBreach))
	}
	return out
}

// nextRatio is the ratio the next raise would serve, whose extra buckets a
// split shadows: the schedule's next step, or the fixed RampSteps.
func (r Rule) nextRatio() int {
	if r.Ramp != nil && r.RampState == RampRunning && r.RampStep >= 0 && r.RampStep+1 < len(r.Ramp.StepsBP) {
		return r.Ramp.StepsBP[r.RampStep+1]
	}
	return NextRampStep(r.RatioBP)
}

// GuardValue is one guard's reading on the current step.
type GuardValue struct {
	Guard     string  `json:"guard"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Op        string  `json:"op"`     // how value must compare to threshold: ">=" or "<="
	Judged    bool    `json:"judged"` // false: not enough data yet
	Holds     bool    `json:"holds"`
	Note      string  `json:"note,omitempty"`
}

// RampStatus is a ramp's position and its guards: what the ops page shows
// and what the ramp job decides on.
type RampStatus struct {
	SiteID        string       `json:"site_id"`
	Mode          string       `json:"mode"`
	RatioBP       int          `json:"ratio_bp"`
	Ramp          *Ramp        `json:"ramp"`
	Step          int          `json:"step"`
	State         string       `json:"state"`
	StepStartedAt time.Time    `json:"step_started_at"`
	OnStepFor     Duration     `json:"on_step_for"`
	Comparisons   int64        `json:"comparisons"` // on this step
	Mismatches    int64        `json:"mismatches"`
	NextRatioBP   int          `json:"next_ratio_bp,omitempty"`
	Guards        []GuardValue `json:"guards"`
	Ready         bool         `json:"ready"` // time and comparisons reached and every guard holds
	Breach        *GuardValue  `json:"breach,omitempty"`
	Version       int          `json:"version"`
}

type flowStats struct {
	sorts, exceptions, noChute int64
	p99                        float64 // ns
}

// RampStatus reads the site's ramp and its guards on the current step.
func (r *Releases) RampStatus(ctx context.Context, site string) (RampStatus, error) {
	rule, ok := r.Rule(site)
	if !ok || rule.Ramp == nil {
		return RampStatus{SiteID: site, Guards: []GuardValue{}}, nil
	}
	return r.evaluate(ctx, rule)
}

func (r *Releases) evaluate(ctx context.Context, rule Rule) (RampStatus, error) {
	ramp := *rule.Ramp
	st := RampStatus{SiteID: rule.SiteID, Mode: rule.Mode, RatioBP: rule.RatioBP, Ramp: rule.Ramp, Step: rule.RampStep,
		State: rule.RampState, StepStartedAt: rule.StepStartedAt, Version: rule.Version, Guards: []GuardValue{}}
	var now time.Time
	var total, mism int64
	err := r.db.QueryRow(ctx, `SELECT now(), coalesce(sum(comparisons), 0), coalesce(sum(mismatches), 0)
		FROM reconciliation_counts WHERE site_id = $1 AND source = 'shadow'`, rule.SiteID).Scan(&now, &total, &mism)
	if err != nil {
		return st, fmt.Errorf("sorting: ramp %s: %w", rule.SiteID, err)
	}
	st.OnStepFor = Duration(now.Sub(rule.StepStartedAt).Truncate(time.Millisecond))
	st.Comparisons, st.Mismatches = max(total-rule.BaseCompared, 0), max(mism-rule.BaseMismatch, 0)
	if rule.RampStep >= 0 && rule.RampStep+1 < len(ramp.StepsBP) {
		st.NextRatioBP = ramp.StepsBP[rule.RampStep+1]
	}
	rows, err := r.db.Query(ctx, `SELECT flow = $2 AND flow_version = $3, count(*),
			count(*) FILTER (WHERE exception_code IS NOT NULL), count(*) FILTER (WHERE exception_code = $6),
			coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY (trace->>'duration_ns')::float8), 0)
		FROM sort_results WHERE station_id = $1 AND created_at >= $4
		  AND ((flow = $2 AND flow_version = $3) OR (flow = $5 AND flow_version = $7)) GROUP BY 1`,
		rule.SiteID, rule.CandidateFlow, rule.CandidateVersion, rule.StepStartedAt, rule.StableFlow, CodeNoChute, rule.StableVersion)
	if err != nil {
		return st, fmt.Errorf("sorting: ramp %s: %w", rule.SiteID, err)
	}
	var cand, stable flowStats
	for rows.Next() {
		var isCand bool
		var fs flowStats
		if err := rows.Scan(&isCand, &fs.sorts, &fs.exceptions, &fs.noChute, &fs.p99); err != nil {
			rows.Close()
			return st, err
		}
		if isCand {
			cand = fs
		} else {
			stable = fs
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return st, err
	}

	match := GuardValue{Guard: GuardMatchRate, Threshold: ramp.MinMatchRate, Op: ">="}
	if st.Comparisons > 0 {
		match.Value = float64(st.Comparisons-st.Mismatches) / float64(st.Comparisons)
	}
	match.Judged = st.Comparisons >= int64(ramp.MinComparisons)
	match.Holds = !match.Judged || match.Value >= ramp.MinMatchRate
	match.Note = fmt.Sprintf("%d of %d comparisons", st.Comparisons, ramp.MinComparisons)
	st.Guards = append(st.Guards, match)

	enough := cand.sorts >= int64(ramp.MinSamples) && stable.sorts >= int64(ramp.MinSamples)
	note := fmt.Sprintf("candidate %d, stable %d sorts (judged from %d each)", cand.sorts, stable.sorts, ramp.MinSamples)
	rate := func(n, of int64) float64 {
		if of == 0 {
			return 0
		}
		return float64(n) / float64(of)
	}
	for _, g := range []struct {
		name   string
		c, s   float64
		margin float64
	}{
		{GuardExceptionRate, rate(cand.exceptions, cand.sorts), rate(stable.exceptions, stable.sorts), ramp.ExceptionDelta},
		{GuardNoChuteRate, rate(cand.noChute, cand.sorts), rate(stable.noChute, stable.sorts), ramp.NoChuteDelta},
	} {
		v := GuardValue{Guard: g.name, Value: g.c, Threshold: g.s + g.margin, Op: "<=", Judged: enough, Note: note}
		v.Holds = !enough || v.Value <= v.Threshold
		st.Guards = append(st.Guards, v)
	}
	p99 := GuardValue{Guard: GuardP99, Value: cand.p99 / 1e6, Threshold: ramp.MaxP99Ratio * stable.p99 / 1e6, Op: "<=",
		Judged: enough && stable.p99 > 0, Note: note + "; milliseconds"}
	p99.Holds = !p99.Judged || p99.Value <= p99.Threshold
	st.Guards = append(st.Guards, p99)

	for i := range st.Guards {
		if !st.Guards[i].Holds {
			st.Breach = &st.Guards[i]
			break
		}
	}
	st.Ready = st.Breach == nil && rule.RampState == RampRunning && rule.Mode == ModeSplit &&
		time.Duration(st.OnStepFor) >= time.Duration(ramp.MinStepTime) && match.Judged
	return st, nil
}

type rampMetrics struct {
	rollbacks *prometheus.CounterVec
	advances  *prometheus.CounterVec
	ratio     *prometheus.GaugeVec
}

// ReleasesOption adjusts Releases at construction.
type ReleasesOption func(*Releases)

// WithRamp sets the defaults of ramp schedules (fields left zero keep
// DefaultRamp's) and registers the ramp's metrics on reg;
// station_release_ramp_rollbacks_total is the alert.
func WithRamp(defaults Ramp, reg prometheus.Registerer) ReleasesOption {
	return func(r *Releases) {
		r.rampDefaults = defaults.withDefaults(DefaultRamp())
		m := &rampMetrics{
			rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "station_release_ramp_rollbacks_total",
				Help: "Ramps rolled back by a guard, by site and guard: alert on any increase."}, []string{"site", "guard"}),
			advances: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "station_release_ramp_advances_total",
				Help: "Ramp steps taken by themselves, by site."}, []string{"site"}),
			ratio: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "station_release_ratio_bp",
				Help: "Split ratio in basis points this instance serves, by site."}, []string{"site"}),
		}
		if reg != nil {
			reg.MustRegister(m.rollbacks, m.advances, m.ratio)
		}
		r.ramp = m
	}
}

// RampAction is what the ramp job did to one site.
type RampAction struct {
	SiteID string
	Action string // ramp_advance or ramp_rollback
	From   int
	To     int
	Guard  *GuardValue
}

// AdvanceRamps is the ramp job, run by one instance at a time behind a
// lease: each running ramp whose guards hold and whose step has lasted long
// enough goes to its next step; one whose guard breaks rolls back. guard
// runs in each write's transaction (the lease's fencing check).
func (r *Releases) AdvanceRamps(ctx context.Context, guard func(context.Context, pgx.Tx) error) ([]RampAction, error) {
	if err := r.Load(ctx); err != nil {
		return nil, err
	}
	var out []RampAction
	var errs []error
	for _, rule := range *r.rules.Load() {
		if rule.Ramp == nil || rule.RampState != RampRunning || rule.Mode != ModeSplit {
			continue
		}
		st, err := r.evaluate(ctx, rule)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		next := rule
		var act RampAction
		var reason string
		switch {
		case st.Breach != nil:
			b := *st.Breach
			act = RampAction{SiteID: rule.SiteID, Action: "ramp_rollback", From: rule.RatioBP, Guard: &b}
			reason = fmt.Sprintf("guard %s breached: %.4f against threshold %s %.4f (%s)", b.Guard, b.Value, b.Op, b.Threshold, b.Note)
			next.RampState = RampRolledBack
			if rule.Ramp.OnBreach == BreachPrevious && rule.RampStep > 0 {
				next.RampStep--
				next.RatioBP = rule.Ramp.StepsBP[next.RampStep]
			} else {
				next.Mode, next.RatioBP = ModeOff, 0
			}
		case st.Ready && st.NextRatioBP > 0:
			act = RampAction{SiteID: rule.SiteID, Action: "ramp_advance", From: rule.RatioBP}
			next.RampStep++
			next.RatioBP = rule.Ramp.StepsBP[next.RampStep]
			if next.RampStep == len(rule.Ramp.StepsBP)-1 {
				next.RampState = RampDone
			}
			reason = fmt.Sprintf("step %d held %s with %d comparisons, every guard within its threshold", rule.RampStep+1, st.OnStepFor.String(), st.Comparisons)
		default:
			continue
		}
		act.To = next.RatioBP
		var guardJSON map[string]any
		if act.Guard != nil {
			guardJSON = map[string]any{"guard": act.Guard.Guard, "value": act.Guard.Value, "threshold": act.Guard.Threshold,
				"op": act.Guard.Op, "note": act.Guard.Note, "step": rule.RampStep, "ratio_bp": rule.RatioBP}
		}
		_, err = r.write(ctx, RuleChange{Rule: next, ExpectVersion: rule.Version, Actor: "ramp", Reason: reason,
			system: true, guard: guardJSON, inTx: guard, newStep: true}, act.Action)
		if errors.Is(err, ErrRuleConflict) {
			continue // ops changed it meanwhile; the next run judges the new rule
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.ramp != nil {
			if act.Guard != nil {
				r.ramp.rollbacks.WithLabelValues(rule.SiteID, act.Guard.Guard).Inc()
			} else {
				r.ramp.advances.WithLabelValues(rule.SiteID).Inc()
			}
		}
		if act.Guard != nil {
			r.log.Warn("release ramp rolled back", zap.String("site", rule.SiteID), zap.String("guard", act.Guard.Guard),
				zap.Float64("value", act.Guard.Value), zap.Float64("threshold", act.Guard.Threshold))
		}
		out = append(out, act)
	}
	return out, errors.Join(errs...)
}

// SiteOverview is one row of the all-sites release overview.
type SiteOverview struct {
	SiteID       string    `json:"site_id"`
	Mode         string    `json:"mode"`
	RatioBP      int       `json:"ratio_bp"`
	Step         *int      `json:"step"` // 1-based step of its ramp; nil without one
	Steps        int       `json:"steps,omitempty"`
	RampState    string    `json:"ramp_state,omitempty"`
	Candidate    string    `json:"candidate,omitempty"`
	MatchRate    *float64  `json:"match_rate"` // over the guard window; nil without comparisons
	Comparisons  int64     `json:"comparisons"`
	LastChange   time.Time `json:"last_change,omitzero"`
	LastChangeBy string    `json:"last_change_by,omitempty"`
	LastAction   string    `json:"last_action,omitempty"`
}

// Overview is one row per site: every site with a rule or a chute map.
func (r *Releases) Overview(ctx context.Context) ([]SiteOverview, error) {
	rows, err := r.db.Query(ctx, `
		WITH sites AS (SELECT site_id FROM release_rules UNION SELECT station_id FROM chute_maps),
		counts AS (SELECT site_id, sum(comparisons) AS c, sum(mismatches) AS m FROM reconciliation_counts
		           WHERE source = 'shadow' AND minute >= now() - make_interval(secs => $1) GROUP BY site_id),
		last AS (SELECT DISTINCT ON (site_id) site_id, actor, action, created_at FROM release_audit ORDER BY site_id, id DESC)
		SELECT s.site_id, coalesce(c.c, 0), coalesce(c.m, 0), coalesce(l.actor, ''), coalesce(l.action, ''), l.created_at
		FROM sites s LEFT JOIN counts c USING (site_id) LEFT JOIN last l USING (site_id) ORDER BY s.site_id`, r.guard.Window.Seconds())
	if err != nil {
		return nil, fmt.Errorf("sorting: release overview: %w", err)
	}
	defer rows.Close()
	out := []SiteOverview{}
	for rows.Next() {
		var o SiteOverview
		var mism int64
		var at *time.Time
		if err := rows.Scan(&o.SiteID, &o.Comparisons, &mism, &o.LastChangeBy, &o.LastAction, &at); err != nil {
			return nil, err
		}
		if at != nil {
			o.LastChange = *at
		}
		if o.Comparisons > 0 {
			rate := float64(o.Comparisons-mism) / float64(o.Comparisons)
			o.MatchRate = &rate
		}
		o.Mode = ModeOff
		if rule, ok := r.Rule(o.SiteID); ok {
			o.Mode, o.RatioBP = rule.Mode, rule.RatioBP
			if rule.CandidateFlow != "" {
				o.Candidate = fmt.Sprintf("%s v%d", rule.CandidateFlow, rule.CandidateVersion)
			}
			if rule.Ramp != nil {
				step := rule.RampStep + 1
				o.Step, o.Steps, o.RampState = &step, len(rule.Ramp.StepsBP), rule.RampState
			}
		}
		out = append(out, o)
	}
	return out, rows.Err()
}
