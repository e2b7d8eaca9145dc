package sorting

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/dag"
)

// Keys flowing between the sorting steps. Their names are what flow
// conditions, traces and reconciliation diffs show.
var (
	KeyTrackingNo   = dag.NewKey[string]("tracking_no")
	KeyStationID    = dag.NewKey[string]("station_id")
	KeyWaybill      = dag.NewKey[clients.Waybill]("waybill")
	KeyStationSite  = dag.NewKey[clients.Site]("station_site")
	KeyOriginSite   = dag.NewKey[clients.Site]("origin_site")
	KeyDestSite     = dag.NewKey[clients.Site]("destination_site")
	KeyViaStation   = dag.NewKey[string]("via_station")
	KeyDelivery     = dag.NewKey[string]("delivery")
	KeyBilling      = dag.NewKey[string]("billing")
	KeyCODLimit     = dag.NewKey[string]("cod_limit")
	KeyRestrictions = dag.NewKey[string]("restrictions")
	KeyFiscalDoc    = dag.NewKey[string]("fiscal_document")
	KeyServiceArea  = dag.NewKey[string]("service_area")
	KeyAddress      = dag.NewKey[string]("address")
	KeyCustomer     = dag.NewKey[string]("customer")
	KeyNextHop      = dag.NewKey[string]("next_hop")
	KeyChute        = dag.NewKey[int]("chute")
)

// Downstream is what the steps ask of the network's services; *clients.Set
// provides it through Clients.
type Downstream struct {
	OrderCenter *clients.OrderCenter
	Basic       *clients.Basic
	Finance     *clients.Finance
	Delivery    *clients.Delivery
}

// Clients takes the services the steps need from a client set.
func Clients(s *clients.Set) Downstream {
	return Downstream{OrderCenter: s.OrderCenter, Basic: s.Basic, Finance: s.Finance, Delivery: s.Delivery}
}

