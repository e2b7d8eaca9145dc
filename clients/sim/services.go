package sim

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// maxBatch bounds batch requests, as a real service would.
const maxBatch = 1000

// statusOf maps fixture errors to gRPC statuses.
func statusOf(err error) error {
	switch {
	case errors.Is(err, ErrMalformed):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, ErrUnknown):
		return status.Error(codes.NotFound, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func enumValue(values map[string]int32, prefix, s string) int32 {
	return values[prefix+strings.ToUpper(s)]
}

func enumName(names map[int32]string, prefix string, v int32) string {
	n, ok := names[v]
	if !ok || v == 0 {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(n, prefix))
}

func required(name, v string) error {
	if strings.TrimSpace(v) == "" {
		return status.Errorf(codes.InvalidArgument, "%s is required", name)
	}
	return nil
}

type basic struct {
	downstreamv1.UnimplementedBasicServiceServer
	s *Simulator
}

func sitePB(st Site) *downstreamv1.Site {
	return &downstreamv1.Site{
		Id:          st.ID,
		Name:        st.Name,
		Market:      st.Market,
		Type:        downstreamv1.SiteType(enumValue(downstreamv1.SiteType_value, "SITE_TYPE_", st.Type)),
		Active:      st.Active,
		ParentHubId: st.ParentHub,
	}
}

func (b basic) GetSite(_ context.Context, req *downstreamv1.GetSiteRequest) (*downstreamv1.GetSiteResponse, error) {
	if err := required("site_id", req.GetSiteId()); err != nil {
		return nil, err
	}
	st, ok := b.s.fx.Site(req.GetSiteId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "site %q not found", req.GetSiteId())
	}
	return &downstreamv1.GetSiteResponse{Site: sitePB(st)}, nil
}

func (b basic) route(from, dest string, v2 bool) (string, error) {
	if err := required("from_site_id", from); err != nil {
		return "", err
	}
	if err := required("destination_site_id", dest); err != nil {
		return "", err
	}
	route := b.s.fx.Route
	if v2 {
		route = b.s.fx.RouteV2
	}
	next, ok := route(from, dest)
	if !ok {
		return "", status.Errorf(codes.NotFound, "no route from %q to %q", from, dest)
	}
	return next, nil
}

func (b basic) GetRoute(_ context.Context, req *downstreamv1.GetRouteRequest) (*downstreamv1.GetRouteResponse, error) {
	next, err := b.route(req.GetFromSiteId(), req.GetDestinationSiteId(), false)
	if err != nil {
		return nil, err
	}
	return &downstreamv1.GetRouteResponse{NextHopSiteId: next}, nil
}

func (b basic) GetRouteV2(_ context.Context, req *downstreamv1.GetRouteV2Request) (*downstreamv1.GetRouteV2Response, error) {
	next, err := b.route(req.GetFromSiteId(), req.GetDestinationSiteId(), true)
	if err != nil {
		return nil, err
	}
	return &downstreamv1.GetRouteV2Response{NextHopSiteId: next}, nil
}

func (b basic) CheckServiceArea(_ context.Context, req *downstreamv1.CheckServiceAreaRequest) (*downstreamv1.CheckServiceAreaResponse, error) {
	if err := required("destination_site_id", req.GetDestinationSiteId()); err != nil {
		return nil, err
	}
	svc := enumName(downstreamv1.ServiceType_name, "SERVICE_TYPE_", int32(req.GetServiceType()))
	served, reason, ok := b.s.fx.ServiceArea(req.GetDestinationSiteId(), svc)
	if !ok {
		return nil, status.Errorf(codes.NotFound, "site %q not found", req.GetDestinationSiteId())
	}
	return &downstreamv1.CheckServiceAreaResponse{Served: served, Reason: reason}, nil
}

func (b basic) GetLaneRestrictions(_ context.Context, req *downstreamv1.GetLaneRestrictionsRequest) (*downstreamv1.GetLaneRestrictionsResponse, error) {
	if err := required("from_site_id", req.GetFromSiteId()); err != nil {
		return nil, err
	}
	if err := required("destination_site_id", req.GetDestinationSiteId()); err != nil {
		return nil, err
	}
	cats, ok := b.s.fx.LaneRestrictions(req.GetFromSiteId(), req.GetDestinationSiteId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "no lane from %q to %q", req.GetFromSiteId(), req.GetDestinationSiteId())
	}
	resp := &downstreamv1.GetLaneRestrictionsResponse{}
	for _, c := range cats {
		resp.RestrictedCategories = append(resp.RestrictedCategories,
			downstreamv1.GoodsCategory(enumValue(downstreamv1.GoodsCategory_value, "GOODS_CATEGORY_", c)))
	}
	return resp, nil
}

type finance struct {
	downstreamv1.UnimplementedFinanceServiceServer
	s *Simulator
}

