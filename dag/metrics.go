package dag

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics records runs in Prometheus: per flow and node, a latency
// histogram and an outcome counter; per flow, run latency and outcomes.
// A nil *Metrics records nothing.
type Metrics struct {
	nodeSeconds *prometheus.HistogramVec
	nodeTotal   *prometheus.CounterVec
	runSeconds  *prometheus.HistogramVec
	runTotal    *prometheus.CounterVec
}

// NewMetrics creates the collectors and registers them on reg. The caller
// owns reg (no global registry is touched). A nil reg yields nil, nil: no
// metrics.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	if reg == nil {
		return nil, nil
	}
	buckets := []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}
	m := &Metrics{
		nodeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dag_node_duration_seconds",
			Help:    "Time a flow node took, all attempts included, for nodes whose step ran.",
			Buckets: buckets,
		}, []string{"flow", "node", "step"}),
		nodeTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dag_node_outcomes_total",
			Help: "Flow node executions by outcome (ok, skipped, dry_run_skipped, degraded, failed, timed_out, canceled, not_run).",
		}, []string{"flow", "node", "step", "outcome"}),
		runSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "dag_run_duration_seconds",
			Help:    "Time a flow run took.",
			Buckets: buckets,
		}, []string{"flow", "mode"}),
		runTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dag_runs_total",
			Help: "Flow runs by outcome (ok, degraded, failed).",
		}, []string{"flow", "mode", "outcome"}),
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.nodeSeconds, m.nodeTotal, m.runSeconds, m.runTotal} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("dag: register metrics: %w", err)
	}
	return m, nil
}

var outcomes = []Outcome{OutcomeOK, OutcomeSkipped, OutcomeDryRunSkipped, OutcomeDegraded,
	OutcomeFailed, OutcomeTimedOut, OutcomeCanceled, OutcomeNotRun}

// planMetrics holds the collectors of one plan with their labels bound, so
// recording a run costs no label hashing.
type planMetrics struct {
	m        *Metrics
	seconds  []prometheus.Observer
	outcomes [][]prometheus.Counter // [node][index in outcomes]
}

func (m *Metrics) forPlan(p *Plan) *planMetrics {
	if pm := p.metrics.Load(); pm != nil && pm.m == m {
		return pm
	}
	pm := &planMetrics{m: m, seconds: make([]prometheus.Observer, len(p.nodes)), outcomes: make([][]prometheus.Counter, len(p.nodes))}
	for i := range p.nodes {
		n := &p.nodes[i]
		pm.seconds[i] = m.nodeSeconds.WithLabelValues(p.name, n.id, n.step.Name)
		pm.outcomes[i] = make([]prometheus.Counter, len(outcomes))
		for k, o := range outcomes {
			pm.outcomes[i][k] = m.nodeTotal.WithLabelValues(p.name, n.id, n.step.Name, string(o))
		}
	}
	p.metrics.Store(pm) // a plan used with two Metrics recomputes; fine
	return pm
}

func (m *Metrics) observe(p *Plan, res *Result) {
	if m == nil {
		return
	}
	pm := m.forPlan(p)
	for i := range res.Trace.Nodes {
		nt := &res.Trace.Nodes[i]
		for k, o := range outcomes {
			if o == nt.Outcome {
				pm.outcomes[i][k].Inc()
				break
			}
		}
		switch nt.Outcome {
		case OutcomeSkipped, OutcomeDryRunSkipped, OutcomeNotRun:
		default:
			pm.seconds[i].Observe(nt.Duration.Seconds())
		}
	}
	m.runSeconds.WithLabelValues(p.name, res.Trace.Mode).Observe(res.Trace.Duration.Seconds())
	m.runTotal.WithLabelValues(p.name, res.Trace.Mode, res.Trace.Outcome).Inc()
}
