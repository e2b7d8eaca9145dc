package sorting

import "fmt"

// Exception codes: business outcomes that send a parcel to the exception
// chute. They are stable: terminals show them and reports count them.
const (
	CodeUnknownWaybill        = "UNKNOWN_WAYBILL"
	CodeCancelled             = "CANCELLED"
	CodeIntercepted           = "INTERCEPTED"
	CodeAlreadyDelivered      = "ALREADY_DELIVERED"
	CodeAlreadyOut            = "OUT_FOR_DELIVERY"
	CodeUnpaid                = "UNPAID"
	CodeCODLimit              = "COD_LIMIT"
	CodeWrongStation          = "WRONG_STATION"
	CodeRestricted            = "RESTRICTED"
	CodeNoFiscalDoc           = "NO_FISCAL_DOCUMENT"
	CodeBadAddress            = "BAD_ADDRESS"
	CodeCustomerBlocked       = "CUSTOMER_BLOCKED"
	CodeNoRoute               = "NO_ROUTE"
	CodeNoChute               = "NO_CHUTE"
	CodeDownstreamUnavailable = "DOWNSTREAM_UNAVAILABLE"
)

// Exception is a business outcome found by a step: the parcel cannot
// continue normally and goes to the exception chute.
type Exception struct {
	Code   string `json:"code"`
	Reason string `json:"reason"`
}

func (e *Exception) Error() string { return e.Code + ": " + e.Reason }

// StopsRun makes a step's exception end the run even from a degradable node:
// a finding is not a failure to replace with a fallback.
func (e *Exception) StopsRun() bool { return true }

func exceptionf(code, format string, args ...any) error {
	return &Exception{Code: code, Reason: fmt.Sprintf(format, args...)}
}
