package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

type orderCenter struct {
	downstreamv1.UnimplementedOrderCenterServiceServer
	s *Simulator
}

func waybillPB(p Parcel) *downstreamv1.Waybill {
	return &downstreamv1.Waybill{
		TrackingNo:        p.TrackingNo,
		Market:            p.Market,
		ServiceType:       downstreamv1.ServiceType(enumValue(downstreamv1.ServiceType_value, "SERVICE_TYPE_", p.ServiceType)),
		OriginSiteId:      p.Origin,
		DestinationSiteId: p.Destination,
		ShipperCustomerId: p.CustomerID,
		WeightG:           p.WeightG,
		Dimensions:        &downstreamv1.Dimensions{LengthMm: p.LengthMM, WidthMm: p.WidthMM, HeightMm: p.HeightMM},
		SizeClass:         downstreamv1.SizeClass(enumValue(downstreamv1.SizeClass_value, "SIZE_CLASS_", p.SizeClass())),
		CodAmount:         p.CODAmount,
		Currency:          p.Currency,
		GoodsCategory:     downstreamv1.GoodsCategory(enumValue(downstreamv1.GoodsCategory_value, "GOODS_CATEGORY_", p.Goods)),
		Status:            downstreamv1.WaybillStatus(enumValue(downstreamv1.WaybillStatus_value, "WAYBILL_STATUS_", p.Status)),
	}
}

func (o orderCenter) GetWaybill(_ context.Context, req *downstreamv1.GetWaybillRequest) (*downstreamv1.GetWaybillResponse, error) {
	p, err := o.s.fx.Parcel(req.GetTrackingNo())
	if err != nil {
		return nil, statusOf(err)
	}
	return &downstreamv1.GetWaybillResponse{Waybill: waybillPB(p)}, nil
}

func (o orderCenter) BatchGetWaybills(_ context.Context, req *downstreamv1.BatchGetWaybillsRequest) (*downstreamv1.BatchGetWaybillsResponse, error) {
	if len(req.GetTrackingNos()) > maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d tracking numbers per batch", maxBatch)
	}
	resp := &downstreamv1.BatchGetWaybillsResponse{}
	for _, no := range req.GetTrackingNos() {
		p, err := o.s.fx.Parcel(no)
		switch {
		case errors.Is(err, ErrUnknown):
			resp.NotFound = append(resp.NotFound, strings.ToUpper(strings.TrimSpace(no)))
		case err != nil:
			return nil, statusOf(err)
		default:
			resp.Waybills = append(resp.Waybills, waybillPB(p))
		}
	}
	return resp, nil
}

func (o orderCenter) GetCustomerStatus(_ context.Context, req *downstreamv1.GetCustomerStatusRequest) (*downstreamv1.GetCustomerStatusResponse, error) {
	blocked, err := CustomerBlocked(req.GetCustomerId())
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &downstreamv1.GetCustomerStatusResponse{
		CustomerId: strings.ToUpper(strings.TrimSpace(req.GetCustomerId())),
		Status:     downstreamv1.CustomerStatus_CUSTOMER_STATUS_ACTIVE,
	}
	if blocked {
		resp.Status = downstreamv1.CustomerStatus_CUSTOMER_STATUS_BLOCKED
		resp.Reason = "account suspended: overdue invoices"
	}
	return resp, nil
}

func (o orderCenter) GetFiscalDocument(_ context.Context, req *downstreamv1.GetFiscalDocumentRequest) (*downstreamv1.GetFiscalDocumentResponse, error) {
	p, err := o.s.fx.Parcel(req.GetTrackingNo())
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &downstreamv1.GetFiscalDocumentResponse{
		TrackingNo: p.TrackingNo,
		Required:   p.FiscalRequired,
		Present:    p.FiscalPresent,
		Valid:      p.FiscalPresent,
		AccessKey:  p.FiscalKey,
	}
	switch {
	case !p.FiscalRequired:
		resp.Reason = "no fiscal document required in market " + p.Market
	case !p.FiscalPresent:
		resp.Reason = "NF-e missing"
	}
	return resp, nil
}

