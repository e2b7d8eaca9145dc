package whatif

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
)

// Kind is what a recorded scan was.
type Kind string

// Scan kinds.
const (
	KindReceive Kind = "receive" // an inbound scan: counted, never replayed through a flow
	KindSort    Kind = "sort"    // a decision: next hop and chute, or an exception
	KindConfirm Kind = "confirm" // the sorting machine put the parcel into a chute
)

// Scan is one recorded scan of one parcel. An uploaded scan needs only
// kind, at and tracking_no; a sort without next_hop and exception has no
// recorded answer, and the station's flow (or the candidate) decides it.
type Scan struct {
	Kind        Kind      `json:"kind"`
	At          time.Time `json:"at"`
	TrackingNo  string    `json:"tracking_no"`
	NextHop     string    `json:"next_hop,omitempty"`
	Chute       int       `json:"chute,omitempty"`
	Exception   string    `json:"exception,omitempty"` // exception code
	Flow        string    `json:"flow,omitempty"`
	FlowVersion int       `json:"flow_version,omitempty"`
	WeightG     int       `json:"weight_g,omitempty"`
}

// answered reports whether the scan carries a recorded answer.
func (s Scan) answered() bool { return s.NextHop != "" || s.Exception != "" }

// Errors of the input.
var (
	ErrInvalidScans  = fault.New(fault.Invalid, "invalid_scans", "the uploaded scans are invalid")
	ErrTooManyScans  = fault.New(fault.Invalid, "too_many_scans", "too many scans for one replay")
	ErrInvalidWindow = fault.New(fault.Invalid, "invalid_window", "the replay window is invalid")
)

// minAt and maxAt bound a scan's time: any real scan is well inside.
var (
	minAt = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	maxAt = time.Date(9000, 1, 1, 0, 0, 0, 0, time.UTC)
)

// maxLine bounds one NDJSON line: a scan is a few hundred bytes.
const maxLine = 4096

// ParseNDJSON reads scans, one JSON object a line (blank lines are
// skipped), at most max of them. Every line is checked: a known kind, a
// time, a tracking number that parses, chute and weight in range; the
// first bad line is refused with its number.
//
//	{"kind":"sort","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001","next_hop":"SG-L01","weight_g":900}
func ParseNDJSON(r io.Reader, max int) ([]Scan, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1024), maxLine)
	var out []Scan
	line := 0
	for sc.Scan() {
		line++
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		if len(out) >= max {
			return nil, ErrTooManyScans.With(map[string]any{"max": max}, "more than %d scans", max)
		}
		s, err := parseLine(raw)
		if err != nil {
			return nil, ErrInvalidScans.With(map[string]any{"line": line}, "line %d: %v", line, err)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, ErrInvalidScans.With(map[string]any{"line": line + 1}, "line %d is longer than %d bytes", line+1, maxLine)
		}
		return nil, fmt.Errorf("whatif: read scans: %w", err)
	}
	return out, nil
}

func parseLine(raw []byte) (Scan, error) {
	var s Scan
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Scan{}, fmt.Errorf("not a scan object: %v", err)
	}
	if dec.More() {
		return Scan{}, errors.New("more than one JSON value")
	}
	switch s.Kind {
	case KindReceive, KindSort, KindConfirm:
	default:
		return Scan{}, fmt.Errorf("kind %q is not receive, sort or confirm", s.Kind)
	}
	if s.At.IsZero() {
		return Scan{}, errors.New("at is required (RFC 3339)")
	}
	if s.At.Before(minAt) || !s.At.Before(maxAt) {
		// A time near year 9999 cannot be written back as RFC 3339 once the
		// window's end is a second past it: the report could not be sent.
		return Scan{}, fmt.Errorf("at %s is not between %s and %s", s.At.Format(time.RFC3339), minAt.Format(time.DateOnly), maxAt.Format(time.DateOnly))
	}
	tn, err := ident.ParseTrackingNo(s.TrackingNo)
	if err != nil {
		return Scan{}, fmt.Errorf("tracking_no: %v", err)
	}
	s.TrackingNo = string(tn)
	if s.NextHop != "" {
		if _, err := ident.ParseSiteID(s.NextHop); err != nil {
			return Scan{}, fmt.Errorf("next_hop: %v", err)
		}
	}
	switch {
	case s.Chute < 0 || s.Chute > 999:
		return Scan{}, fmt.Errorf("chute %d is not between 1 and 999", s.Chute)
	case s.Kind == KindConfirm && s.Chute == 0:
		return Scan{}, errors.New("a confirm needs its chute")
	case s.WeightG < 0 || s.WeightG > 1_000_000:
		return Scan{}, fmt.Errorf("weight_g %d is not between 0 and 1000000", s.WeightG)
	case len(s.Exception) > 64 || len(s.Flow) > 64:
		return Scan{}, errors.New("exception and flow are at most 64 characters")
	case s.FlowVersion < 0:
		return Scan{}, errors.New("flow_version must not be negative")
	}
	return s, nil
}
