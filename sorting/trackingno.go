package sorting

import (
	"errors"
	"fmt"
	"strings"
)

// ErrInvalidTrackingNo is returned for a tracking number that is not two
// letters of a market followed by 10 to 18 digits.
var ErrInvalidTrackingNo = errors.New("invalid tracking number")

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
		return "", fmt.Errorf("%w: %q must be 2 letters and 10 to 18 digits", ErrInvalidTrackingNo, clip(s))
	}
	b := []byte(s)
	for i := 0; i < 2; i++ {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c < 'A' || c > 'Z' {
			return "", fmt.Errorf("%w: %q must start with two letters", ErrInvalidTrackingNo, clip(s))
		}
		b[i] = c
	}
	for _, c := range b[2:] {
		if c < '0' || c > '9' {
			return "", fmt.Errorf("%w: %q must end in 10 to 18 digits", ErrInvalidTrackingNo, clip(s))
		}
	}
	return TrackingNo(b), nil
}

// clip keeps error messages short whatever a client sent.
func clip(s string) string {
	if len(s) > 24 {
		return s[:24] + "..."
	}
	return s
}
