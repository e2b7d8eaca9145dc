package packing

import (
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/workorder"
)

// Sentinel errors; every error this package returns for a client's mistake
// or a refused operation wraps exactly one of them. Match with errors.Is.
// Each carries its kind and the stable code clients see.
var (
	ErrInvalidTrackingNo = ident.ErrInvalidTrackingNo
	ErrInvalidNextHop    = fault.New(fault.Invalid, "invalid_next_hop", "invalid next hop: want a site id like SG-H02")
	ErrUnknownNextHop    = fault.New(fault.Invalid, "unknown_next_hop", "next hop is not a known site")
	ErrMissingScanID     = fault.New(fault.Invalid, "missing_scan_id", "scan_id is required (1 to 128 characters)")
	ErrWeightOutOfBounds = fault.New(fault.Invalid, "invalid_weight", "weight out of bounds")
	ErrBagNotFound       = fault.New(fault.NotFound, "bag_not_found", "bag not found")
	ErrNotInBag          = fault.New(fault.NotFound, "not_in_bag", "parcel is not in this bag")
	ErrOtherStation      = fault.New(fault.Forbidden, "forbidden", "object belongs to another station")
	ErrNotSorted         = workorder.ErrParcelNotSorted
	ErrWrongNextHop      = fault.New(fault.Conflict, "wrong_next_hop", "parcel is sorted to another next hop")
	ErrAlreadyBagged     = workorder.ErrAlreadyBagged
	ErrBagSealed         = fault.New(fault.Conflict, "bag_sealed", "bag is sealed")
	ErrBagEmpty          = fault.New(fault.Conflict, "bag_empty", "bag is empty")
	ErrBagNotSealed      = fault.New(fault.Conflict, "bag_not_sealed", "bag is not sealed")
	ErrInvalidBagStatus  = fault.New(fault.Invalid, "invalid_status", "status must be open, sealed or departed")
	// ErrDependencyUnavailable: a downstream service (container, linehaul)
	// did not answer; nothing was written and the client may retry.
	ErrDependencyUnavailable = fault.New(fault.Unavailable, "dependency_unavailable", "a downstream service is unavailable; retry shortly")

	ErrInvalidHandover  = fault.New(fault.Invalid, "invalid_handover", "invalid handover")
	ErrUnknownTrip      = fault.New(fault.Invalid, "unknown_trip", "trip not known to the linehaul service")
	ErrTripOtherStation = fault.New(fault.Conflict, "trip_other_station", "trip does not leave from this station")
	ErrHandoverNotFound = fault.New(fault.NotFound, "handover_not_found", "handover not found")
	ErrHandoverClosed   = fault.New(fault.Conflict, "handover_closed", "handover is closed")
	ErrHandoverEmpty    = fault.New(fault.Conflict, "handover_empty", "handover has no bags")
	ErrBagOnHandover    = fault.New(fault.Conflict, "bag_on_handover", "bag is already on a handover")
	ErrNotOnTrip        = fault.New(fault.Conflict, "next_hop_not_on_trip", "bag's next hop is not a stop of the trip")
	// ErrInvalidHandoverStatus: a listing asked for a status handovers do
	// not have.
	ErrInvalidHandoverStatus = fault.New(fault.Invalid, "invalid_status", "status must be open or closed")
)

// refuse is a refusal of the sentinel's kind and code with the facts a
// client needs to act on it (which bag already holds the parcel, what the
// parcel is sorted to); fields are safe to show to the client.
func refuse(kind *fault.Error, fields map[string]any, format string, args ...any) error {
	return kind.With(fields, format, args...)
}
