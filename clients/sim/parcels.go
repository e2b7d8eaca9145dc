package sim

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors of fixture lookups; the simulator maps them to gRPC codes.
var (
	// ErrMalformed: the input is not a well-formed id (InvalidArgument).
	ErrMalformed = errors.New("sim: malformed id")
	// ErrUnknown: well formed, but nothing by that id exists (NotFound).
	ErrUnknown = errors.New("sim: unknown id")
)

// Values of parcel attributes: the lower-case form of the proto enums, which
// is also what the clients package returns.
const (
	ServiceStandard = "standard"
	ServiceExpress  = "express"
	ServiceEconomy  = "economy"

	GoodsGeneral     = "general"
	GoodsDocuments   = "documents"
	GoodsFragile     = "fragile"
	GoodsElectronics = "electronics"
	GoodsBattery     = "battery"
	GoodsLiquid      = "liquid"
	GoodsDangerous   = "dangerous"

	StatusCreated     = "created"
	StatusCancelled   = "cancelled"
	StatusIntercepted = "intercepted"
	StatusReturning   = "returning"
	StatusDelivered   = "delivered"

	DeliveryNone           = "none"
	DeliveryCancelled      = "cancelled"
	DeliveryIntercepted    = "intercepted"
	DeliveryOutForDelivery = "out_for_delivery"
	DeliveryReturning      = "returning"

	BillingPaid       = "paid"
	BillingUnpaid     = "unpaid"
	BillingCODPending = "cod_pending"
)

// Parcel is everything the simulated services know about one tracking
// number; each service answers from its part.
type Parcel struct {
	TrackingNo  string
	Market      string
	Kind        Kind
	ServiceType string // ServiceStandard, ServiceExpress, ServiceEconomy
	Origin      string // a first-mile site
	Destination string // a last-mile or partner site
	CustomerID  string // <M>-C<6 digits>
	WeightG     int64
	LengthMM    int32
	WidthMM     int32
	HeightMM    int32
	CODAmount   int64 // minor units; 0 when not COD
	Currency    string
	Goods       string // Goods*
	Status      string // Status*

	Delivery       string // Delivery*
	DeliveryReason string
	Billing        string // Billing*
	AddressValid   bool
	AddressReason  string
	FiscalRequired bool
	FiscalPresent  bool
	FiscalKey      string
}

// SizeClass buckets the parcel by its largest side.
func (p Parcel) SizeClass() string {
	switch m := max(p.LengthMM, p.WidthMM, p.HeightMM); {
	case m <= 300:
		return "small"
	case m <= 600:
		return "medium"
	case m <= 1000:
		return "large"
	default:
		return "oversize"
	}
}

var interceptReasons = [...]string{"shipper requested return", "customs hold", "receiver changed address"}

