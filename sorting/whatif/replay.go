package whatif

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
)

// Errors of a replay (besides the input's and sorting.ErrNoChuteMap,
// sorting.ErrNoFlow, sorting.ErrInvalidChuteMap).
var (
	ErrWindowTooLong   = fault.New(fault.Invalid, "window_too_long", "the replay window is too long")
	ErrTooManyParcels  = fault.New(fault.Invalid, "too_many_parcels", "too many parcels for one replay")
	ErrUnknownFlow     = fault.New(fault.Invalid, "unknown_flow", "no such flow version")
	ErrReplayTimedOut  = fault.New(fault.Unavailable, "replay_timed_out", "the replay did not finish within the request's deadline")
	ErrInvalidBagSwap  = fault.New(fault.Invalid, "invalid_bag_swap", "bag_swap must be between 0 and 24h")
	ErrInvalidStation  = fault.New(fault.Invalid, "invalid_station", "station must be a site id like SG-H01")
	ErrNothingToReplay = fault.New(fault.Invalid, "no_candidate", "name a candidate chute map, a flow version, or both")
)

// Sorter is what a replay needs of the sorting service: the live chute map
// and flows, and a flow run without recording (*sorting.Service).
type Sorter interface {
	Run(ctx context.Context, flow *sorting.Flow, stationID string, tn ident.TrackingNo, dryRun bool) (sorting.Result, *dag.Result)
	Chutes() *sorting.ChuteStore
	Flows() *sorting.FlowSet
}

// LimitsFunc gives a station's bag limits (packing's, through the wiring).
type LimitsFunc func(ctx context.Context, station string) (BagLimits, error)

// Config bounds replays. Zero values take the defaults in brackets.
type Config struct {
	// MaxWindow bounds a recorded window [48h].
	MaxWindow time.Duration
	// MaxParcels bounds the scans of one replay, read or uploaded [200000].
	MaxParcels int
	// BagSwap is the default time from a full bag to a new one [5m].
	BagSwap time.Duration
	// BeltDeadline is what a belt decision may take: the belt's budget
	// less its safety margin [130ms].
	BeltDeadline time.Duration
	// Parallel bounds concurrent flow runs of a replay [16].
	Parallel int
	// Buckets is the number of points of each chute's fill series [48].
	Buckets int
}

func (c Config) withDefaults() Config {
	if c.MaxWindow <= 0 {
		c.MaxWindow = 48 * time.Hour
	}
	if c.MaxParcels <= 0 {
		c.MaxParcels = 200_000
	}
	if c.BagSwap <= 0 {
		c.BagSwap = 5 * time.Minute
	}
	if c.BeltDeadline <= 0 {
		c.BeltDeadline = 130 * time.Millisecond
	}
	if c.Parallel <= 0 {
		c.Parallel = 16
	}
	if c.Buckets <= 0 {
		c.Buckets = 48
	}
	return c
}

// Replayer runs what-if replays. It only reads.
type Replayer struct {
	db     *pgxpool.Pool
	sorter Sorter
	limits LimitsFunc
	cfg    Config
}

// New builds a replayer.
func New(db *pgxpool.Pool, sorter Sorter, limits LimitsFunc, cfg Config) *Replayer {
	return &Replayer{db: db, sorter: sorter, limits: limits, cfg: cfg.withDefaults()}
}

// Config is the replayer's configuration, defaults applied.
func (r *Replayer) Config() Config { return r.cfg }

// Input is what to replay: the station's recorded scans in [From, To), or
// the given Scans when not nil.
type Input struct {
	Station  string
	From, To time.Time
	Scans    []Scan
	// BagSwap overrides the configured time from a full bag to a new one;
	// 0 keeps it.
	BagSwap time.Duration
}

// FlowRef names a stored flow version.
type FlowRef struct {
	Name    string `json:"name"`
	Version int    `json:"version"`
}

// ErrInvalidFlowRef: a flow named otherwise than NAME@VERSION.
var ErrInvalidFlowRef = fault.New(fault.Invalid, "invalid_flow_ref", "flow must be NAME@VERSION, like full@3")

// ParseFlowRef reads NAME@VERSION.
func ParseFlowRef(s string) (FlowRef, error) {
	name, v, ok := strings.Cut(s, "@")
	n, err := strconv.Atoi(v)
	if !ok || name == "" || err != nil || n < 1 {
		return FlowRef{}, ErrInvalidFlowRef.With(nil, "flow %q must be NAME@VERSION, like full@3", s)
	}
	return FlowRef{Name: name, Version: n}, nil
}

// Candidate is what to try: a chute map, a flow version, or both.
type Candidate struct {
	ChuteMap *sorting.ChuteMap `json:"chute_map,omitempty"`
	Flow     *FlowRef          `json:"flow,omitempty"`
}

