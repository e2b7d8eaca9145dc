package whatif

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/expresshub/station/sorting"
)

// maxTraces bounds the recorded traces a prediction reads: the newest of
// the window, enough for a p99.
const maxTraces = 2000

// predictLate predicts late belt decisions for the candidate flow (the
// station's live flow when the candidate names none), kept simple:
//
//   - each node's latency is the p99 of its recorded durations in the
//     window's traces (sort_results.trace, by node id), or, for a node the
//     traces never ran, its configured timeout (else the flow's deadline);
//   - the critical path is the DAG's longest path over those p99s (the sum
//     of every node for the sequential legacy flow), set against the belt's
//     deadline (its budget less the safety margin);
//   - the predicted share of late decisions is, over the recorded traces,
//     the share whose makespan on the candidate's graph (each node at that
//     trace's own duration, a node it did not run at its p99) is past the
//     deadline. Without recorded traces (an upload, or none kept) it is 1
//     when the p99 critical path is past the deadline, else 0.
func (r *Replayer) predictLate(ctx context.Context, station string, from, to time.Time, cand *sorting.Flow, uploaded bool) (*Late, error) {
	flow := cand
	if flow == nil {
		f, err := r.sorter.Flows().ForStation(station)
		if err != nil {
			return nil, nil // no flow: nothing to predict; the replay itself said what it could
		}
		flow = f
	}
	var traces []map[string]time.Duration
	if !uploaded {
		var err error
		if traces, err = r.loadTraces(ctx, station, from, to); err != nil {
			return nil, err
		}
	}
	return predict(flow, traces, r.cfg.BeltDeadline), nil
}

type graphNode struct {
	id      string
	deps    []string
	timeout time.Duration
}

func predict(flow *sorting.Flow, traces []map[string]time.Duration, deadline time.Duration) *Late {
	cfg := flow.Plan.Config()
	byID := map[string]graphNode{}
	for _, n := range cfg.Nodes {
		id := n.ID
		if id == "" {
			id = n.Step
		}
		t := n.Timeout.Std()
		if t <= 0 {
			t = flow.Plan.Deadline()
		}
		byID[id] = graphNode{id: id, deps: n.DependsOn, timeout: t}
	}
	order := flow.Plan.Nodes()
	samples := map[string][]time.Duration{}
	for _, tr := range traces {
		for id, d := range tr {
			samples[id] = append(samples[id], d)
		}
	}
	late := &Late{Flow: FlowRef{Name: flow.Name, Version: flow.Version}, DeadlineMs: msOf(deadline), Samples: len(traces), Steps: []StepLatency{}}
	p99 := map[string]time.Duration{}
	for _, id := range order {
		s := samples[id]
		sl := StepLatency{Node: id, Count: len(s)}
		if len(s) > 0 {
			slices.Sort(s)
			p99[id] = s[max(int(math.Ceil(0.99*float64(len(s))))-1, 0)]
			sl.Source = "recorded"
		} else {
			p99[id] = byID[id].timeout
			sl.Source = "timeout"
		}
		sl.P99Ms = msOf(p99[id])
		late.Steps = append(late.Steps, sl)
	}
	path, length := longest(order, byID, flow.Sequential, func(id string) time.Duration { return p99[id] })
	late.CriticalPath, late.CriticalPathMs = path, msOf(length)
	late.CriticalPastLine = length > deadline
	if len(traces) == 0 {
		if late.CriticalPastLine {
			late.PredictedLate = 1
		}
		return late
	}
	n := 0
	for _, tr := range traces {
		_, l := longest(order, byID, flow.Sequential, func(id string) time.Duration {
			if d, ok := tr[id]; ok {
				return d
			}
			return p99[id]
		})
		if l > deadline {
			n++
		}
	}
	late.PredictedLate = float64(n) / float64(len(traces))
	return late
}

// longest is the longest path through the graph (order is topological) by
// the given durations, and its length; a sequential flow's path is every
// node.
func longest(order []string, nodes map[string]graphNode, sequential bool, dur func(string) time.Duration) ([]string, time.Duration) {
	if sequential {
		var total time.Duration
		for _, id := range order {
			total += dur(id)
		}
		return slices.Clone(order), total
	}
	finish := map[string]time.Duration{}
	prev := map[string]string{}
	var end string
	for _, id := range order {
		var ready time.Duration
		for _, d := range nodes[id].deps {
			if prev[id] == "" || finish[d] > ready {
				ready, prev[id] = finish[d], d
			}
		}
		finish[id] = ready + dur(id)
		if end == "" || finish[id] > finish[end] {
			end = id
		}
	}
	var path []string
	for id := end; id != ""; id = prev[id] {
		path = append([]string{id}, path...)
	}
	return path, finish[end]
}

// loadTraces reads the per-node durations of the window's newest recorded
// traces (terminal sorts keep theirs), partition-bounded like load.
func (r *Replayer) loadTraces(ctx context.Context, station string, from, to time.Time) ([]map[string]time.Duration, error) {
	rows, err := r.db.Query(ctx, `
		SELECT t.id::text, n->>'node', (n->>'duration_ns')::bigint
		  FROM (SELECT id, trace FROM sort_results
		         WHERE station_id = $1 AND recorded_at >= $2 AND recorded_at < $3 AND trace IS NOT NULL AND jsonb_typeof(trace) = 'object'
		         ORDER BY recorded_at DESC LIMIT $4) t,
		       jsonb_array_elements(coalesce(t.trace->'nodes', '[]'::jsonb)) n
		 WHERE n->>'outcome' NOT IN ('not_run', 'canceled')`, station, from, to, maxTraces)
	if err != nil {
		return nil, fmt.Errorf("whatif: read traces of %s: %w", station, err)
	}
	defer rows.Close()
	byTrace := map[string]map[string]time.Duration{}
	var order []string
	for rows.Next() {
		var id, node string
		var ns int64
		if err := rows.Scan(&id, &node, &ns); err != nil {
			return nil, fmt.Errorf("whatif: read traces of %s: %w", station, err)
		}
		m := byTrace[id]
		if m == nil {
			m = map[string]time.Duration{}
			byTrace[id] = m
			order = append(order, id)
		}
		m[node] = time.Duration(ns)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("whatif: read traces of %s: %w", station, err)
	}
	out := make([]map[string]time.Duration, 0, len(order))
	for _, id := range order {
		out = append(out, byTrace[id])
	}
	return out, nil
}

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
