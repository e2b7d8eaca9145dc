package clients

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// OrderCenter is the client of the order center: waybills, customers,
// fiscal documents, tracking events. Every call but the token's own carries
// "authorization: Bearer <token>".
type OrderCenter struct {
	rpc    downstreamv1.OrderCenterServiceClient
	ep     *endpoint
	tokens *tokenSource
}

func newOrderCenter(rpc downstreamv1.OrderCenterServiceClient, ep *endpoint, tc TokenConfig, rdb redis.UniversalClient, m *metrics, log *slog.Logger) *OrderCenter {
	o := &OrderCenter{rpc: rpc, ep: ep}
	o.tokens = newTokenSource(o.issueToken, tc, rdb, m, log, ep.deadline("IssueToken")+tc.LockWait)
	return o
}

// issueToken calls IssueToken (never retried by the transport: the token
// source decides when to ask again).
func (o *OrderCenter) issueToken(ctx context.Context, clientID, secret string) (string, time.Time, error) {
	resp, err := invoke(ctx, o.ep, "IssueToken", func(ctx context.Context) (*downstreamv1.IssueTokenResponse, error) {
		return o.rpc.IssueToken(ctx, &downstreamv1.IssueTokenRequest{ClientId: clientID, ClientSecret: secret})
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return resp.GetToken(), resp.GetExpiresAt().AsTime(), nil
}

// Token returns a live access token, fetching or refreshing it if needed.
func (o *OrderCenter) Token(ctx context.Context) (string, error) { return o.tokens.Token(ctx) }

// authed runs an order center call with the token attached. A token the
// order center refuses (revoked, clock skew) is dropped and the call tried
// once more with a fresh one.
func authed[Resp any](ctx context.Context, o *OrderCenter, method string, rpc func(context.Context) (Resp, error)) (Resp, error) {
	for attempt := 0; ; attempt++ {
		tok, err := o.tokens.Token(ctx)
		if err != nil {
			var zero Resp
			return zero, err
		}
		actx := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok)
		resp, err := invoke(actx, o.ep, method, rpc)
		if err != nil && attempt == 0 && codeOf(err) == codes.Unauthenticated {
			o.tokens.Invalidate(ctx, tok)
			continue
		}
		return resp, err
	}
}

func codeOf(err error) codes.Code {
	if ce, ok := err.(*CallError); ok {
		return ce.Code
	}
	return codes.Unknown
}

func waybillFrom(w *downstreamv1.Waybill) Waybill {
	return Waybill{
		TrackingNo:      w.GetTrackingNo(),
		Market:          w.GetMarket(),
		ServiceType:     ServiceType(enumString("SERVICE_TYPE_", w.GetServiceType().String(), int32(w.GetServiceType()))),
		OriginSite:      w.GetOriginSiteId(),
		DestinationSite: w.GetDestinationSiteId(),
		ShipperID:       w.GetShipperCustomerId(),
		WeightG:         w.GetWeightG(),
		Dimensions: Dimensions{
			LengthMM: w.GetDimensions().GetLengthMm(),
			WidthMM:  w.GetDimensions().GetWidthMm(),
			HeightMM: w.GetDimensions().GetHeightMm(),
		},
		Size:          SizeClass(enumString("SIZE_CLASS_", w.GetSizeClass().String(), int32(w.GetSizeClass()))),
		CODAmount:     w.GetCodAmount(),
		Currency:      w.GetCurrency(),
		GoodsCategory: GoodsCategory(enumString("GOODS_CATEGORY_", w.GetGoodsCategory().String(), int32(w.GetGoodsCategory()))),
		Status:        WaybillStatus(enumString("WAYBILL_STATUS_", w.GetStatus().String(), int32(w.GetStatus()))),
	}
}

// GetWaybill returns a parcel's waybill; ErrNotFound when none exists,
// ErrInvalidArgument when the tracking number is malformed.
func (o *OrderCenter) GetWaybill(ctx context.Context, trackingNo string) (Waybill, error) {
	resp, err := authed(ctx, o, "GetWaybill", func(ctx context.Context) (*downstreamv1.GetWaybillResponse, error) {
		return o.rpc.GetWaybill(ctx, &downstreamv1.GetWaybillRequest{TrackingNo: trackingNo})
	})
	if err != nil {
		return Waybill{}, err
	}
	return waybillFrom(resp.GetWaybill()), nil
}

// BatchGetWaybills returns the waybills that exist, keyed by tracking number
// (normalised: trimmed, upper case); numbers without a waybill are absent.
func (o *OrderCenter) BatchGetWaybills(ctx context.Context, trackingNos []string) (map[string]Waybill, error) {
	resp, err := authed(ctx, o, "BatchGetWaybills", func(ctx context.Context) (*downstreamv1.BatchGetWaybillsResponse, error) {
		return o.rpc.BatchGetWaybills(ctx, &downstreamv1.BatchGetWaybillsRequest{TrackingNos: trackingNos})
	})
	if err != nil {
		return nil, err
	}
	out := make(map[string]Waybill, len(resp.GetWaybills()))
	for _, w := range resp.GetWaybills() {
		out[strings.ToUpper(w.GetTrackingNo())] = waybillFrom(w)
	}
	return out, nil
}

// GetCustomerStatus tells whether a shipper may still send parcels.
func (o *OrderCenter) GetCustomerStatus(ctx context.Context, customerID string) (CustomerStatus, error) {
	resp, err := authed(ctx, o, "GetCustomerStatus", func(ctx context.Context) (*downstreamv1.GetCustomerStatusResponse, error) {
		return o.rpc.GetCustomerStatus(ctx, &downstreamv1.GetCustomerStatusRequest{CustomerId: customerID})
	})
	if err != nil {
		return CustomerStatus{}, err
	}
	return CustomerStatus{
		CustomerID: resp.GetCustomerId(),
		State:      CustomerState(enumString("CUSTOMER_STATUS_", resp.GetStatus().String(), int32(resp.GetStatus()))),
		Reason:     resp.GetReason(),
	}, nil
}

// GetFiscalDocument reports a parcel's fiscal document (required in BR).
func (o *OrderCenter) GetFiscalDocument(ctx context.Context, trackingNo string) (FiscalDocument, error) {
	resp, err := authed(ctx, o, "GetFiscalDocument", func(ctx context.Context) (*downstreamv1.GetFiscalDocumentResponse, error) {
		return o.rpc.GetFiscalDocument(ctx, &downstreamv1.GetFiscalDocumentRequest{TrackingNo: trackingNo})
	})
	if err != nil {
		return FiscalDocument{}, err
	}
	return FiscalDocument{
		Required:  resp.GetRequired(),
		Present:   resp.GetPresent(),
		Valid:     resp.GetValid(),
		AccessKey: resp.GetAccessKey(),
		Reason:    resp.GetReason(),
	}, nil
}

// Proto is the event as the order center's API (and a broker's message)
// carries it.
func (e TrackingEvent) Proto() *downstreamv1.TrackingEvent {
	pb := &downstreamv1.TrackingEvent{
		EventId:     e.EventID,
		TrackingNo:  e.TrackingNo,
		StationId:   e.StationID,
		Type:        downstreamv1.TrackingEventType(enumValue(downstreamv1.TrackingEventType_value, "TRACKING_EVENT_TYPE_", string(e.Type))),
		OperatorId:  e.OperatorID,
		SorterId:    e.SorterID,
		PayloadJson: e.PayloadJSON,
	}
	if !e.OccurredAt.IsZero() {
		pb.OccurredAt = timestamppb.New(e.OccurredAt)
	}
	return pb
}

// MetadataEventTraceParent is the metadata key of PushTrackingEvents that
// carries each event's W3C trace context, one value per event in request
// order, when any event is traced.
const MetadataEventTraceParent = "event-traceparent"

// PushTrackingEvents sends a batch of events and returns one ack per event,
// in order. It is never retried by the transport: the outbox relay resends
// what was not acknowledged, and the order center deduplicates by event id.
func (o *OrderCenter) PushTrackingEvents(ctx context.Context, events []TrackingEvent) ([]EventAck, error) {
	req := &downstreamv1.PushTrackingEventsRequest{Events: make([]*downstreamv1.TrackingEvent, len(events))}
	traced := false
	for i, e := range events {
		req.Events[i] = e.Proto()
		traced = traced || e.TraceParent != ""
	}
	if traced {
		// One value per event, in request order ("" for an untraced one):
		// the protobuf event has no field for its trace context.
		kv := make([]string, 0, 2*len(events))
		for _, e := range events {
			kv = append(kv, MetadataEventTraceParent, e.TraceParent)
		}
		ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	}
	resp, err := authed(ctx, o, "PushTrackingEvents", func(ctx context.Context) (*downstreamv1.PushTrackingEventsResponse, error) {
		return o.rpc.PushTrackingEvents(ctx, req)
	})
	if err != nil {
		return nil, err
	}
	acks := make([]EventAck, len(resp.GetAcks()))
	for i, a := range resp.GetAcks() {
		acks[i] = EventAck{
			EventID: a.GetEventId(),
			Status:  AckStatus(enumString("ACK_STATUS_", a.GetStatus().String(), int32(a.GetStatus()))),
			Reason:  a.GetReason(),
		}
	}
	return acks, nil
}
