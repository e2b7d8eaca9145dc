package sim

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Trip types, the lower-case form of the proto enum.
const (
	TripLinehaul   = "linehaul"
	TripLastMile   = "last_mile"
	TripThirdParty = "third_party"
)

// Trip is one departure from a site.
type Trip struct {
	ID          string
	Type        string // TripLinehaul, TripLastMile, TripThirdParty
	Origin      string
	VehicleID   string
	Plate       string
	VehicleKind string
	Stops       []string // site ids, in calling order
	DepartureAt time.Time
}

// TripID names trip n (n >= 1) leaving a site: TR-<site>-<nnnn>.
func TripID(origin string, n int) string {
	return fmt.Sprintf("TR-%s-%04d", normalizeID(origin), n)
}

// Trip derives a trip from its id. Every active site has trips 1..9999; what
// a trip serves depends on n and the origin:
//
//   - from a non-hub site: one stop, its parent hub (a feeder truck);
//   - from a hub, n % 4 == 1 or 3: linehaul to 1-3 other hubs of the market;
//   - n % 4 == 2: last mile to 2-4 of the hub's active last-mile sites;
//   - n % 4 == 0: handed to the hub's partner carrier site.
//
// Departures are on the hour, n hours after day, each stop an hour apart.
// ErrMalformed for a malformed id, ErrUnknown for an unknown or inactive site.
func (f *Fixtures) Trip(id string, day time.Time) (Trip, error) {
	tid := normalizeID(id)
	if !strings.HasPrefix(tid, "TR-") || len(tid) < 9 || tid[len(tid)-5] != '-' {
		return Trip{}, fmt.Errorf("%w: trip id %q: want TR-<site>-<nnnn>", ErrMalformed, id)
	}
	n, err := strconv.Atoi(tid[len(tid)-4:])
	if err != nil || n < 1 {
		return Trip{}, fmt.Errorf("%w: trip id %q: want TR-<site>-<nnnn>", ErrMalformed, id)
	}
	origin, ok := f.Site(tid[3 : len(tid)-5])
	if !ok || !origin.Active {
		return Trip{}, fmt.Errorf("%w: trip %s", ErrUnknown, tid)
	}
	h := mix(uint64(n) ^ mix(uint64(len(origin.ID))<<32^uint64(hashString(origin.ID))))
	t := Trip{ID: tid, Origin: origin.ID, DepartureAt: day.Truncate(time.Hour).Add(time.Duration(n) * time.Hour)}
	switch {
	case origin.Type != SiteHub:
		t.Type, t.VehicleKind, t.Stops = TripLinehaul, "van", []string{origin.ParentHub}
	case n%4 == 1 || n%4 == 3:
		var others []string
		for _, s := range f.Sites(origin.Market) {
			if s.Type == SiteHub && s.ID != origin.ID {
				others = append(others, s.ID)
			}
		}
		t.Type, t.VehicleKind = TripLinehaul, "truck-10t"
		t.Stops = rotate(others, n, 1+int(h%3))
	case n%4 == 2:
		var lm []string
		for _, s := range f.Children(origin.ID) {
			if s.Type == SiteLastMile && s.Active {
				lm = append(lm, s.ID)
			}
		}
		t.Type, t.VehicleKind = TripLastMile, "van"
		t.Stops = rotate(lm, n/4, 2+int(h%3))
	default:
		for _, s := range f.Children(origin.ID) {
			if s.Type == SiteThirdParty {
				t.Stops = append(t.Stops, s.ID)
			}
		}
		t.Type, t.VehicleKind = TripThirdParty, "partner"
	}
	t.VehicleID = fmt.Sprintf("V-%s-%03d", origin.Market, h%1000)
	t.Plate = fmt.Sprintf("%s %04d %c", origin.Market, (h>>10)%10000, 'A'+rune((h>>24)%26))
	return t, nil
}

// TripTo returns the id of the first trip (lowest n) leaving origin that
// stops at nextHop; "" when none of the first 100 does.
func (f *Fixtures) TripTo(origin, nextHop string) string {
	day := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for n := 1; n <= 100; n++ {
		t, err := f.Trip(TripID(origin, n), day)
		if err != nil {
			return ""
		}
		for _, s := range t.Stops {
			if s == normalizeID(nextHop) {
				return t.ID
			}
		}
	}
	return ""
}

// rotate returns up to k items of s starting at offset n, wrapping around.
func rotate(s []string, n, k int) []string {
	if len(s) == 0 {
		return nil
	}
	k = min(k, len(s))
	out := make([]string, k)
	for i := range k {
		out[i] = s[(n+i)%len(s)]
	}
	return out
}

func hashString(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}
