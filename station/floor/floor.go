package floor

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/singleflight"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/belt"
	"github.com/expresshub/station/workorder"
)

// Floor is the sorter floor of the stations of one deployment.
type Floor struct {
	db      *pgxpool.Pool
	belt    *belt.Service
	packing *packing.Service
	chutes  *sorting.ChuteStore
	hub     *Hub
	// sealWait is the time from a bag's "seal now" (its chute full) to its
	// seal: how long the belt sent that hop elsewhere.
	sealWait prometheus.Histogram
	views    prometheus.Counter

	// Every live floor of a station is woken by the same change; one view
	// read after it serves them all (see Live).
	flights singleflight.Group
	mu      sync.Mutex
	latest  map[string]sharedView
}

// sharedView is a view read after the hub's gen-th change of its station.
type sharedView struct {
	gen  uint64
	view View
}

// New builds the floor over the belt and packing, built before it.
func New(db *pgxpool.Pool, b *belt.Service, p *packing.Service, chutes *sorting.ChuteStore, hub *Hub, reg prometheus.Registerer) *Floor {
	f := &Floor{db: db, belt: b, packing: p, chutes: chutes, hub: hub,
		sealWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "station_chute_seal_now_to_sealed_seconds",
			Help:    "Time from a bag under a chute reaching its limit (seal now, the chute full) to its seal.",
			Buckets: []float64{10, 30, 60, 120, 300, 600, 1800, 3600}}),
		views: prometheus.NewCounter(prometheus.CounterOpts{Name: "station_floor_views_total",
			Help: "Floor views read from the database (live floors woken by one change share one)."}),
		latest: map[string]sharedView{}}
	if reg != nil {
		reg.MustRegister(f.sealWait, f.views)
	}
	return f
}

// Sealed tells the floor a bag was sealed: its chute, if it hung under one,
// has no bag now, and if the bag had filled its chute, how long that took.
func (f *Floor) Sealed(ctx context.Context, station, bagID string) {
	var since time.Time
	err := f.db.QueryRow(ctx, `SELECT updated_at FROM chute_states WHERE station_id = $1 AND updated_by = 'bag:' || $2 AND is_full`,
		station, bagID).Scan(&since)
	if err == nil {
		f.sealWait.Observe(time.Since(since).Seconds())
	}
	f.hub.Changed(station)
}

// Hub is the floor's change signal.
func (f *Floor) Hub() *Hub { return f.hub }

// Bind hangs a bag under a chute of the actor's station, as one idempotent
// work order: the bag must be open and for the chute's next hop; parcels
// the sorter already put into the chute go into it; the chute is ready
// again (a full one was waiting for this new bag), or full when those
// parcels alone bring the bag to a limit.
func (f *Floor) Bind(ctx context.Context, act packing.Actor, chute int, bagID, scanID string) (workorder.Receipt[packing.ChuteBinding], error) {
	if _, err := ident.ParseScanID(scanID); err != nil {
		return workorder.Receipt[packing.ChuteBinding]{}, err
	}
	id, err := ident.ParseBagID(bagID)
	if err != nil {
		return workorder.Receipt[packing.ChuteBinding]{}, err
	}
	hop, err := f.belt.ChuteHop(ctx, act.StationID, chute)
	if err != nil {
		return workorder.Receipt[packing.ChuteBinding]{}, err
	}
	req := workorder.Request{StationID: act.StationID, ScanID: scanID, Type: packing.OpChuteBind,
		Hash:  workorder.RequestHash(packing.OpChuteBind, strconv.Itoa(chute), string(id)),
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: act.OperatorID}}
	r, err := workorder.Transact(ctx, f.db, req, func(ctx context.Context, tx *workorder.Tx) (packing.ChuteBinding, workorder.Order, error) {
		b, o, err := f.packing.BindTx(ctx, tx, act.OperatorID, chute, hop, string(id))
		if err != nil {
			return b, o, err
		}
		return b, o, f.belt.BagHungTx(ctx, tx, act.StationID, chute, "bag:"+b.BagID, b.Fill.Level == packing.FillSealNow)
	})
	if err == nil && !r.Replayed {
		f.belt.ChutesChanged(ctx, act.StationID)
	}
	return r, err
}