func (o orderCenter) PushTrackingEvents(ctx context.Context, req *downstreamv1.PushTrackingEventsRequest) (*downstreamv1.PushTrackingEventsResponse, error) {
	if err := o.s.checkToken(ctx); err != nil {
		return nil, err
	}
	if len(req.GetEvents()) > maxBatch {
		return nil, status.Errorf(codes.InvalidArgument, "at most %d events per batch", maxBatch)
	}
	now := time.Now()
	resp := &downstreamv1.PushTrackingEventsResponse{Acks: make([]*downstreamv1.TrackingEventAck, 0, len(req.GetEvents()))}
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	for _, e := range req.GetEvents() {
		resp.Acks = append(resp.Acks, o.s.acceptLocked(e, now))
	}
	return resp, nil
}

// acceptLocked validates and records one tracking event, however it came
// (pushed over gRPC or consumed from a broker), deduplicating by event id.
// Guarded by s.mu.
func (s *Simulator) acceptLocked(e *downstreamv1.TrackingEvent, now time.Time) *downstreamv1.TrackingEventAck {
	ack := &downstreamv1.TrackingEventAck{EventId: e.GetEventId()}
	no, err := NormalizeTrackingNo(e.GetTrackingNo())
	switch {
	case strings.TrimSpace(e.GetEventId()) == "":
		ack.Status, ack.Reason = downstreamv1.AckStatus_ACK_STATUS_REJECTED, "event_id is required"
		return ack
	case err != nil:
		ack.Status, ack.Reason = downstreamv1.AckStatus_ACK_STATUS_REJECTED, "malformed tracking number"
		return ack
	case e.GetType() == downstreamv1.TrackingEventType_TRACKING_EVENT_TYPE_UNSPECIFIED:
		ack.Status, ack.Reason = downstreamv1.AckStatus_ACK_STATUS_REJECTED, "event type is required"
		return ack
	case strings.TrimSpace(e.GetStationId()) == "":
		ack.Status, ack.Reason = downstreamv1.AckStatus_ACK_STATUS_REJECTED, "station_id is required"
		return ack
	}
	rec := RecordedEvent{
		EventID:     e.GetEventId(),
		TrackingNo:  no,
		StationID:   e.GetStationId(),
		Type:        enumName(downstreamv1.TrackingEventType_name, "TRACKING_EVENT_TYPE_", int32(e.GetType())),
		OperatorID:  e.GetOperatorId(),
		SorterID:    e.GetSorterId(),
		PayloadJSON: e.GetPayloadJson(),
		ReceivedAt:  now,
	}
	if e.GetOccurredAt() != nil {
		rec.OccurredAt = e.GetOccurredAt().AsTime()
	}
	if s.events.add(rec) {
		ack.Status = downstreamv1.AckStatus_ACK_STATUS_ACCEPTED
	} else {
		ack.Status = downstreamv1.AckStatus_ACK_STATUS_DUPLICATE
	}
	return ack
}

func (o orderCenter) IssueToken(_ context.Context, req *downstreamv1.IssueTokenRequest) (*downstreamv1.IssueTokenResponse, error) {
	if err := required("client_id", req.GetClientId()); err != nil {
		return nil, err
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	token := "sim." + hex.EncodeToString(b[:])
	exp := time.Now().Add(o.s.cfg.TokenTTL)
	o.s.mu.Lock()
	defer o.s.mu.Unlock()
	now := time.Now()
	for t, e := range o.s.tokens {
		if now.After(e) {
			delete(o.s.tokens, t)
		}
	}
	o.s.tokens[token] = exp
	return &downstreamv1.IssueTokenResponse{Token: token, ExpiresAt: timestamppb.New(exp)}, nil
}

// checkToken wants "authorization: Bearer <token>" with a live token.
func (s *Simulator) checkToken(ctx context.Context) error {
	if s.cfg.SkipTokenCheck {
		return nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get("authorization")
	if len(v) == 0 || !strings.HasPrefix(v[0], "Bearer ") {
		return status.Error(codes.Unauthenticated, "missing bearer token")
	}
	s.mu.Lock()
	exp, ok := s.tokens[strings.TrimPrefix(v[0], "Bearer ")]
	s.mu.Unlock()
	if !ok || time.Now().After(exp) {
		return status.Error(codes.Unauthenticated, "unknown or expired token")
	}
	return nil
}
