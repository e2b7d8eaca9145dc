package ident

import (
	"fmt"
	"strings"

	"github.com/google/uuid"
)

// Sentinel errors, one per kind of identifier; match with errors.Is.
var (
	ErrInvalidTrackingNo = &Error{code: "invalid_tracking_no", msg: "invalid tracking number"}
	ErrInvalidSiteID     = &Error{code: "invalid_site_id", msg: "invalid site id"}
	// ErrInvalidScanID keeps the code clients have always seen for a bad
	// scan id, missing or not.
	ErrInvalidScanID     = &Error{code: "missing_scan_id", msg: "invalid scan id"}
	ErrInvalidBagID      = &Error{code: "invalid_bag_id", msg: "invalid bag id"}
	ErrInvalidHandoverID = &Error{code: "invalid_handover_id", msg: "invalid handover id"}
)

// Error is an identifier a client sent that does not parse. It is always
// the client's mistake, and its code is stable (invalid_tracking_no, ...).
// ident is a leaf and may not import fault, so instead of a fault kind it
// carries the marker method InvalidInput, by which fault.As classifies it
// as Invalid: no edge needs a row for it.
type Error struct {
	code, msg string
}

func (e *Error) Error() string { return e.msg }

// Code is the stable code clients match on.
func (e *Error) Code() string { return e.code }

// InvalidInput marks the error as a client's malformed input (see
// fault.As); it does nothing.
func (e *Error) InvalidInput() {}

// TrackingNo is a normalised tracking number: two upper-case letters of its
// market and 10 to 18 digits, e.g. SG1000000001.
type TrackingNo string

// Market is the two-letter market prefix.
func (t TrackingNo) Market() string { return string(t[:2]) }

// ParseTrackingNo trims surrounding whitespace (a scanner may send a CR or a
// tab), upper-cases the letters and checks the format. Anything else, inner
// spaces, other characters, a wrong length, is rejected rather than guessed.
func ParseTrackingNo(s string) (TrackingNo, error) {
	s = strings.TrimSpace(s)
	if len(s) < 12 || len(s) > 20 {
		return "", fmt.Errorf("%w: %q must be 2 letters and 10 to 18 digits", ErrInvalidTrackingNo, Clip(s))
	}
	b := []byte(s)
	for i := 0; i < 2; i++ {
		c := upper(b[i])
		if c < 'A' || c > 'Z' {
			return "", fmt.Errorf("%w: %q must start with two letters", ErrInvalidTrackingNo, Clip(s))
		}
		b[i] = c
	}
	for _, c := range b[2:] {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("%w: %q must end in 10 to 18 digits", ErrInvalidTrackingNo, Clip(s))
		}
	}
	return TrackingNo(b), nil
}

// SiteID is a normalised site id: market, dash, kind letter and 2 to 4
// digits, e.g. SG-H01 (a hub) or SG-L07 (a last-mile site).
type SiteID string

// Market is the two-letter market prefix.
func (s SiteID) Market() string { return string(s[:2]) }

// ParseSiteID trims and upper-cases s and checks the format.
func ParseSiteID(s string) (SiteID, error) {
	id := []byte(strings.TrimSpace(s))
	ok := len(id) >= 6 && len(id) <= 8 && id[2] == '-'
	for i := 0; ok && i < len(id); i++ {
		c := upper(id[i])
		id[i] = c
		switch {
		case i == 2:
		case i < 4:
			ok = c >= 'A' && c <= 'Z'
		default:
			ok = c >= '0' && c <= '9'
		}
	}
	if !ok {
		return "", fmt.Errorf("%w: %q must look like SG-H01 (market, dash, kind letter, 2 to 4 digits)", ErrInvalidSiteID, Clip(s))
	}
	return SiteID(id), nil
}

// MaxScanID bounds the idempotency key a client may send.
const MaxScanID = 128

// ScanID is a client's idempotency key for one write: 1 to 128 printable
// characters without surrounding spaces. It is taken as sent (never
// normalised): two keys that differ in any byte are two requests.
type ScanID string

// ParseScanID checks a client's scan id.
func ParseScanID(s string) (ScanID, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("%w: scan_id is required (1 to %d characters)", ErrInvalidScanID, MaxScanID)
	case len(s) > MaxScanID:
		return "", fmt.Errorf("%w: scan_id is at most %d characters", ErrInvalidScanID, MaxScanID)
	case strings.TrimSpace(s) != s:
		return "", fmt.Errorf("%w: scan_id has surrounding spaces", ErrInvalidScanID)
	}
	for _, c := range []byte(s) {
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("%w: scan_id has control characters", ErrInvalidScanID)
		}
	}
	return ScanID(s), nil
}

// BagID is a network-wide bag id as the container service allocates it:
// 4 to 64 upper-case letters, digits or dashes, e.g. BGSGH01LX0F5A2000001.
type BagID string

// ParseBagID trims and upper-cases s (a bag label may be typed) and checks
// it.
func ParseBagID(s string) (BagID, error) {
	id := []byte(strings.TrimSpace(s))
	ok := len(id) >= 4 && len(id) <= 64
	for i := 0; ok && i < len(id); i++ {
		c := upper(id[i])
		id[i] = c
		ok = c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'
	}
	if !ok {
		return "", fmt.Errorf("%w: %q must be 4 to 64 letters, digits or dashes", ErrInvalidBagID, Clip(s))
	}
	return BagID(id), nil
}

// HandoverID is a handover's id, a UUID in its canonical lower-case form.
type HandoverID string

// ParseHandoverID accepts a UUID in any of its usual spellings.
func ParseHandoverID(s string) (HandoverID, error) {
	u, err := uuid.Parse(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%w: %q is not a UUID", ErrInvalidHandoverID, Clip(s))
	}
	return HandoverID(u.String()), nil
}

func upper(c byte) byte {
	if c >= 'a' && c <= 'z' {
		return c - ('a' - 'A')
	}
	return c
}

// Clip keeps error messages short whatever a client sent.
func Clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}
