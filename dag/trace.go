package dag

import (
	"time"
)

// Outcome is what happened to one node in one run.
type Outcome string

const (
	OutcomeOK            Outcome = "ok"
	OutcomeSkipped       Outcome = "skipped"         // its condition was false
	OutcomeDryRunSkipped Outcome = "dry_run_skipped" // effectful, in a dry run
	OutcomeDegraded      Outcome = "degraded"        // failed, fallback applied
	OutcomeFailed        Outcome = "failed"          // failed the run
	OutcomeTimedOut      Outcome = "timed_out"       // its timeout or the run deadline passed
	OutcomeCanceled      Outcome = "canceled"        // stopped because the run was canceled
	OutcomeNotRun        Outcome = "not_run"         // never started: the run ended first
)

// Trace records one run for the API and the ops waterfall. Times are
// nanoseconds; offsets are from the start of the run.
type Trace struct {
	Flow      string        `json:"flow"`
	Version   string        `json:"version"`
	Mode      string        `json:"mode"` // "parallel" or "sequential"
	DryRun    bool          `json:"dry_run"`
	StartedAt time.Time     `json:"started_at"`
	Duration  time.Duration `json:"duration_ns"`
	Outcome   string        `json:"outcome"` // "ok", "degraded" or "failed"
	Error     string        `json:"error,omitempty"`
	// CriticalPath is the chain of nodes, first to last, whose durations
	// add up to CriticalPathDuration: the shortest time the run could have
	// taken with unlimited parallelism and no scheduling cost.
	CriticalPath         []string      `json:"critical_path"`
	CriticalPathDuration time.Duration `json:"critical_path_ns"`
	// Nodes are in config order.
	Nodes []NodeTrace `json:"nodes"`
}

// NodeTrace is one node's line of the waterfall.
type NodeTrace struct {
	Node      string        `json:"node"`
	Step      string        `json:"step"`
	DependsOn []string      `json:"depends_on,omitempty"`
	Outcome   Outcome       `json:"outcome"`
	Start     time.Duration `json:"start_ns"`
	Duration  time.Duration `json:"duration_ns"`
	// Attempts made; more than 1 means the step was retried.
	Attempts int `json:"attempts"`
	// Slack is how much longer this node could have taken without
	// lengthening the critical path; 0 on the critical path.
	Slack    time.Duration `json:"slack_ns"`
	Critical bool          `json:"critical"`
	// Error is the reason for a failed, degraded, timed out or canceled
	// node. It is the step's error text: show it to ops, not to clients.
	Error string `json:"error,omitempty"`
}

// analyze fills the critical path and slack from the node durations, over
// the plan's graph: earliest finish forward, latest finish backward.
func analyze(p *Plan, t *Trace) {
	nodes := t.Nodes
	n := len(nodes)
	if n == 0 {
		return
	}
	scratch := make([]time.Duration, 2*n)
	ef, lf := scratch[:n], scratch[n:]
	var makespan time.Duration
	last := int32(-1)
	for _, i := range p.order {
		var ready time.Duration
		for _, d := range p.nodes[i].deps {
			ready = max(ready, ef[d])
		}
		ef[i] = ready + nodes[i].Duration
		if last < 0 || ef[i] > makespan {
			makespan, last = ef[i], i
		}
	}
	for k := len(p.order) - 1; k >= 0; k-- {
		i := p.order[k]
		lf[i] = makespan
		for _, c := range p.nodes[i].children {
			lf[i] = min(lf[i], lf[c]-nodes[c].Duration)
		}
		nodes[i].Slack = lf[i] - ef[i]
	}
	length := 0
	for i := last; i >= 0; {
		length++
		next := int32(-1)
		for _, d := range p.nodes[i].deps {
			if next < 0 || ef[d] > ef[next] {
				next = d
			}
		}
		i = next
	}
	path := make([]string, length)
	for i := last; i >= 0; {
		length--
		path[length] = nodes[i].Node
		nodes[i].Critical = true
		next := int32(-1)
		for _, d := range p.nodes[i].deps {
			if next < 0 || ef[d] > ef[next] {
				next = d
			}
		}
		i = next
	}
	t.CriticalPath, t.CriticalPathDuration = path, makespan
}
