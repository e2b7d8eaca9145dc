package packing

import (
	"fmt"

	"github.com/expresshub/station/ident"
)

// The identifiers of packing are the station's (package ident): one parser
// each, so packing accepts exactly the parcels, sites and scan ids that
// sorting does. These wrap them in packing's own refusals.

func parseTrackingNo(s string) (string, error) {
	tn, err := ident.ParseTrackingNo(s)
	return string(tn), err
}

func parseNextHop(s string) (string, error) {
	id, err := ident.ParseSiteID(s)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrInvalidNextHop, err)
	}
	return string(id), nil
}

func checkScanID(s string) error {
	if _, err := ident.ParseScanID(s); err != nil {
		return fmt.Errorf("%w: %v", ErrMissingScanID, err)
	}
	return nil
}

// clip keeps error messages short whatever a client sent.
func clip(s string) string { return ident.Clip(s) }
