package sorterapi

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt"
)

func badStation() *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{
		Field: "station_id", Description: "not a site id like SG-H01", Reason: "INVALID_STATION_ID"}}}
}

var chuteKinds = map[sorting.ChuteKind]stationv1.ChuteKind{
	sorting.ChuteNextHop:   stationv1.ChuteKind_CHUTE_KIND_NEXT_HOP,
	sorting.ChuteException: stationv1.ChuteKind_CHUTE_KIND_EXCEPTION,
	sorting.ChuteOverflow:  stationv1.ChuteKind_CHUTE_KIND_OVERFLOW,
	sorting.ChuteReject:    stationv1.ChuteKind_CHUTE_KIND_REJECT,
}

var sources = map[belt.DecisionSource]stationv1.DecisionSource{
	belt.FromPresort:  stationv1.DecisionSource_DECISION_SOURCE_PRESORTED,
	belt.FromOnTheFly: stationv1.DecisionSource_DECISION_SOURCE_ON_THE_FLY,
	belt.FromFallback: stationv1.DecisionSource_DECISION_SOURCE_FALLBACK,
}

var outcomes = map[stationv1.ConfirmOutcome]belt.SorterOutcome{
	stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED:        belt.OutcomeSorted,
	stationv1.ConfirmOutcome_CONFIRM_OUTCOME_NO_READ:       belt.OutcomeNoRead,
	stationv1.ConfirmOutcome_CONFIRM_OUTCOME_CHUTE_FULL:    belt.OutcomeChuteFull,
	stationv1.ConfirmOutcome_CONFIRM_OUTCOME_CHUTE_CLEARED: belt.OutcomeChuteCleared,
	stationv1.ConfirmOutcome_CONFIRM_OUTCOME_RECIRCULATED:  belt.OutcomeRecirculated,
	stationv1.ConfirmOutcome_CONFIRM_OUTCOME_REJECTED:      belt.OutcomeRejected,
	stationv1.ConfirmOutcome_CONFIRM_OUTCOME_MISSORT:       belt.OutcomeMissort,
}

func decisionPB(d belt.Decision) *stationv1.Decision {
	return &stationv1.Decision{
		TrackingNo:  d.TrackingNo,
		Chute:       int32(d.Chute),
		ChuteKind:   chuteKinds[d.ChuteKind],
		NextHop:     d.NextHop,
		ReasonCode:  d.ReasonCode,
		Reason:      d.Reason,
		Source:      sources[d.Source],
		Flow:        d.Flow,
		FlowVersion: int32(d.FlowVersion),
		Degraded:    d.Degraded,
	}
}
