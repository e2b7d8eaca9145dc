package sorting

// ChuteKind says what a chute is for: a next hop's, or one of the chute
// map's special chutes.
type ChuteKind string

const (
	ChuteNextHop   ChuteKind = "next_hop"
	ChuteException ChuteKind = "exception"
	ChuteOverflow  ChuteKind = "overflow"
	ChuteReject    ChuteKind = "reject"
)

// Reason codes of the belt (sorting/belt), besides the flow's exception
// codes.
const (
	ReasonChuteFull        = "CHUTE_FULL"
	ReasonNotDecidedInTime = "NOT_DECIDED_IN_TIME"
	ReasonOverloaded       = "OVERLOADED"
	ReasonInvalidTN        = "INVALID_TRACKING_NO"
)

// ReasonCode documents one code a sort or the belt can answer with: the
// one list that GET /api/v1/exceptions returns and README.md shows (a test
// keeps all three, and the constants, in step).
type ReasonCode struct {
	Code string `json:"code"`
	// Kind is "exception" for a business exception of a sort (a terminal
	// and the belt both answer it), "belt" for a reason only the sorting
	// machine is given.
	Kind string `json:"kind"`
	// Chute is the special chute the sorting machine sends the parcel to.
	Chute   ChuteKind `json:"chute"`
	Meaning string    `json:"meaning"`
}

// ReasonCodes lists every exception code and belt reason, exceptions first.
// A fresh slice each call: callers may not change the table.
func ReasonCodes() []ReasonCode {
	exc := func(code, meaning string) ReasonCode {
		return ReasonCode{Code: code, Kind: "exception", Chute: ChuteException, Meaning: meaning}
	}
	belt := func(code string, chute ChuteKind, meaning string) ReasonCode {
		return ReasonCode{Code: code, Kind: "belt", Chute: chute, Meaning: meaning}
	}
	return []ReasonCode{
		exc(CodeUnknownWaybill, "the order center has no waybill for the tracking number"),
		exc(CodeCancelled, "the order or its delivery was cancelled"),
		exc(CodeIntercepted, "the order center or the delivery service intercepted the parcel (held for the shipper or an investigation)"),
		exc(CodeAlreadyDelivered, "the parcel was already delivered"),
		exc(CodeAlreadyOut, "the parcel is already out for delivery"),
		exc(CodeUnpaid, "the freight is not paid"),
		exc(CodeCODLimit, "the cash-on-delivery amount exceeds the destination's limit"),
		exc(CodeWrongStation, "the parcel's route does not pass through this station"),
		exc(CodeRestricted, "the parcel's goods category may not travel on the next leg"),
		exc(CodeNoFiscalDoc, "the fiscal document (NF-e, market BR) is missing or invalid"),
		exc(CodeBadAddress, "the delivery address cannot be delivered to"),
		exc(CodeCustomerBlocked, "the shipper is blocked"),
		exc(CodeNoRoute, "no route to the destination: a site is unknown or inactive, the destination does not serve the service type, or the network has no lane"),
		exc(CodeNoChute, "the station's chute map has no chute for the parcel's next hop"),
		{Code: CodeDownstreamUnavailable, Kind: "exception", Chute: ChuteReject,
			Meaning: "a downstream service did not answer in time: the belt answers the reject chute so the parcel recirculates and is asked again; a terminal's sort shows the exception chute"},
		belt(ReasonChuteFull, ChuteOverflow, "every chute of the parcel's next hop is reported full"),
		belt(ReasonNotDecidedInTime, ChuteReject, "the parcel was not pre-sorted and could not be sorted within the call's deadline; it recirculates"),
		belt(ReasonOverloaded, ChuteReject, "the station is at its limit of on-the-fly sorts; the parcel recirculates"),
		belt(ReasonInvalidTN, ChuteReject, "the scanned code is not a tracking number"),
	}
}
