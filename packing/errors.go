package packing

import (
	"errors"
	"fmt"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/workorder"
)

// Sentinel errors; every error this package returns for a client's mistake
// or a refused operation wraps exactly one of them. Match with errors.Is.
var (
	ErrInvalidTrackingNo = ident.ErrInvalidTrackingNo
	ErrInvalidNextHop    = errors.New("invalid next hop: want a site id like SG-H02")
	ErrUnknownNextHop    = errors.New("next hop is not a known site")
	ErrMissingScanID     = errors.New("scan_id is required (1 to 128 characters)")
	ErrWeightOutOfBounds = errors.New("weight out of bounds")
	ErrBagNotFound       = errors.New("bag not found")
	ErrNotInBag          = errors.New("parcel is not in this bag")
	ErrOtherStation      = errors.New("object belongs to another station")
	ErrNotSorted         = workorder.ErrParcelNotSorted
	ErrWrongNextHop      = errors.New("parcel is sorted to another next hop")
	ErrAlreadyBagged     = workorder.ErrAlreadyBagged
	ErrBagSealed         = errors.New("bag is sealed")
	ErrBagEmpty          = errors.New("bag is empty")
	ErrBagNotSealed      = errors.New("bag is not sealed")
	ErrInvalidBagStatus  = errors.New("status must be open, sealed or departed")
	// ErrDependencyUnavailable: a downstream service (container, linehaul)
	// did not answer; nothing was written and the client may retry.
	ErrDependencyUnavailable = errors.New("a downstream service is unavailable; retry shortly")

	ErrInvalidHandover  = errors.New("invalid handover")
	ErrUnknownTrip      = errors.New("trip not known to the linehaul service")
	ErrTripOtherStation = errors.New("trip does not leave from this station")
	ErrHandoverNotFound = errors.New("handover not found")
	ErrHandoverClosed   = errors.New("handover is closed")
	ErrHandoverEmpty    = errors.New("handover has no bags")
	ErrBagOnHandover    = errors.New("bag is already on a handover")
	ErrNotOnTrip        = errors.New("bag's next hop is not a stop of the trip")
)

// RefusalError is a refusal with the facts a client needs to act on it
// (which bag already holds the parcel, what the parcel is sorted to). It
// wraps one sentinel; Details are safe to show to the client.
type RefusalError struct {
	Kind   error
	Msg    string
	Fields map[string]any
}

func (e *RefusalError) Error() string { return e.Msg }

// Unwrap returns the sentinel kind.
func (e *RefusalError) Unwrap() error { return e.Kind }

// Details are the client-facing facts of the refusal.
func (e *RefusalError) Details() map[string]any { return e.Fields }

func refuse(kind error, fields map[string]any, format string, args ...any) error {
	return &RefusalError{Kind: kind, Msg: fmt.Sprintf(format, args...), Fields: fields}
}
