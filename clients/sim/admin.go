package sim

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// admin serves SimAdminService over the same Go methods tests call directly.
type admin struct {
	downstreamv1.UnimplementedSimAdminServiceServer
	s *Simulator
}

func (a admin) SetFault(_ context.Context, req *downstreamv1.SetFaultRequest) (*downstreamv1.SetFaultResponse, error) {
	f := req.GetFault()
	fault := Fault{
		ErrorRate:    f.GetErrorRate(),
		Code:         codes.Code(f.GetCode()),
		Hang:         f.GetHang(),
		AddedLatency: f.GetAddedLatency().AsDuration(),
	}
	if f.GetCode() < 0 {
		return nil, status.Error(codes.InvalidArgument, "fault code must not be negative")
	}
	if err := a.s.SetFault(req.GetMethod(), fault); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &downstreamv1.SetFaultResponse{}, nil
}

func (a admin) ClearFaults(_ context.Context, req *downstreamv1.ClearFaultsRequest) (*downstreamv1.ClearFaultsResponse, error) {
	if err := a.s.ClearFaults(req.GetMethod()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &downstreamv1.ClearFaultsResponse{}, nil
}

func (a admin) SetLatencyProfile(_ context.Context, req *downstreamv1.SetLatencyProfileRequest) (*downstreamv1.SetLatencyProfileResponse, error) {
	p := a.s.Latency()
	if req.GetProfile() != "" {
		var err error
		if p, err = Profile(req.GetProfile()); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	over := make(map[string]Latency, len(req.GetOverrides()))
	for m, l := range req.GetOverrides() {
		over[m] = Latency{Base: l.GetBase().AsDuration(), Jitter: l.GetJitter().AsDuration()}
	}
	p, err := p.With(over)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	a.s.SetLatency(p)
	return &downstreamv1.SetLatencyProfileResponse{}, nil
}

func (a admin) GetCallCounts(context.Context, *downstreamv1.GetCallCountsRequest) (*downstreamv1.GetCallCountsResponse, error) {
	return &downstreamv1.GetCallCountsResponse{Counts: a.s.CallCounts()}, nil
}

func (a admin) GetTrackingEvents(_ context.Context, req *downstreamv1.GetTrackingEventsRequest) (*downstreamv1.GetTrackingEventsResponse, error) {
	resp := &downstreamv1.GetTrackingEventsResponse{}
	for _, e := range a.s.TrackingEvents(req.GetTrackingNo()) {
		ev := &downstreamv1.TrackingEvent{
			EventId:     e.EventID,
			TrackingNo:  e.TrackingNo,
			StationId:   e.StationID,
			Type:        downstreamv1.TrackingEventType(enumValue(downstreamv1.TrackingEventType_value, "TRACKING_EVENT_TYPE_", e.Type)),
			OperatorId:  e.OperatorID,
			SorterId:    e.SorterID,
			PayloadJson: e.PayloadJSON,
		}
		if !e.OccurredAt.IsZero() {
			ev.OccurredAt = timestamppb.New(e.OccurredAt)
		}
		resp.Events = append(resp.Events, &downstreamv1.RecordedTrackingEvent{
			Event:      ev,
			Duplicates: e.Duplicates,
			ReceivedAt: timestamppb.New(e.ReceivedAt),
		})
	}
	resp.TotalAccepted, resp.TotalDuplicates = a.s.EventTotals()
	return resp, nil
}

func (a admin) ResetCounters(_ context.Context, req *downstreamv1.ResetCountersRequest) (*downstreamv1.ResetCountersResponse, error) {
	a.s.Reset(req.GetClearEvents())
	return &downstreamv1.ResetCountersResponse{}, nil
}

// FaultPB converts a fault for SimAdminService.SetFault, for callers in
// other processes.
func FaultPB(f Fault) *downstreamv1.Fault {
	return &downstreamv1.Fault{
		ErrorRate:    f.ErrorRate,
		Code:         int32(f.Code),
		Hang:         f.Hang,
		AddedLatency: durationpb.New(f.AddedLatency),
	}
}