// Parcel derives the parcel of a tracking number. ErrMalformed for a
// malformed number, ErrUnknown for an unknown market or the Unknown kind.
//
// The fate (kind, service type, origin, destination, status) depends on the
// number only. Origins and destinations lean on hub 1 of the market so that
// most parcels pass <M>-H01 (the demo station SG-H01): with the quarter
// q = (n/100) % 4, q 0-1 start under <M>-H01, q 2 end under it, q 3 pick
// both ends at random; the Elsewhere kind never touches it. The seed varies
// only what does not change a parcel's fate: weight, size, customer id,
// goods category of unrestricted parcels, COD amount within its range.
func (f *Fixtures) Parcel(trackingNo string) (Parcel, error) {
	no, code, n, err := parseTrackingNo(trackingNo)
	if err != nil {
		return Parcel{}, err
	}
	m, ok := marketByCode(code)
	if !ok {
		return Parcel{}, fmt.Errorf("%w: market %q of tracking number %s", ErrUnknown, code, no)
	}
	kind := kindOfResidue(int(n % 100))
	if kind == Unknown {
		return Parcel{}, fmt.Errorf("%w: tracking number %s", ErrUnknown, no)
	}
	h := mix(n)                            // fate: seed-independent
	c := mix(n ^ mix(uint64(f.seed)+0x9e)) // cosmetics: seeded
	hubs := uint64(m.hubs)

	var oh, dh int
	if kind == Elsewhere {
		oh = 2 + int(h%(hubs-1))
		dh = 2 + int((h>>8)%(hubs-1))
	} else {
		switch (n / 100) % 4 {
		case 0, 1:
			oh, dh = 1, 1+int((h>>8)%hubs)
		case 2:
			oh, dh = 1+int((h>>16)%hubs), 1
		default:
			oh, dh = 1+int((h>>16)%hubs), 1+int((h>>8)%hubs)
		}
	}
	p := Parcel{
		TrackingNo: no,
		Market:     m.code,
		Kind:       kind,
		Currency:   m.currency,
		Origin:     siteID(m.code, 'F', (oh-1)*firstMilePerHub+1+int((h>>24)%firstMilePerHub)),
		Status:     StatusCreated,
		Delivery:   DeliveryNone,
		Billing:    BillingPaid,
		Goods:      GoodsGeneral,

		AddressValid: true,
	}
	switch s := (h >> 32) % 100; {
	case s < 60:
		p.ServiceType = ServiceStandard
	case s < 85:
		p.ServiceType = ServiceExpress
	default:
		p.ServiceType = ServiceEconomy
	}
	switch {
	case kind == InactiveDestination:
		p.Destination = InactiveSite(m.code)
	case kind == Unserved:
		p.Destination = siteID(m.code, 'T', dh)
		p.ServiceType = ServiceExpress
	case (h>>40)%8 == 0:
		p.Destination = siteID(m.code, 'T', dh)
		if p.ServiceType == ServiceExpress {
			p.ServiceType = ServiceStandard
		}
	default:
		l := (dh-1)*lastMilePerHub + 1 + int((h>>44)%lastMilePerHub)
		if l == inactiveLastMile(m) {
			l--
		}
		p.Destination = siteID(m.code, 'L', l)
	}

	// Cosmetics.
	p.WeightG = 100 + int64(c%5_000)
	if (c>>13)%10 == 0 {
		p.WeightG = 5_000 + int64((c>>17)%25_000)
	}
	p.LengthMM = 100 + int32((c>>20)%500)
	p.WidthMM = 80 + int32((c>>29)%300)
	p.HeightMM = 20 + int32((c>>38)%250)
	if (c>>47)%20 == 0 {
		p.LengthMM += 700
	}
	switch g := (c >> 52) % 100; {
	case g < 20:
		p.Goods = GoodsDocuments
	case g < 35:
		p.Goods = GoodsFragile
	case g < 50:
		p.Goods = GoodsElectronics
	}
	customer := ((c>>8)%10_000)*100 + (c>>24)%99
	if kind == BlockedCustomer {
		customer = ((c>>8)%10_000)*100 + 99
	}
	p.CustomerID = fmt.Sprintf("%s-C%06d", m.code, customer)

	switch kind {
	case Cancelled:
		p.Status, p.Delivery = StatusCancelled, DeliveryCancelled
	case Intercepted:
		p.Delivery = DeliveryIntercepted
		p.DeliveryReason = interceptReasons[h%uint64(len(interceptReasons))]
	case Unpaid:
		p.Billing = BillingUnpaid
	case Restricted:
		p.Goods = GoodsBattery
		if n%100 == 65 {
			p.Goods = GoodsLiquid
		}
	case COD:
		p.Billing = BillingCODPending
		p.CODAmount = m.codLimit / 2 * int64(10+(c>>5)%31) / 100
	case CODOverLimit:
		p.Billing = BillingCODPending
		p.CODAmount = m.codLimit * int64(150+(c>>5)%151) / 100
	case BadAddress:
		p.AddressValid = false
		p.AddressReason = "postal code does not match the destination area"
	case OutForDelivery:
		p.Delivery = DeliveryOutForDelivery
	case Returning:
		p.Status, p.Delivery = StatusReturning, DeliveryReturning
		p.DeliveryReason = "receiver refused the parcel"
	case Delivered:
		p.Status = StatusDelivered
	}
	if m.code == "BR" {
		p.FiscalRequired = true
		if kind != NoFiscalDoc {
			p.FiscalPresent = true
			p.FiscalKey = fmt.Sprintf("35%020d%022d", h%1e18, n)[:44]
		}
	}
	return p, nil
}

// CustomerBlocked tells whether a shipper customer id (<M>-C<6 digits>) is
// blocked: those whose number ends in 99. ErrMalformed or ErrUnknown (market)
// otherwise.
func CustomerBlocked(customerID string) (bool, error) {
	id := strings.ToUpper(strings.TrimSpace(customerID))
	if len(id) != 10 || id[2] != '-' || id[3] != 'C' {
		return false, fmt.Errorf("%w: customer id %q: want <market>-C<6 digits>", ErrMalformed, customerID)
	}
	num, err := strconv.Atoi(id[4:])
	if err != nil || num < 0 {
		return false, fmt.Errorf("%w: customer id %q: want <market>-C<6 digits>", ErrMalformed, customerID)
	}
	if _, ok := marketByCode(id[:2]); !ok {
		return false, fmt.Errorf("%w: market of customer %s", ErrUnknown, id)
	}
	return num%100 == 99, nil
}

// ViaStation returns the i-th (i >= 0) Normal tracking number of the
// station's market whose route passes the station; "" if none is found
// within a bounded search (an inactive site is on no route).
func (f *Fixtures) ViaStation(stationID string, i int) string {
	return f.findNormal(stationID, i, true)
}

// WrongStation returns the i-th Normal tracking number of the station's
// market whose route does not pass the station: a parcel that should never
// arrive there.
func (f *Fixtures) WrongStation(stationID string, i int) string {
	return f.findNormal(stationID, i, false)
}

func (f *Fixtures) findNormal(stationID string, i int, via bool) string {
	st, ok := f.Site(stationID)
	if !ok {
		return ""
	}
	for j := range 20_000 {
		no := TrackingNo(st.Market, Normal, j)
		p, err := f.Parcel(no)
		if err != nil {
			continue
		}
		if f.Via(p.Origin, p.Destination, st.ID) == via {
			if i == 0 {
				return no
			}
			i--
		}
	}
	return ""
}

// ViaStation is (*Fixtures).ViaStation on the default fixtures; routes do not
// depend on the seed, so the answer holds for every simulator.
func ViaStation(stationID string, i int) string {
	return NewFixtures(DefaultSeed).ViaStation(stationID, i)
}

// WrongStation is (*Fixtures).WrongStation on the default fixtures; routes do
// not depend on the seed, so the answer holds for every simulator.
func WrongStation(stationID string, i int) string {
	return NewFixtures(DefaultSeed).WrongStation(stationID, i)
}

// mix is splitmix64's finalizer: a cheap, well-spread hash of a number.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