// steps builds the step registry over the downstream clients and the chute
// store. Each step asks one question and either writes its answer or stops
// the run with an *Exception.
func steps(d Downstream, chutes *ChuteStore) (*dag.Registry, error) {
	reg := dag.NewRegistry()
	if err := reg.DeclareInputs(KeyTrackingNo, KeyStationID); err != nil {
		return nil, err
	}
	site := func(name string, siteOf func(in dag.Inputs) string, reads []dag.AnyKey, out dag.Key[clients.Site]) dag.Step {
		return dag.Step{
			Name: name, Reads: reads, Writes: []dag.AnyKey{out},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				id := siteOf(in)
				s, err := d.Basic.GetSite(ctx, id)
				if errors.Is(err, clients.ErrNotFound) {
					return exceptionf(CodeNoRoute, "site %s is unknown to the network", id)
				}
				if err != nil {
					return downstream(err)
				}
				if !s.Active {
					return exceptionf(CodeNoRoute, "site %s is not active", id)
				}
				dag.Set(o, out, s)
				return nil
			},
		}
	}
	waybillOf := func(in dag.Inputs) clients.Waybill { return dag.Get(in, KeyWaybill) }
	wb := []dag.AnyKey{KeyWaybill}

	err := reg.Register(
		dag.Step{
			Name: "fetch_waybill", Reads: []dag.AnyKey{KeyTrackingNo}, Writes: wb,
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				w, err := d.OrderCenter.GetWaybill(ctx, dag.Get(in, KeyTrackingNo))
				if errors.Is(err, clients.ErrNotFound) {
					return exceptionf(CodeUnknownWaybill, "no waybill for %s", dag.Get(in, KeyTrackingNo))
				}
				if err != nil {
					return downstream(err)
				}
				switch w.Status {
				case clients.WaybillCancelled:
					return exceptionf(CodeCancelled, "the order was cancelled")
				case clients.WaybillIntercepted:
					return exceptionf(CodeIntercepted, "the order center intercepted the parcel")
				case clients.WaybillDelivered:
					return exceptionf(CodeAlreadyDelivered, "the parcel was already delivered")
				}
				dag.Set(o, KeyWaybill, w)
				return nil
			},
		},
		site("check_station_site", func(in dag.Inputs) string { return dag.Get(in, KeyStationID) }, []dag.AnyKey{KeyStationID}, KeyStationSite),
		site("check_origin_site", func(in dag.Inputs) string { return waybillOf(in).OriginSite }, wb, KeyOriginSite),
		site("check_destination_site", func(in dag.Inputs) string { return waybillOf(in).DestinationSite }, wb, KeyDestSite),
		dag.Step{
			// A parcel passes a station when the station is its origin or
			// destination, or the hub either of them hangs off.
			Name:   "check_via_station",
			Reads:  []dag.AnyKey{KeyStationID, KeyOriginSite, KeyDestSite},
			Writes: []dag.AnyKey{KeyViaStation},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				station := dag.Get(in, KeyStationID)
				origin, dest := dag.Get(in, KeyOriginSite), dag.Get(in, KeyDestSite)
				on := []string{origin.ID, origin.ParentHub, dest.ID, dest.ParentHub}
				if !slices.Contains(on, station) {
					return exceptionf(CodeWrongStation, "%s → %s is not routed via %s", origin.ID, dest.ID, station)
				}
				dag.Set(o, KeyViaStation, "yes")
				return nil
			},
		},
		dag.Step{
			Name: "check_delivery_status", Reads: []dag.AnyKey{KeyTrackingNo}, Writes: []dag.AnyKey{KeyDelivery},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				st, err := d.Delivery.GetDeliveryStatus(ctx, dag.Get(in, KeyTrackingNo))
				if err != nil && !errors.Is(err, clients.ErrNotFound) {
					return downstream(err)
				}
				switch st.State {
				case clients.DeliveryCancelled:
					return exceptionf(CodeCancelled, "delivery cancelled: %s", orDefault(st.Reason, "no reason given"))
				case clients.DeliveryIntercepted:
					return exceptionf(CodeIntercepted, "intercepted: %s", orDefault(st.Reason, "no reason given"))
				case clients.DeliveryOutForDelivery:
					return exceptionf(CodeAlreadyOut, "the parcel is already out for delivery")
				}
				dag.Set(o, KeyDelivery, orDefault(string(st.State), "none"))
				return nil
			},
		},
		dag.Step{
			Name: "check_billing", Reads: []dag.AnyKey{KeyTrackingNo}, Writes: []dag.AnyKey{KeyBilling},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				b, err := d.Finance.CheckBilling(ctx, dag.Get(in, KeyTrackingNo))
				if err != nil {
					return downstream(err)
				}
				if b == clients.BillingUnpaid {
					return exceptionf(CodeUnpaid, "the freight is not paid")
				}
				dag.Set(o, KeyBilling, string(b))
				return nil
			},
		},
		dag.Step{
			Name: "check_cod_limit", Reads: []dag.AnyKey{KeyWaybill, KeyStationID}, Writes: []dag.AnyKey{KeyCODLimit},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				w := waybillOf(in)
				lim, err := d.Finance.CheckCODLimit(ctx, w.DestinationSite, w.CODAmount)
				if err != nil {
					return downstream(err)
				}
				if !lim.Allowed {
					return exceptionf(CodeCODLimit, "cash on delivery %d exceeds the limit %d of %s", w.CODAmount, lim.Limit, w.DestinationSite)
				}
				dag.Set(o, KeyCODLimit, "within")
				return nil
			},
		},
		dag.Step{
			Name: "check_restricted_goods", Reads: []dag.AnyKey{KeyWaybill, KeyStationID}, Writes: []dag.AnyKey{KeyRestrictions},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				w := waybillOf(in)
				lane, err := d.Basic.GetLaneRestrictions(ctx, dag.Get(in, KeyStationID), w.DestinationSite)
				if err != nil {
					return downstream(err)
				}
				if !lane.Allows(w.GoodsCategory) {
					return exceptionf(CodeRestricted, "%s goods may not travel to %s", w.GoodsCategory, w.DestinationSite)
				}
				dag.Set(o, KeyRestrictions, "allowed")
				return nil
			},
		},
		dag.Step{
			Name: "check_fiscal_document", Reads: []dag.AnyKey{KeyTrackingNo}, Writes: []dag.AnyKey{KeyFiscalDoc},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				doc, err := d.OrderCenter.GetFiscalDocument(ctx, dag.Get(in, KeyTrackingNo))
				if err != nil {
					return downstream(err)
				}
				if !doc.OK() {
					return exceptionf(CodeNoFiscalDoc, "fiscal document missing or invalid: %s", orDefault(doc.Reason, "no NF-e"))
				}
				dag.Set(o, KeyFiscalDoc, "valid")
				return nil
			},
		},
		dag.Step{
			Name: "check_service_area", Reads: wb, Writes: []dag.AnyKey{KeyServiceArea},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				w := waybillOf(in)
				area, err := d.Basic.CheckServiceArea(ctx, w.DestinationSite, w.ServiceType)
				if err != nil {
					return downstream(err)
				}
				if !area.Served {
					return exceptionf(CodeNoRoute, "%s does not serve %s: %s", w.DestinationSite, w.ServiceType, area.Reason)
				}
				dag.Set(o, KeyServiceArea, "served")
				return nil
			},
		},
		dag.Step{
			Name: "check_address", Reads: []dag.AnyKey{KeyTrackingNo}, Writes: []dag.AnyKey{KeyAddress},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				a, err := d.Delivery.ValidateAddress(ctx, dag.Get(in, KeyTrackingNo))
				if err != nil {
					return downstream(err)
				}
				if !a.Valid {
					return exceptionf(CodeBadAddress, "address cannot be delivered to: %s", a.Reason)
				}
				dag.Set(o, KeyAddress, "valid")
				return nil
			},
		},
		dag.Step{
			Name: "check_customer", Reads: wb, Writes: []dag.AnyKey{KeyCustomer},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				c, err := d.OrderCenter.GetCustomerStatus(ctx, waybillOf(in).ShipperID)
				if err != nil {
					return downstream(err)
				}
				if c.State == clients.CustomerBlocked {
					return exceptionf(CodeCustomerBlocked, "shipper %s is blocked: %s", c.CustomerID, c.Reason)
				}
				dag.Set(o, KeyCustomer, "active")
				return nil
			},
		},
		dag.Step{
			// params.routing: v2 asks the newer routing table; gray release
			// uses it as a candidate flow.
			Name: "get_route", Reads: []dag.AnyKey{KeyWaybill, KeyStationID}, Writes: []dag.AnyKey{KeyNextHop},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				w := waybillOf(in)
				station := dag.Get(in, KeyStationID)
				route := d.Basic.GetRoute
				if in.Params()["routing"] == "v2" {
					route = d.Basic.GetRouteV2
				}
				hop, err := route(ctx, station, w.DestinationSite, w.ServiceType)
				if errors.Is(err, clients.ErrNotFound) {
					return exceptionf(CodeNoRoute, "no route from %s to %s", station, w.DestinationSite)
				}
				if err != nil {
					return downstream(err)
				}
				dag.Set(o, KeyNextHop, hop)
				return nil
			},
		},
		dag.Step{
			Name: "resolve_chute", Reads: []dag.AnyKey{KeyNextHop, KeyStationID}, Writes: []dag.AnyKey{KeyChute},
			Run: func(ctx context.Context, in dag.Inputs, o dag.Outputs) error {
				m, err := chutes.Get(ctx, dag.Get(in, KeyStationID))
				if err != nil {
					return err
				}
				hop := dag.Get(in, KeyNextHop)
				c, ok := m.ChuteFor(hop)
				if !ok {
					return exceptionf(CodeNoChute, "the chute map of %s has no chute for %s", dag.Get(in, KeyStationID), hop)
				}
				dag.Set(o, KeyChute, c)
				return nil
			},
		},
	)
	if err != nil {
		return nil, err
	}
	return reg, nil
}

// downstream marks a client error retryable when another attempt may help.
func downstream(err error) error {
	if errors.Is(err, clients.ErrUnavailable) && !errors.Is(err, clients.ErrCircuitOpen) {
		return dag.Retryable(err)
	}
	return err
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

var _ = fmt.Sprintf
