package packing

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/expresshub/station/ident"
)

// ParseTrackingNo normalises a scanned tracking number with the one rule
// of the station (ident.ParseTrackingNo): packing accepts exactly the
// parcels sorting can have sorted.
func ParseTrackingNo(s string) (string, error) {
	tn, err := ident.ParseTrackingNo(s)
	return string(tn), err
}

var siteIDPattern = regexp.MustCompile(`^[A-Z]{2}-[A-Z][0-9]{2,4}$`)

// ParseSiteID normalises a site id (SG-H02): trimmed, upper-cased.
func ParseSiteID(s string) (string, error) {
	id := strings.ToUpper(strings.TrimSpace(s))
	if !siteIDPattern.MatchString(id) {
		return "", fmt.Errorf("%w: got %q", ErrInvalidNextHop, clip(s))
	}
	return id, nil
}

// maxScanID bounds the idempotency key a client may send.
const maxScanID = 128

func checkScanID(s string) error {
	if s == "" || len(s) > maxScanID || strings.TrimSpace(s) != s {
		return ErrMissingScanID
	}
	return nil
}

// clip keeps error messages short whatever a client sent.
func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}
