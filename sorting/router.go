package sorting

import (
	"context"
	"errors"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/ident"
)

// Router decides which flow serves a parcel at a station, by the site's
// release rule, and runs flows: the one place that choice is made, for a
// sort at a terminal, a shadow comparison and the sorting machine alike.
type Router struct {
	flows    *FlowSet
	chutes   *ChuteStore
	metrics  *dag.Metrics
	releases *Releases // nil: every station sorts with its market's flow
}

// NewRouter builds the router; releases may be nil.
func NewRouter(flows *FlowSet, chutes *ChuteStore, metrics *dag.Metrics, releases *Releases) *Router {
	return &Router{flows: flows, chutes: chutes, metrics: metrics, releases: releases}
}

// Choice is the flow that serves a parcel, and the candidate to compare it
// with in shadow (nil when the rule asks for none).
type Choice struct {
	Flow              *Flow
	Shadow            *Flow
	ServedByCandidate bool
}

// Choose picks the flow that serves tn at station: the site's release rule
// may serve the candidate (split) or compare it (shadow); without a rule,
// the market's flow. A rule naming a vanished candidate never stops
// sorting: the stable flow serves.
func (r *Router) Choose(station string, tn ident.TrackingNo) (Choice, error) {
	if r.releases == nil {
		f, err := r.flows.ForStation(station)
		return Choice{Flow: f}, err
	}
	rule, ok := r.releases.Rule(station)
	if !ok {
		f, err := r.flows.ForStation(station)
		return Choice{Flow: f}, err
	}
	stable, err := r.flows.Version(rule.StableFlow, rule.StableVersion)
	if err != nil {
		return Choice{}, err
	}
	d := rule.Decide(tn)
	if !d.ServeCandidate && !d.Shadow {
		return Choice{Flow: stable}, nil
	}
	candidate, err := r.flows.Version(rule.CandidateFlow, rule.CandidateVersion)
	if err != nil {
		return Choice{Flow: stable}, nil
	}
	if d.ServeCandidate {
		return Choice{Flow: candidate, ServedByCandidate: true}, nil
	}
	return Choice{Flow: stable, Shadow: candidate}, nil
}

// Chutes is the chute-map store the router sorts with.
func (r *Router) Chutes() *ChuteStore { return r.chutes }

// Flows is the set of flows it runs.
func (r *Router) Flows() *FlowSet { return r.flows }

// Run runs flow for tn at stationID without recording anything: the
// answer, and the run for its trace.
func (r *Router) Run(ctx context.Context, flow *Flow, stationID string, tn ident.TrackingNo, opts dag.Options) (Result, *dag.Result) {
	opts.Metrics = r.metrics
	res := Result{TrackingNo: string(tn), StationID: stationID, Flow: flow.Name, FlowVersion: flow.Version, Degraded: []dag.Degradation{}}
	run, err := dag.Run(ctx, flow.Plan, []dag.Value{KeyTrackingNo.Bind(string(tn)), KeyStationID.Bind(stationID)}, opts)
	if run != nil {
		if len(run.Degraded) > 0 {
			res.Degraded = run.Degraded
		}
		if wb, ok := dag.Output(run, KeyWaybill); ok {
			res.WeightG = int(wb.WeightG)
		}
	}
	if err == nil {
		hop, _ := dag.Output(run, KeyNextHop)
		chute, _ := dag.Output(run, KeyChute)
		res.NextHop, res.Chute = &hop, chute
		return res, run
	}
	var exc *Exception
	if !errors.As(err, &exc) {
		exc = &Exception{Code: CodeDownstreamUnavailable, Reason: unavailableReason(err)}
	}
	res.Exception = exc
	if m, cerr := r.chutes.Get(ctx, stationID); cerr == nil {
		res.Chute = m.ExceptionChute
	}
	return res, run
}
