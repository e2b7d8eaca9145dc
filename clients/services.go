package clients

import (
	"context"

	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// Finance is the client of the finance service.
type Finance struct {
	rpc downstreamv1.FinanceServiceClient
	ep  *endpoint
}

// CheckBilling tells whether a parcel's freight is settled.
func (f *Finance) CheckBilling(ctx context.Context, trackingNo string) (BillingStatus, error) {
	resp, err := invoke(ctx, f.ep, "CheckBilling", func(ctx context.Context) (*downstreamv1.CheckBillingResponse, error) {
		return f.rpc.CheckBilling(ctx, &downstreamv1.CheckBillingRequest{TrackingNo: trackingNo})
	})
	if err != nil {
		return "", err
	}
	return BillingStatus(enumString("BILLING_STATUS_", resp.GetStatus().String(), int32(resp.GetStatus()))), nil
}

// CheckCODLimit tells whether a site may collect codAmount (minor units).
func (f *Finance) CheckCODLimit(ctx context.Context, siteID string, codAmount int64) (CODLimit, error) {
	resp, err := invoke(ctx, f.ep, "CheckCODLimit", func(ctx context.Context) (*downstreamv1.CheckCODLimitResponse, error) {
		return f.rpc.CheckCODLimit(ctx, &downstreamv1.CheckCODLimitRequest{SiteId: siteID, CodAmount: codAmount})
	})
	if err != nil {
		return CODLimit{}, err
	}
	return CODLimit{Allowed: resp.GetAllowed(), Limit: resp.GetLimit(), Currency: resp.GetCurrency()}, nil
}

// Delivery is the client of the delivery service.
type Delivery struct {
	rpc downstreamv1.DeliveryServiceClient
	ep  *endpoint
}

// GetDeliveryStatus reports anything that stops a parcel moving forward.
func (d *Delivery) GetDeliveryStatus(ctx context.Context, trackingNo string) (DeliveryStatus, error) {
	resp, err := invoke(ctx, d.ep, "GetDeliveryStatus", func(ctx context.Context) (*downstreamv1.GetDeliveryStatusResponse, error) {
		return d.rpc.GetDeliveryStatus(ctx, &downstreamv1.GetDeliveryStatusRequest{TrackingNo: trackingNo})
	})
	if err != nil {
		return DeliveryStatus{}, err
	}
	return DeliveryStatus{
		State:  DeliveryState(enumString("DELIVERY_STATUS_", resp.GetStatus().String(), int32(resp.GetStatus()))),
		Reason: resp.GetReason(),
	}, nil
}

// ValidateAddress checks the receiver's address of a parcel.
func (d *Delivery) ValidateAddress(ctx context.Context, trackingNo string) (AddressCheck, error) {
	resp, err := invoke(ctx, d.ep, "ValidateAddress", func(ctx context.Context) (*downstreamv1.ValidateAddressResponse, error) {
		return d.rpc.ValidateAddress(ctx, &downstreamv1.ValidateAddressRequest{TrackingNo: trackingNo})
	})
	if err != nil {
		return AddressCheck{}, err
	}
	return AddressCheck{Valid: resp.GetValid(), Reason: resp.GetReason()}, nil
}

// Container is the client of the container service.
type Container struct {
	rpc downstreamv1.ContainerServiceClient
	ep  *endpoint
}

// AllocateBagID returns a new bag id for a bag opened at stationID for
// nextHop. requestID is an idempotency key: asking again with the same key
// returns the same id, so a caller may retry a failed allocation itself
// (the transport never retries it).
func (c *Container) AllocateBagID(ctx context.Context, stationID, nextHop, requestID string) (string, error) {
	resp, err := invoke(ctx, c.ep, "AllocateBagID", func(ctx context.Context) (*downstreamv1.AllocateBagIDResponse, error) {
		return c.rpc.AllocateBagID(ctx, &downstreamv1.AllocateBagIDRequest{StationId: stationID, NextHopSiteId: nextHop, RequestId: requestID})
	})
	if err != nil {
		return "", err
	}
	return resp.GetBagId(), nil
}

// Linehaul is the client of the linehaul service.
type Linehaul struct {
	rpc downstreamv1.LinehaulServiceClient
	ep  *endpoint
}

// GetTrip returns a trip; ErrNotFound when unknown.
func (l *Linehaul) GetTrip(ctx context.Context, tripID string) (Trip, error) {
	resp, err := invoke(ctx, l.ep, "GetTrip", func(ctx context.Context) (*downstreamv1.GetTripResponse, error) {
		return l.rpc.GetTrip(ctx, &downstreamv1.GetTripRequest{TripId: tripID})
	})
	if err != nil {
		return Trip{}, err
	}
	t := resp.GetTrip()
	out := Trip{
		ID:          t.GetId(),
		Type:        TripType(enumString("TRIP_TYPE_", t.GetType().String(), int32(t.GetType()))),
		Origin:      t.GetOriginSiteId(),
		Vehicle:     Vehicle{ID: t.GetVehicle().GetId(), Plate: t.GetVehicle().GetPlate(), Kind: t.GetVehicle().GetKind()},
		DepartureAt: t.GetDepartureAt().AsTime(),
	}
	for _, s := range t.GetStops() {
		out.Stops = append(out.Stops, TripStop{Sequence: int(s.GetSequence()), SiteID: s.GetSiteId(), ETA: s.GetEta().AsTime()})
	}
	return out, nil
}
