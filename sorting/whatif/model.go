package whatif

import (
	"sort"
	"time"

	"github.com/expresshub/station/sorting"
)

// BagLimits are what a bag under a chute holds before it must be sealed
// (the station's, package packing; passed in, since sorting does not import
// packing).
type BagLimits struct {
	MaxParcels int `json:"max_parcels"`
	MaxGrams   int `json:"max_grams"`
}

// The floor model, the same for both sides of a replay:
//
//   - A next hop's parcel goes to the first of the hop's chutes (in the chute
//     map's order) whose bag is not full, as Resolve answers at the belt.
//   - A bag is full when it reaches a limit: MaxParcels parcels or MaxGrams
//     grams (the floor's "seal now"). The chute then takes nothing until a
//     new bag hangs there, BagSwap after the bag became full (the time a
//     person needs to seal, label and bind a new bag).
//   - A parcel that arrives at a full chute is turned away: it counts in
//     that chute's overflow and goes to the hop's next chute, or to the
//     overflow chute when every chute of the hop is full.
//   - Exceptions go to the exception chute; a next hop without a chute on
//     the map is the exception NO_CHUTE. Special chutes have no bag limit.
//   - A parcel reaches its chute at its belt confirm when one was recorded
//     after its sort, else at its sort.
type floorModel struct {
	m       sorting.ChuteMap
	limits  BagLimits
	swap    time.Duration
	start   time.Time
	bucket  time.Duration
	buckets int
	chutes  map[int]*chuteState
}

type chuteState struct {
	kind     sorting.ChuteKind
	hop      string
	parcels  int // in the current bag
	grams    int
	fullAt   time.Time // zero: not full
	bagged   bool      // a bag was started
	fill     ChuteFill
	overflow int
}

// ChuteFill is one side's figures for one chute.
type ChuteFill struct {
	Parcels     int        `json:"parcels"`
	PeakParcels int        `json:"peak_parcels"`
	PeakKg      float64    `json:"peak_kg"`
	PeakRatio   float64    `json:"peak_ratio"` // the fuller of parcels and kg against the limits, 0..1
	Bags        int        `json:"bags"`
	FullAt      *time.Time `json:"full_at,omitempty"` // first time the bag reached a limit
	Overflow    int        `json:"overflow"`          // parcels turned away because the bag was full
	// Series is the peak fill of the bag in each of the report's time
	// buckets, as the fuller of parcels and kg against the limits (1 is
	// full), for the chart.
	Series []float64 `json:"series"`
	peakG  int
}

func newFloorModel(m sorting.ChuteMap, limits BagLimits, swap time.Duration, start, end time.Time, buckets int) *floorModel {
	width := end.Sub(start) / time.Duration(buckets)
	if width <= 0 {
		width = time.Second
	}
	f := &floorModel{m: m, limits: limits, swap: swap, start: start, bucket: width, buckets: buckets, chutes: map[int]*chuteState{}}
	for hop, cs := range m.NextHops {
		for _, c := range cs {
			f.chutes[c] = &chuteState{kind: sorting.ChuteNextHop, hop: hop}
		}
	}
	f.chutes[m.ExceptionChute] = &chuteState{kind: sorting.ChuteException}
	f.chutes[m.OverflowChute] = &chuteState{kind: sorting.ChuteOverflow}
	f.chutes[m.RejectChute] = &chuteState{kind: sorting.ChuteReject}
	for _, c := range f.chutes {
		c.fill.Series = make([]float64, buckets)
	}
	return f
}

// place puts one parcel on the floor and returns its chute and its
// exception code, which is NO_CHUTE for a next hop the map has no chute
// for.
func (f *floorModel) place(at time.Time, hop, exception string, grams int) (int, string) {
	if exception != "" {
		f.add(f.m.ExceptionChute, at, grams)
		return f.m.ExceptionChute, exception
	}
	cs := f.m.NextHops[hop]
	if len(cs) == 0 {
		f.add(f.m.ExceptionChute, at, grams)
		return f.m.ExceptionChute, sorting.CodeNoChute
	}
	for _, c := range cs {
		s := f.chutes[c]
		if !s.fullAt.IsZero() && !at.Before(s.fullAt.Add(f.swap)) {
			s.parcels, s.grams, s.fullAt, s.bagged = 0, 0, time.Time{}, false // a new bag hangs there
		}
		if s.fullAt.IsZero() {
			f.add(c, at, grams)
			return c, ""
		}
		s.overflow++
	}
	f.add(f.m.OverflowChute, at, grams)
	return f.m.OverflowChute, ""
}

func (f *floorModel) add(chute int, at time.Time, grams int) {
	s := f.chutes[chute]
	if !s.bagged {
		s.bagged = true
		s.fill.Bags++
	}
	s.parcels++
	s.grams += grams
	s.fill.Parcels++
	if s.parcels > s.fill.PeakParcels {
		s.fill.PeakParcels = s.parcels
	}
	if s.grams > s.fill.peakG {
		s.fill.peakG = s.grams
	}
	ratio := max(float64(s.parcels)/float64(max(f.limits.MaxParcels, 1)), float64(s.grams)/float64(max(f.limits.MaxGrams, 1)))
	b := min(max(int(at.Sub(f.start)/f.bucket), 0), f.buckets-1)
	s.fill.Series[b] = max(s.fill.Series[b], ratio)
	if s.kind != sorting.ChuteNextHop {
		return
	}
	if s.parcels >= f.limits.MaxParcels || s.grams >= f.limits.MaxGrams {
		s.fullAt = at
		if s.fill.FullAt == nil {
			t := at
			s.fill.FullAt = &t
		}
	}
}

// fills returns every chute's figures, by chute number.
func (f *floorModel) fills() map[int]ChuteFill {
	out := make(map[int]ChuteFill, len(f.chutes))
	for c, s := range f.chutes {
		fill := s.fill
		fill.Overflow = s.overflow
		fill.PeakKg = float64(fill.peakG) / 1000
		if s.kind == sorting.ChuteNextHop {
			fill.PeakRatio = max(float64(fill.PeakParcels)/float64(max(f.limits.MaxParcels, 1)),
				float64(fill.peakG)/float64(max(f.limits.MaxGrams, 1)))
		}
		out[c] = fill
	}
	return out
}

// chuteKinds names each chute's use on a map.
func chuteKinds(m sorting.ChuteMap) map[int]ChuteRow {
	out := map[int]ChuteRow{}
	for hop, cs := range m.NextHops {
		for _, c := range cs {
			out[c] = ChuteRow{Chute: c, Kind: sorting.ChuteNextHop, NextHop: hop}
		}
	}
	out[m.ExceptionChute] = ChuteRow{Chute: m.ExceptionChute, Kind: sorting.ChuteException}
	out[m.OverflowChute] = ChuteRow{Chute: m.OverflowChute, Kind: sorting.ChuteOverflow}
	out[m.RejectChute] = ChuteRow{Chute: m.RejectChute, Kind: sorting.ChuteReject}
	return out
}

func sortedChutes(m map[int]ChuteRow) []int {
	out := make([]int, 0, len(m))
	for c := range m {
		out = append(out, c)
	}
	sort.Ints(out)
	return out
}