// ChuteRow is one chute of the report, actual beside candidate.
type ChuteRow struct {
	Chute     int               `json:"chute"`
	Kind      sorting.ChuteKind `json:"kind"`
	NextHop   string            `json:"next_hop,omitempty"`
	Actual    ChuteFill         `json:"actual"`
	Candidate ChuteFill         `json:"candidate"`
}

// Outcome is where one parcel went on one side.
type Outcome struct {
	NextHop   string `json:"next_hop,omitempty"`
	Chute     int    `json:"chute"`
	Exception string `json:"exception,omitempty"`
}

// Difference is a parcel whose chute, next hop or exception would differ.
type Difference struct {
	TrackingNo string    `json:"tracking_no"`
	At         time.Time `json:"at"`
	Actual     Outcome   `json:"actual"`
	Candidate  Outcome   `json:"candidate"`
}

// Late is the late-decision prediction for the candidate flow (see late.go).
type Late struct {
	Flow             FlowRef       `json:"flow"`
	DeadlineMs       float64       `json:"deadline_ms"`
	CriticalPath     []string      `json:"critical_path"`
	CriticalPathMs   float64       `json:"critical_path_ms"`
	Steps            []StepLatency `json:"steps"`
	Samples          int           `json:"samples"`            // recorded traces the share is taken over
	PredictedLate    float64       `json:"predicted_late"`     // share of decisions predicted past the deadline, 0..1
	CriticalPastLine bool          `json:"critical_past_line"` // the p99 critical path alone is past the deadline
}

// StepLatency is one node's latency figure and where it came from.
type StepLatency struct {
	Node   string  `json:"node"`
	P99Ms  float64 `json:"p99_ms"`
	Source string  `json:"source"` // "recorded" (p99 of the window's traces) or "timeout" (the node's configured timeout)
	Count  int     `json:"count"`
}

// Report is a replay's answer.
type Report struct {
	Station        string         `json:"station"`
	From           time.Time      `json:"from"`
	To             time.Time      `json:"to"`
	Candidate      Candidate      `json:"candidate"`
	Limits         BagLimits      `json:"limits"`
	BagSwapSeconds float64        `json:"bag_swap_s"`
	BucketSeconds  float64        `json:"bucket_s"`
	Scans          int            `json:"scans"`
	Received       int            `json:"received"`
	Parcels        int            `json:"parcels"`
	Recorded       int            `json:"recorded"` // parcels the recorded answer served
	Rerun          int            `json:"rerun"`    // parcels the candidate (or the live) flow was run for, dry
	Chutes         []ChuteRow     `json:"chutes"`
	Exceptions     ExceptionCount `json:"exceptions"`
	Differences    []Difference   `json:"differences"`
	DiffCount      int            `json:"difference_count"` // all of them; Differences holds at most MaxDifferences
	Late           *Late          `json:"late,omitempty"`
	TookMs         float64        `json:"took_ms"`
}

// ExceptionCount is the exceptions by code on each side.
type ExceptionCount struct {
	Actual    map[string]int `json:"actual"`
	Candidate map[string]int `json:"candidate"`
}

// MaxDifferences bounds the differences listed in a report.
const MaxDifferences = 5000

// parcel is one parcel's way through the window.
type parcel struct {
	tn        string
	at        time.Time // when it reaches its chute
	hop, exc  string    // recorded answer
	answered  bool
	decided   bool
	flow      string
	version   int
	grams     int
	candHop   string
	candExc   string
	rerun     bool
	liveHop   string // the live flow's answer, for a parcel with none recorded
	liveExc   string
	firstSeen int
}

// Replay replays in against c and reports. It writes nothing. A replay
// that runs past ctx's deadline, wherever it was, is ErrReplayTimedOut.
func (r *Replayer) Replay(ctx context.Context, in Input, c Candidate) (Report, error) {
	rep, err := r.replay(ctx, in, c)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, ErrReplayTimedOut) {
		if f, ok := fault.As(err); !ok || f.Kind == fault.Internal || f.Kind == fault.Unavailable {
			// The cause stays out of the message: it may be the database's.
			return Report{}, fmt.Errorf("whatif: %w (%w)", ErrReplayTimedOut, err)
		}
	}
	return rep, err
}