// Refit makes the full flag of each chute with a bag follow that bag
// against the station's limits as they are now. Raising the limits, or a
// parcel taken out of a bag, leaves a chute its bag had filled ready again
// (the belt sent its hop elsewhere for nothing); lowering them makes a
// chute whose bag is now at a limit full. A chute the machine itself
// reported full is not cleared here.
func (f *Floor) Refit(ctx context.Context, station string) error {
	bags, _, err := f.packing.ChuteBags(ctx, station)
	if err != nil {
		return err
	}
	states, err := f.belt.ChuteStates(ctx, station)
	if err != nil {
		return err
	}
	byChute := make(map[int]belt.ChuteState, len(states))
	for _, st := range states {
		byChute[st.Chute] = st
	}
	changed := false
	for _, b := range bags {
		full, st, by := b.Fill.Level == packing.FillSealNow, byChute[b.Chute], "bag:"+b.BagID
		if full == st.Full || !full && st.UpdatedBy != by {
			continue
		}
		if err := f.belt.SetFull(ctx, station, b.Chute, full, by); err != nil {
			return err
		}
		changed = true
	}
	if changed {
		f.belt.ChutesChanged(ctx, station)
	}
	return nil
}

// Unbind takes the bag down from a chute (it stays open, for a hand scan
// or another chute).
func (f *Floor) Unbind(ctx context.Context, act packing.Actor, chute int, scanID string) (workorder.Receipt[packing.ChuteBinding], error) {
	if _, err := ident.ParseScanID(scanID); err != nil {
		return workorder.Receipt[packing.ChuteBinding]{}, err
	}
	req := workorder.Request{StationID: act.StationID, ScanID: scanID, Type: packing.OpChuteUnbind,
		Hash:  workorder.RequestHash(packing.OpChuteUnbind, strconv.Itoa(chute)),
		Actor: workorder.Actor{Kind: workorder.ActorOperator, ID: act.OperatorID}}
	r, err := workorder.Transact(ctx, f.db, req, func(ctx context.Context, tx *workorder.Tx) (packing.ChuteBinding, workorder.Order, error) {
		return f.packing.UnbindTx(ctx, tx, chute)
	})
	if err == nil && !r.Replayed {
		f.hub.Changed(act.StationID)
	}
	return r, err
}

// SetDisabled takes a chute out of use, or back.
func (f *Floor) SetDisabled(ctx context.Context, act packing.Actor, chute int, disabled bool) error {
	return f.belt.SetDisabled(ctx, act.StationID, chute, disabled, act.OperatorID)
}

// ChuteStatus is what the floor shows for a chute.
type ChuteStatus string

// Chute statuses, most urgent first.
const (
	StatusDisabled ChuteStatus = "disabled"
	StatusFull     ChuteStatus = "full"      // the machine reported it, or its bag is at a limit
	StatusSealNow  ChuteStatus = "seal_now"  // its bag is at a limit (the chute counts as full)
	StatusSealSoon ChuteStatus = "seal_soon" // its bag is near a limit
	StatusNoBag    ChuteStatus = "no_bag"
	StatusReady    ChuteStatus = "ready"
)

// Chute is one chute of the floor.
type Chute struct {
	Chute    int                   `json:"chute"`
	Kind     sorting.ChuteKind     `json:"kind"`
	NextHop  string                `json:"next_hop,omitempty"`
	Status   ChuteStatus           `json:"status"`
	Bag      *packing.ChuteBag     `json:"bag,omitempty"`
	Waiting  []Waiting             `json:"waiting"` // sorted into it, in no bag
	State    *belt.ChuteState      `json:"state,omitempty"`
	Unbagged []packing.ChuteParcel `json:"-"`
}

// Waiting is a parcel the sorter put into a chute that no bag took, and
// why: no_bag, wrong_next_hop (the bag under the chute is for another hop),
// or not_added (a bag hangs there but took it not: it was at the chute
// before the bag, or a rule refused it; binding again shows the reason).
type Waiting struct {
	workorder.Parcel
	Reason string `json:"reason"`
}

// View is a station's whole floor.
type View struct {
	StationID string                    `json:"station_id"`
	At        time.Time                 `json:"at"`
	Limits    packing.BagLimits         `json:"limits"`
	Chutes    []Chute                   `json:"chutes"`
	OpenBags  []packing.Bag             `json:"open_bags"`
	Sealed    []packing.Bag             `json:"sealed_bags"`
	Handovers []packing.HandoverSummary `json:"open_handovers"`
	PutAside  []workorder.Parcel        `json:"put_aside"`
}

// maxListed bounds each list of the view; a floor shows what a person can
// act on.
const maxListed = 200

// Live is the station's view for a live floor woken by a change: a view
// read after every change this instance has heard of when Live was called.
// Twenty supervisors watching one floor cost one read per change, not
// twenty. The read is detached from the caller, whom the others may be
// waiting on, and bounded on its own.
func (f *Floor) Live(ctx context.Context, station string) (View, error) {
	want := f.hub.Generation(station)
	for {
		f.mu.Lock()
		s, ok := f.latest[station]
		f.mu.Unlock()
		if ok && s.gen >= want {
			return s.view, nil
		}
		ch := f.flights.DoChan(station, func() (any, error) {
			gen := f.hub.Generation(station) // before the reads: they see at least this
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			v, err := f.View(rctx, station)
			if err != nil {
				return nil, err
			}
			f.mu.Lock()
			if cur, ok := f.latest[station]; !ok || cur.gen <= gen {
				f.latest[station] = sharedView{gen: gen, view: v}
			}
			f.mu.Unlock()
			return nil, nil
		})
		select {
		case <-ctx.Done():
			return View{}, ctx.Err()
		case r := <-ch:
			if r.Err != nil {
				return View{}, r.Err
			}
		}
		// The flight joined may have started before the change that woke
		// this caller; the loop reads again if so.
	}
}

