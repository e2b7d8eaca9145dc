package clients

import (
	"slices"
	"strings"
	"time"
)

// The domain types below are what the typed clients return: plain Go, no
// generated code, so the sorting and packing packages never import protos.
// Enumerations are lower-case strings (the proto names without prefix:
// SERVICE_TYPE_EXPRESS is "express"), readable in traces, flow conditions and
// JSON; the zero value "" means the downstream did not say.

// ServiceType is the product the shipper bought.
type ServiceType string

// Service types.
const (
	ServiceStandard ServiceType = "standard"
	ServiceExpress  ServiceType = "express"
	ServiceEconomy  ServiceType = "economy"
)

// WaybillStatus is the order center's view of a parcel's life.
type WaybillStatus string

// Waybill statuses.
const (
	WaybillCreated     WaybillStatus = "created"
	WaybillCancelled   WaybillStatus = "cancelled"
	WaybillIntercepted WaybillStatus = "intercepted"
	WaybillReturning   WaybillStatus = "returning"
	WaybillDelivered   WaybillStatus = "delivered"
)

// GoodsCategory is what the shipper declared is inside.
type GoodsCategory string

// Goods categories.
const (
	GoodsGeneral     GoodsCategory = "general"
	GoodsDocuments   GoodsCategory = "documents"
	GoodsFragile     GoodsCategory = "fragile"
	GoodsElectronics GoodsCategory = "electronics"
	GoodsBattery     GoodsCategory = "battery"
	GoodsLiquid      GoodsCategory = "liquid"
	GoodsDangerous   GoodsCategory = "dangerous"
)

// SizeClass buckets a parcel by its largest side.
type SizeClass string

// Size classes.
const (
	SizeSmall    SizeClass = "small"
	SizeMedium   SizeClass = "medium"
	SizeLarge    SizeClass = "large"
	SizeOversize SizeClass = "oversize"
)

// Dimensions of a parcel in millimetres.
type Dimensions struct {
	LengthMM, WidthMM, HeightMM int32
}

// Waybill is the order center's record of one parcel. Flow conditions see
// its fields by their snake_case tags: waybill.cod_amount, waybill.market.
type Waybill struct {
	TrackingNo      string      `expr:"tracking_no" json:"tracking_no"`
	Market          string      `expr:"market" json:"market"`
	ServiceType     ServiceType `expr:"service_type" json:"service_type"`
	OriginSite      string      `expr:"origin_site" json:"origin_site"`
	DestinationSite string      `expr:"destination_site" json:"destination_site"`
	ShipperID       string      `expr:"shipper_id" json:"shipper_id"`
	WeightG         int64       `expr:"weight_g" json:"weight_g"`
	Dimensions      Dimensions  `expr:"dimensions" json:"dimensions"`
	Size            SizeClass   `expr:"size" json:"size"`
	// CODAmount is cash on delivery in minor units of Currency; 0 = not COD.
	CODAmount     int64         `expr:"cod_amount" json:"cod_amount"`
	Currency      string        `expr:"currency" json:"currency"`
	GoodsCategory GoodsCategory `expr:"goods_category" json:"goods_category"`
	Status        WaybillStatus `expr:"status" json:"status"`
}

// IsCOD reports whether the receiver pays on delivery.
func (w Waybill) IsCOD() bool { return w.CODAmount > 0 }

// CustomerState of a shipper account.
type CustomerState string

// Customer states.
const (
	CustomerActive  CustomerState = "active"
	CustomerBlocked CustomerState = "blocked"
)

// CustomerStatus says whether a shipper may still send parcels.
type CustomerStatus struct {
	CustomerID string
	State      CustomerState
	Reason     string
}

// FiscalDocument is a parcel's fiscal document (BR: NF-e).
type FiscalDocument struct {
	Required  bool // the market requires one
	Present   bool
	Valid     bool
	AccessKey string
	Reason    string
}

// OK reports whether the parcel may move as far as fiscal papers go.
func (f FiscalDocument) OK() bool { return !f.Required || (f.Present && f.Valid) }

// EventType is what happened to a parcel at a station.
type EventType string

// Tracking event types.
const (
	EventArrived         EventType = "arrived"
	EventSorted          EventType = "sorted"
	EventException       EventType = "exception"
	EventBagged          EventType = "bagged"
	EventUnbagged        EventType = "unbagged"
	EventBagSealed       EventType = "bag_sealed"
	EventDeparted        EventType = "departed"
	EventSorterConfirmed EventType = "sorter_confirmed"
)