func (r *Replayer) replay(ctx context.Context, in Input, c Candidate) (Report, error) {
	began := time.Now()
	if _, err := ident.ParseSiteID(in.Station); err != nil {
		return Report{}, ErrInvalidStation.With(nil, "station %q is not a site id like SG-H01", in.Station)
	}
	if c.ChuteMap == nil && c.Flow == nil {
		return Report{}, ErrNothingToReplay
	}
	swap := r.cfg.BagSwap
	if in.BagSwap < 0 || in.BagSwap > 24*time.Hour {
		return Report{}, ErrInvalidBagSwap
	}
	if in.BagSwap > 0 {
		swap = in.BagSwap
	}
	if c.ChuteMap != nil {
		if err := c.ChuteMap.Validate(); err != nil {
			return Report{}, err
		}
	}
	var cand *sorting.Flow
	if c.Flow != nil {
		f, err := r.sorter.Flows().Version(c.Flow.Name, c.Flow.Version)
		if err != nil {
			return Report{}, ErrUnknownFlow.With(map[string]any{"flow": c.Flow.Name, "version": c.Flow.Version},
				"flow %s version %d is not stored", c.Flow.Name, c.Flow.Version)
		}
		cand = f
	}
	live, err := r.sorter.Chutes().Get(ctx, in.Station)
	if err != nil {
		return Report{}, err
	}
	scans := in.Scans
	if scans == nil {
		if in.From.IsZero() || in.To.IsZero() {
			return Report{}, ErrInvalidWindow.With(nil, "from and to are required (RFC 3339), or upload the scans as NDJSON")
		}
		if !in.To.After(in.From) {
			return Report{}, ErrInvalidWindow.With(nil, "to must be after from")
		}
		if in.To.Sub(in.From) > r.cfg.MaxWindow {
			return Report{}, ErrWindowTooLong.With(map[string]any{"max_hours": r.cfg.MaxWindow.Hours()},
				"the window is longer than %s", r.cfg.MaxWindow)
		}
		scans, err = r.load(ctx, in.Station, in.From, in.To)
		if err != nil {
			return Report{}, err
		}
	} else if len(scans) > r.cfg.MaxParcels {
		return Report{}, ErrTooManyScans.With(map[string]any{"max": r.cfg.MaxParcels}, "more than %d scans", r.cfg.MaxParcels)
	}
	sort.SliceStable(scans, func(i, j int) bool { return scans[i].At.Before(scans[j].At) })
	from, to := in.From, in.To
	if in.Scans != nil && len(scans) > 0 {
		from, to = scans[0].At, scans[len(scans)-1].At.Add(time.Second)
		// An upload is a window too: the same bound keeps its fill series
		// meaningful and its times within what the report can carry.
		if to.Sub(from) > r.cfg.MaxWindow {
			return Report{}, ErrWindowTooLong.With(map[string]any{"max_hours": r.cfg.MaxWindow.Hours()},
				"the uploaded scans span more than %s", r.cfg.MaxWindow)
		}
	}
	limits := BagLimits{MaxParcels: 60, MaxGrams: 25_000}
	if r.limits != nil {
		if limits, err = r.limits(ctx, in.Station); err != nil {
			return Report{}, err
		}
	}
	rep := Report{Station: in.Station, From: from, To: to, Candidate: c, Limits: limits, BagSwapSeconds: swap.Seconds(),
		Scans: len(scans), Exceptions: ExceptionCount{Actual: map[string]int{}, Candidate: map[string]int{}},
		Differences: []Difference{}}
	parcels := gather(scans, &rep)
	rep.Parcels = len(parcels)

	if err := r.decide(ctx, in.Station, parcels, cand, &rep); err != nil {
		return Report{}, err
	}
	candMap := live.ChuteMap
	if c.ChuteMap != nil {
		candMap = *c.ChuteMap
	}
	actual := newFloorModel(live.ChuteMap, limits, swap, from, to, r.cfg.Buckets)
	candidate := newFloorModel(candMap, limits, swap, from, to, r.cfg.Buckets)
	rep.BucketSeconds = actual.bucket.Seconds()
	for _, p := range parcels {
		aHop, aExc := p.hop, p.exc
		if !p.answered {
			aHop, aExc = p.liveHop, p.liveExc
		}
		var a, b Outcome
		a.Chute, a.Exception = actual.place(p.at, aHop, aExc, p.grams)
		b.Chute, b.Exception = candidate.place(p.at, p.candHop, p.candExc, p.grams)
		if aExc == "" {
			a.NextHop = aHop
		}
		if p.candExc == "" {
			b.NextHop = p.candHop
		}
		if a.Exception != "" {
			rep.Exceptions.Actual[a.Exception]++
		}
		if b.Exception != "" {
			rep.Exceptions.Candidate[b.Exception]++
		}
		if a != b {
			rep.DiffCount++
			if len(rep.Differences) < MaxDifferences {
				rep.Differences = append(rep.Differences, Difference{TrackingNo: p.tn, At: p.at, Actual: a, Candidate: b})
			}
		}
	}
	rows := chuteKinds(live.ChuteMap)
	for ch, row := range chuteKinds(candMap) {
		if _, ok := rows[ch]; !ok || rows[ch].Kind != row.Kind || rows[ch].NextHop != row.NextHop {
			if ok && rows[ch].NextHop != "" && row.NextHop != "" {
				row.NextHop = rows[ch].NextHop + " → " + row.NextHop
			}
			rows[ch] = row
		}
	}
	af, cf := actual.fills(), candidate.fills()
	for _, ch := range sortedChutes(rows) {
		row := rows[ch]
		row.Actual, row.Candidate = fillOrEmpty(af, ch, r.cfg.Buckets), fillOrEmpty(cf, ch, r.cfg.Buckets)
		rep.Chutes = append(rep.Chutes, row)
	}
	late, err := r.predictLate(ctx, in.Station, from, to, cand, in.Scans != nil)
	if err != nil {
		return Report{}, err
	}
	rep.Late = late
	rep.TookMs = float64(time.Since(began)) / float64(time.Millisecond)
	return rep, nil
}