func (f finance) CheckBilling(_ context.Context, req *downstreamv1.CheckBillingRequest) (*downstreamv1.CheckBillingResponse, error) {
	p, err := f.s.fx.Parcel(req.GetTrackingNo())
	if err != nil {
		return nil, statusOf(err)
	}
	return &downstreamv1.CheckBillingResponse{
		Status: downstreamv1.BillingStatus(enumValue(downstreamv1.BillingStatus_value, "BILLING_STATUS_", p.Billing)),
	}, nil
}

func (f finance) CheckCODLimit(_ context.Context, req *downstreamv1.CheckCODLimitRequest) (*downstreamv1.CheckCODLimitResponse, error) {
	if err := required("site_id", req.GetSiteId()); err != nil {
		return nil, err
	}
	if req.GetCodAmount() < 0 {
		return nil, status.Error(codes.InvalidArgument, "cod_amount must not be negative")
	}
	limit, cur, ok := f.s.fx.CODLimit(req.GetSiteId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "site %q not found", req.GetSiteId())
	}
	return &downstreamv1.CheckCODLimitResponse{Allowed: req.GetCodAmount() <= limit, Limit: limit, Currency: cur}, nil
}

type delivery struct {
	downstreamv1.UnimplementedDeliveryServiceServer
	s *Simulator
}

func (d delivery) GetDeliveryStatus(_ context.Context, req *downstreamv1.GetDeliveryStatusRequest) (*downstreamv1.GetDeliveryStatusResponse, error) {
	p, err := d.s.fx.Parcel(req.GetTrackingNo())
	if err != nil {
		return nil, statusOf(err)
	}
	return &downstreamv1.GetDeliveryStatusResponse{
		Status: downstreamv1.DeliveryStatus(enumValue(downstreamv1.DeliveryStatus_value, "DELIVERY_STATUS_", p.Delivery)),
		Reason: p.DeliveryReason,
	}, nil
}

func (d delivery) ValidateAddress(_ context.Context, req *downstreamv1.ValidateAddressRequest) (*downstreamv1.ValidateAddressResponse, error) {
	p, err := d.s.fx.Parcel(req.GetTrackingNo())
	if err != nil {
		return nil, statusOf(err)
	}
	return &downstreamv1.ValidateAddressResponse{Valid: p.AddressValid, Reason: p.AddressReason}, nil
}

type container struct {
	downstreamv1.UnimplementedContainerServiceServer
	s *Simulator
}

func (c container) AllocateBagID(_ context.Context, req *downstreamv1.AllocateBagIDRequest) (*downstreamv1.AllocateBagIDResponse, error) {
	if err := required("station_id", req.GetStationId()); err != nil {
		return nil, err
	}
	if err := required("next_hop_site_id", req.GetNextHopSiteId()); err != nil {
		return nil, err
	}
	st, ok := c.s.fx.Site(req.GetStationId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "site %q not found", req.GetStationId())
	}
	if _, ok := c.s.fx.Site(req.GetNextHopSiteId()); !ok {
		return nil, status.Errorf(codes.NotFound, "site %q not found", req.GetNextHopSiteId())
	}
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	key := st.ID + "|" + req.GetRequestId()
	if id, ok := c.s.bags[key]; ok && req.GetRequestId() != "" {
		return &downstreamv1.AllocateBagIDResponse{BagId: id}, nil
	}
	c.s.bagSeq++
	// The start time keeps ids unique across simulator restarts, which
	// matters because Station stores bag ids under a unique key.
	id := fmt.Sprintf("BG%s%s%06d", strings.ReplaceAll(st.ID, "-", ""),
		strings.ToUpper(strconv.FormatInt(c.s.started.UnixMilli(), 36)), c.s.bagSeq)
	if req.GetRequestId() != "" {
		c.s.bags[key] = id
	}
	return &downstreamv1.AllocateBagIDResponse{BagId: id}, nil
}

type linehaul struct {
	downstreamv1.UnimplementedLinehaulServiceServer
	s *Simulator
}

func (l linehaul) GetTrip(_ context.Context, req *downstreamv1.GetTripRequest) (*downstreamv1.GetTripResponse, error) {
	t, err := l.s.fx.Trip(req.GetTripId(), l.s.started)
	if err != nil {
		return nil, statusOf(err)
	}
	pb := &downstreamv1.Trip{
		Id:           t.ID,
		Type:         downstreamv1.TripType(enumValue(downstreamv1.TripType_value, "TRIP_TYPE_", t.Type)),
		OriginSiteId: t.Origin,
		Vehicle:      &downstreamv1.Vehicle{Id: t.VehicleID, Plate: t.Plate, Kind: t.VehicleKind},
		DepartureAt:  timestamppb.New(t.DepartureAt),
	}
	for i, st := range t.Stops {
		pb.Stops = append(pb.Stops, &downstreamv1.TripStop{
			Sequence: int32(i + 1),
			SiteId:   st,
			Eta:      timestamppb.New(t.DepartureAt.Add(time.Duration(i+1) * time.Hour)),
		})
	}
	return &downstreamv1.GetTripResponse{Trip: pb}, nil
}