// View reads a station's floor.
func (f *Floor) View(ctx context.Context, station string) (View, error) {
	f.views.Inc()
	m, err := f.chutes.Get(ctx, station)
	if err != nil {
		return View{}, err
	}
	v := View{StationID: station, At: time.Now().UTC()}
	bags, limits, err := f.packing.ChuteBags(ctx, station)
	if err != nil {
		return View{}, err
	}
	v.Limits = limits
	states, err := f.belt.ChuteStates(ctx, station)
	if err != nil {
		return View{}, err
	}
	waiting, err := workorder.Unbagged(ctx, f.db, station, 5000)
	if err != nil {
		return View{}, err
	}
	byChute := map[int]*Chute{}
	add := func(c int, kind sorting.ChuteKind, hop string) {
		if c > 0 && byChute[c] == nil {
			byChute[c] = &Chute{Chute: c, Kind: kind, NextHop: hop, Waiting: []Waiting{}}
		}
	}
	for hop, cs := range m.NextHops {
		for _, c := range cs {
			add(c, sorting.ChuteNextHop, hop)
		}
	}
	add(m.ExceptionChute, sorting.ChuteException, "")
	add(m.OverflowChute, sorting.ChuteOverflow, "")
	add(m.RejectChute, sorting.ChuteReject, "")
	for i := range bags {
		if c := byChute[bags[i].Chute]; c != nil {
			c.Bag = &bags[i]
		}
	}
	for i := range states {
		if c := byChute[states[i].Chute]; c != nil {
			c.State = &states[i]
		}
	}
	for _, p := range waiting {
		if c := byChute[p.Chute]; c != nil && len(c.Waiting) < maxListed {
			reason := "not_added"
			switch {
			case c.Bag == nil:
				reason = "no_bag"
			case c.Bag.NextHop != p.NextHop:
				reason = "wrong_next_hop"
			}
			c.Waiting = append(c.Waiting, Waiting{Parcel: p, Reason: reason})
		}
	}
	for _, c := range byChute {
		c.Status = statusOf(c)
		v.Chutes = append(v.Chutes, *c)
	}
	slices.SortFunc(v.Chutes, func(a, b Chute) int { return a.Chute - b.Chute })
	if v.OpenBags, err = f.packing.Bags(ctx, station, packing.BagOpen); err != nil {
		return View{}, err
	}
	if v.Sealed, err = f.packing.Bags(ctx, station, packing.BagSealed); err != nil {
		return View{}, err
	}
	if v.Handovers, err = f.packing.Handovers(ctx, station, packing.HandoverOpen); err != nil {
		return View{}, err
	}
	if v.PutAside, err = workorder.PutAside(ctx, f.db, station, maxListed); err != nil {
		return View{}, err
	}
	return v, nil
}

func statusOf(c *Chute) ChuteStatus {
	switch {
	case c.State != nil && c.State.Disabled:
		return StatusDisabled
	case c.Bag != nil && c.Bag.Fill.Level == packing.FillSealNow:
		return StatusSealNow
	case c.State != nil && c.State.Full:
		return StatusFull
	case c.Kind != sorting.ChuteNextHop:
		return StatusReady
	case c.Bag == nil:
		return StatusNoBag
	case c.Bag.Fill.Level == packing.FillSealSoon:
		return StatusSealSoon
	}
	return StatusReady
}

// Bags adapts packing's bags under chutes to the belt's Confirm.
type Bags struct{ Packing *packing.Service }

// AddAtChute implements belt.Bags.
func (b Bags) AddAtChute(ctx context.Context, tx *workorder.Tx, confirmScanID string, actor workorder.Actor, chute int, p workorder.Parcel) (belt.ChuteBag, *workorder.Order, error) {
	add, also, err := b.Packing.AddAtChuteTx(ctx, tx, confirmScanID, actor, chute, p)
	if err != nil {
		return belt.ChuteBag{}, nil, fmt.Errorf("floor: bag at chute %d: %w", chute, err)
	}
	return belt.ChuteBag{BagID: add.BagID, Added: add.Added, Reason: add.Reason, Level: string(add.Fill.Level),
		Parcels: add.Fill.Parcels, Grams: add.Fill.Grams, Ratio: add.Fill.Ratio, Full: add.Fill.Level == packing.FillSealNow}, also, nil
}