func fillOrEmpty(m map[int]ChuteFill, ch, buckets int) ChuteFill {
	if f, ok := m[ch]; ok {
		return f
	}
	return ChuteFill{Series: make([]float64, buckets)}
}

// gather turns scans (in time order) into parcels: a parcel's latest sort
// in the window decides it (a confirm without a sort is its decision), a
// confirm after it is when it reaches the chute, and its weight is the
// largest one seen.
func gather(scans []Scan, rep *Report) []*parcel {
	byTN := map[string]*parcel{}
	var order []*parcel
	for i, s := range scans {
		switch s.Kind {
		case KindReceive:
			rep.Received++
			continue
		}
		p := byTN[s.TrackingNo]
		if p == nil {
			p = &parcel{tn: s.TrackingNo, firstSeen: i}
			byTN[s.TrackingNo] = p
			order = append(order, p)
		}
		p.grams = max(p.grams, s.WeightG)
		if s.Kind == KindSort || !p.decided && s.answered() {
			p.decided = true
			p.hop, p.exc, p.answered = s.NextHop, s.Exception, s.answered()
			p.flow, p.version = s.Flow, s.FlowVersion
			if p.exc != "" {
				p.hop = ""
			}
		}
		p.at = s.At
	}
	// A confirm with no decision at all (an uploaded scan) is decided by
	// the flow, like a sort without an answer.
	sort.SliceStable(order, func(i, j int) bool { return order[i].at.Before(order[j].at) })
	return order
}

// decide gives every parcel its candidate answer: the recorded one where
// the flow is unchanged, else a dry run of the candidate flow (or of the
// station's flow, for a parcel with no recorded answer).
func (r *Replayer) decide(ctx context.Context, station string, parcels []*parcel, cand *sorting.Flow, rep *Report) error {
	var liveFlow *sorting.Flow
	var runs []*parcel
	for _, p := range parcels {
		changed := cand != nil && (p.flow != cand.Name || p.version != cand.Version)
		if p.answered && !changed {
			p.candHop, p.candExc = p.hop, p.exc
			rep.Recorded++
			continue
		}
		if !p.answered && liveFlow == nil {
			f, err := r.sorter.Flows().ForStation(station)
			if err != nil {
				return err
			}
			liveFlow = f
		}
		p.rerun = true
		runs = append(runs, p)
	}
	rep.Rerun = len(runs)
	if len(runs) == 0 {
		return nil
	}
	work := make(chan *parcel)
	var wg sync.WaitGroup
	for range min(r.cfg.Parallel, len(runs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				tn := ident.TrackingNo(p.tn)
				if !p.answered {
					p.liveHop, p.liveExc = r.run(ctx, liveFlow, station, tn)
				}
				switch {
				case cand != nil:
					p.candHop, p.candExc = r.run(ctx, cand, station, tn)
				default:
					p.candHop, p.candExc = p.liveHop, p.liveExc
				}
			}
		}()
	}
	for _, p := range runs {
		select {
		case work <- p:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return ErrReplayTimedOut.With(map[string]any{"parcels": len(parcels), "rerun": len(runs)},
				"the replay of %d parcels (%d run through a flow) did not finish within the request's deadline", len(parcels), len(runs))
		}
		return fmt.Errorf("whatif: %w", err)
	}
	return nil
}

// run is one dry run; the chute is left to the floor model, so a NO_CHUTE
// on the live map still gives the next hop the route found.
func (r *Replayer) run(ctx context.Context, flow *sorting.Flow, station string, tn ident.TrackingNo) (hop, exc string) {
	res, run := r.sorter.Run(ctx, flow, station, tn, true)
	if res.Exception == nil {
		if res.NextHop != nil {
			return *res.NextHop, ""
		}
		return "", sorting.CodeNoRoute
	}
	if res.Exception.Code == sorting.CodeNoChute && run != nil {
		if h, ok := dag.Output(run, sorting.KeyNextHop); ok && h != "" {
			return h, ""
		}
	}
	return "", res.Exception.Code
}
