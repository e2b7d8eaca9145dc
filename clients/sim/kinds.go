package sim

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the fate of a tracking number, fixed by its numeric part n:
// n % 100 picks the kind (table below), so every kind occurs at a fixed rate
// and the same number always has the same fate, whatever the seed.
//
//	n % 100   kind                 what the services say
//	00-49     Normal               clean parcel (also 90-99)
//	50-53     Unknown              order center: NotFound (everywhere)
//	54-56     Cancelled            waybill cancelled, delivery cancelled
//	57-59     Intercepted          waybill created, delivery intercepted + reason
//	60-62     Unpaid               finance: unpaid
//	63-65     Restricted           goods battery (63, 64) or liquid (65): restricted on every lane
//	66-70     COD                  COD amount within every site's limit, billing cod_pending
//	71-72     CODOverLimit         COD amount over every site's limit
//	73-74     BlockedCustomer      shipper customer blocked
//	75-76     BadAddress           delivery: address invalid
//	77-78     NoFiscalDoc          BR: fiscal document (NF-e) missing; other markets: normal
//	79-80     OutForDelivery       delivery: out for delivery
//	81        Returning            waybill returning, delivery returning
//	82        Delivered            waybill delivered
//	83-84     Unserved             express to a partner-carrier site: service area not served
//	85-86     InactiveDestination  destination is the market's inactive site
//	87-89     Elsewhere            origin and destination outside <M>-H01's area: never via <M>-H01
type Kind int

// The kinds; see the table on Kind.
const (
	Normal Kind = iota
	Unknown
	Cancelled
	Intercepted
	Unpaid
	Restricted
	COD
	CODOverLimit
	BlockedCustomer
	BadAddress
	NoFiscalDoc
	OutForDelivery
	Returning
	Delivered
	Unserved
	InactiveDestination
	Elsewhere
	numKinds
)

var kindNames = [...]string{"Normal", "Unknown", "Cancelled", "Intercepted", "Unpaid", "Restricted", "COD",
	"CODOverLimit", "BlockedCustomer", "BadAddress", "NoFiscalDoc", "OutForDelivery", "Returning", "Delivered",
	"Unserved", "InactiveDestination", "Elsewhere"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Kinds lists every kind.
func Kinds() []Kind {
	out := make([]Kind, numKinds)
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

func kindOfResidue(r int) Kind {
	switch {
	case r < 50 || r >= 90:
		return Normal
	case r < 54:
		return Unknown
	case r < 57:
		return Cancelled
	case r < 60:
		return Intercepted
	case r < 63:
		return Unpaid
	case r < 66:
		return Restricted
	case r < 71:
		return COD
	case r < 73:
		return CODOverLimit
	case r < 75:
		return BlockedCustomer
	case r < 77:
		return BadAddress
	case r < 79:
		return NoFiscalDoc
	case r < 81:
		return OutForDelivery
	case r < 82:
		return Returning
	case r < 83:
		return Delivered
	case r < 85:
		return Unserved
	case r < 87:
		return InactiveDestination
	default:
		return Elsewhere
	}
}

// residuesOf lists each kind's residues once: TrackingNo runs in the loops
// that find test parcels, and building the list per call was most of
// their time and allocations. Read only.
var residuesOf = func() [numKinds][]int {
	var t [numKinds][]int
	for r := range 100 {
		k := kindOfResidue(r)
		t[k] = append(t[k], r)
	}
	return t
}()

func residues(k Kind) []int {
	if k < 0 || k >= numKinds {
		return nil
	}
	return residuesOf[k]
}

// trackingBase is the smallest numeric part TrackingNo generates (10 digits).
const trackingBase = 1_000_000_000

// TrackingNo returns the i-th tracking number (i >= 0) of a kind in a market,
// e.g. TrackingNo("SG", Normal, 0) == "SG1000000000". Numbers of one kind
// cycle through the kind's residues, so consecutive i differ in detail (a
// Restricted parcel may hold a battery or a liquid). It does not check the
// market: an unknown market gives a well-formed number the simulator does not
// know.
func TrackingNo(market string, kind Kind, i int) string {
	res := residues(kind)
	if len(res) == 0 {
		res = residues(Normal)
	}
	i = max(i, 0)
	n := uint64(trackingBase) + uint64(i/len(res))*100 + uint64(res[i%len(res)])
	return strings.ToUpper(market) + strconv.FormatUint(n, 10)
}

// KindOf returns the kind of a tracking number; ErrMalformed when it is not
// a well-formed tracking number.
func KindOf(trackingNo string) (Kind, error) {
	_, _, n, err := parseTrackingNo(trackingNo)
	if err != nil {
		return 0, err
	}
	return kindOfResidue(int(n % 100)), nil
}

// NormalizeTrackingNo trims and upper-cases a tracking number and checks its
// form: two letters and 10 to 18 digits.
func NormalizeTrackingNo(s string) (string, error) {
	no, _, _, err := parseTrackingNo(s)
	return no, err
}

func parseTrackingNo(s string) (no, market string, n uint64, err error) {
	no = strings.ToUpper(strings.TrimSpace(s))
	if len(no) < 12 || len(no) > 20 {
		return "", "", 0, fmt.Errorf("%w: tracking number %q: want 2 letters and 10-18 digits", ErrMalformed, s)
	}
	for i := range 2 {
		if no[i] < 'A' || no[i] > 'Z' {
			return "", "", 0, fmt.Errorf("%w: tracking number %q: want 2 letters and 10-18 digits", ErrMalformed, s)
		}
	}
	n, perr := strconv.ParseUint(no[2:], 10, 64)
	if perr != nil || strings.ContainsAny(no[2:], "+-") {
		return "", "", 0, fmt.Errorf("%w: tracking number %q: want 2 letters and 10-18 digits", ErrMalformed, s)
	}
	return no, no[:2], n, nil
}