// TrackingEvent is one step of a parcel's public tracking history.
type TrackingEvent struct {
	EventID    string // unique per event (a UUID); the order center dedups on it
	TrackingNo string
	StationID  string
	Type       EventType
	OccurredAt time.Time
	OperatorID string // who did it: a person ...
	SorterID   string // ... or a sorting machine
	// PayloadJSON is a JSON object with the event's details.
	PayloadJSON string
	// TraceParent is the W3C trace context of the event's delivery (empty:
	// not traced). The protobuf event has no field for it: a broker sink
	// puts it in the message headers, and PushTrackingEvents in the call's
	// metadata (MetadataEventTraceParent).
	TraceParent string
}

// AckStatus says what the order center did with one event.
type AckStatus string

// Ack statuses.
const (
	AckAccepted  AckStatus = "accepted"  // stored now
	AckDuplicate AckStatus = "duplicate" // stored before; done
	AckRejected  AckStatus = "rejected"  // never stored; resending will not help
)

// EventAck acknowledges one pushed event.
type EventAck struct {
	EventID string
	Status  AckStatus
	Reason  string
}

// Delivered reports whether the order center has the event (now or before):
// the sender may forget it.
func (a EventAck) Delivered() bool { return a.Status == AckAccepted || a.Status == AckDuplicate }

// SiteType is the role of a site in the network.
type SiteType string

// Site types.
const (
	SiteHub        SiteType = "hub"
	SiteFirstMile  SiteType = "first_mile"
	SiteLastMile   SiteType = "last_mile"
	SiteThirdParty SiteType = "third_party"
)

// Site is one place of the network.
type Site struct {
	ID        string
	Name      string
	Market    string
	Type      SiteType
	Active    bool
	ParentHub string // the hub a non-hub site hangs off; "" for hubs
}

// ServiceArea says whether a destination serves a service type.
type ServiceArea struct {
	Served bool
	Reason string
}

// LaneRestrictions are the goods categories not allowed on a lane.
type LaneRestrictions struct {
	Restricted []GoodsCategory
}

// Allows reports whether goods of category c may travel the lane.
func (l LaneRestrictions) Allows(c GoodsCategory) bool { return !slices.Contains(l.Restricted, c) }

// BillingStatus of a parcel's freight.
type BillingStatus string

// Billing statuses.
const (
	BillingPaid       BillingStatus = "paid"
	BillingUnpaid     BillingStatus = "unpaid"
	BillingCODPending BillingStatus = "cod_pending" // paid by the receiver on delivery
)

// CODLimit is a site's cash-on-delivery limit check.
type CODLimit struct {
	Allowed  bool
	Limit    int64 // minor units of Currency
	Currency string
}

// DeliveryState of a parcel as the delivery service sees it.
type DeliveryState string

// Delivery states.
const (
	DeliveryNone           DeliveryState = "none"
	DeliveryCancelled      DeliveryState = "cancelled"
	DeliveryIntercepted    DeliveryState = "intercepted"
	DeliveryOutForDelivery DeliveryState = "out_for_delivery"
	DeliveryReturning      DeliveryState = "returning"
)

// DeliveryStatus is the delivery service's verdict with its reason.
type DeliveryStatus struct {
	State  DeliveryState
	Reason string
}

// AddressCheck is the result of validating a receiver's address.
type AddressCheck struct {
	Valid  bool
	Reason string
}

// TripType is who carries the bags.
type TripType string

// Trip types.
const (
	TripLinehaul   TripType = "linehaul"
	TripLastMile   TripType = "last_mile"
	TripThirdParty TripType = "third_party"
)

// Vehicle of a trip.
type Vehicle struct {
	ID, Plate, Kind string
}

// TripStop is one call of a trip, in order.
type TripStop struct {
	Sequence int
	SiteID   string
	ETA      time.Time
}

// Trip is one departure from a station.
type Trip struct {
	ID          string
	Type        TripType
	Origin      string
	Vehicle     Vehicle
	Stops       []TripStop
	DepartureAt time.Time
}

// HasStop reports whether the trip calls at a site.
func (t Trip) HasStop(siteID string) bool {
	return slices.ContainsFunc(t.Stops, func(s TripStop) bool { return s.SiteID == siteID })
}

// enumString turns a proto enum name into its domain string:
// ("SERVICE_TYPE_", "SERVICE_TYPE_EXPRESS") -> "express"; unspecified -> "".
func enumString(prefix, name string, v int32) string {
	if v == 0 {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

// enumValue is the inverse of enumString; unknown strings give 0.
func enumValue(values map[string]int32, prefix, s string) int32 {
	if s == "" {
		return 0
	}
	return values[prefix+strings.ToUpper(s)]
}
