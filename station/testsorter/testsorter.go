// Package testsorter plays a sorting machine against a running station over
// gRPC: for each parcel it asks for a chute (Resolve) and confirms that the
// parcel went into it (Confirm SORTED), as a cross-belt sorter does at the
// induction point and at the chute. It is what `station sorter feed` runs,
// so a newcomer can watch a machine fill a chute-bound bag without one.
package testsorter

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	stationv1 "github.com/expresshub/station/proto/station/v1"
)

// KeyHeader is the gRPC metadata that carries a sorter's key.
const KeyHeader = "x-sorter-key"

// Feeder sends parcels as one sorter.
type Feeder struct {
	Client    stationv1.SorterServiceClient
	Key       string        // the sorter's key (station sorter add/rotate)
	StationID string        // the sorter's station
	Budget    time.Duration // the Resolve deadline a belt gives, 0 for 300ms
	// Sequence gives each confirm its sequence number; it must increase
	// per sorter across runs, so the default is the wall clock in µs.
	Sequence func() uint64
}

// Result is what happened to one parcel.
type Result struct {
	TrackingNo  string
	Decision    *stationv1.Decision
	WorkOrderID string // the confirm's work order
	Replayed    bool
}

// NewFeeder returns a feeder over conn.
func NewFeeder(conn grpc.ClientConnInterface, key, stationID string) *Feeder {
	return &Feeder{Client: stationv1.NewSorterServiceClient(conn), Key: key, StationID: stationID}
}

// Sort resolves a chute for the parcel and confirms it sorted into that
// chute. A reject or a parcel with no chute is confirmed REJECTED, as the
// machine would report a parcel that ran off the end of the belt.
func (f *Feeder) Sort(ctx context.Context, trackingNo string) (Result, error) {
	ctx = metadata.AppendToOutgoingContext(ctx, KeyHeader, f.Key)
	budget := f.Budget
	if budget <= 0 {
		budget = 300 * time.Millisecond
	}
	rctx, cancel := context.WithTimeout(ctx, budget)
	res, err := f.Client.Resolve(rctx, &stationv1.ResolveRequest{StationId: f.StationID, TrackingNo: trackingNo})
	cancel()
	if err != nil {
		return Result{TrackingNo: trackingNo}, fmt.Errorf("testsorter: resolve %s: %w", trackingNo, err)
	}
	d := res.GetDecision()
	if d == nil {
		return Result{TrackingNo: trackingNo}, errors.New("testsorter: resolve " + trackingNo + ": no decision")
	}
	outcome := stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED
	if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_REJECT || d.GetChute() <= 0 {
		outcome = stationv1.ConfirmOutcome_CONFIRM_OUTCOME_REJECTED
	}
	seq := f.Sequence
	if seq == nil {
		seq = func() uint64 { return uint64(time.Now().UnixMicro()) }
	}
	cres, err := f.Client.Confirm(ctx, &stationv1.ConfirmRequest{StationId: f.StationID, Sequence: seq(),
		Outcome: outcome, TrackingNo: trackingNo, Chute: d.GetChute(), OccurredAt: timestamppb.Now()})
	if err != nil {
		return Result{TrackingNo: trackingNo, Decision: d}, fmt.Errorf("testsorter: confirm %s into chute %d: %w", trackingNo, d.GetChute(), err)
	}
	return Result{TrackingNo: trackingNo, Decision: d, WorkOrderID: cres.GetWorkOrderId(), Replayed: cres.GetReplayed()}, nil
}

// String is one line for a terminal.
func (r Result) String() string {
	d := r.Decision
	s := fmt.Sprintf("%s  chute %d", r.TrackingNo, d.GetChute())
	if d.GetChuteKind() == stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP {
		s += "  next hop " + d.GetNextHop()
	} else {
		s += "  " + kindName(d.GetChuteKind()) + " chute"
	}
	if d.GetReasonCode() != "" {
		s += "  " + d.GetReasonCode()
	}
	return s + "  (" + sourceName(d.GetSource()) + ")  confirmed: work order " + r.WorkOrderID
}

func kindName(k stationv1.ChuteKind) string {
	switch k {
	case stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP:
		return "next hop"
	case stationv1.ChuteKind_CHUTE_KIND_EXCEPTION:
		return "exception"
	case stationv1.ChuteKind_CHUTE_KIND_OVERFLOW:
		return "overflow"
	case stationv1.ChuteKind_CHUTE_KIND_REJECT:
		return "reject"
	}
	return "unknown"
}

func sourceName(s stationv1.DecisionSource) string {
	switch s {
	case stationv1.DecisionSource_DECISION_SOURCE_PRESORTED:
		return "pre-sorted"
	case stationv1.DecisionSource_DECISION_SOURCE_ON_THE_FLY:
		return "sorted on the fly"
	case stationv1.DecisionSource_DECISION_SOURCE_FALLBACK:
		return "fallback"
	}
	return "unknown source"
}
