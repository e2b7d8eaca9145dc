package packing

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/expresshub/station/workorder"
)

// BagStatus is where a bag is in its life.
type BagStatus string

// Bag statuses: open takes parcels; sealed is immutable and waits for a
// handover; departed left on a closed handover.
const (
	BagOpen     BagStatus = "open"
	BagSealed   BagStatus = "sealed"
	BagDeparted BagStatus = "departed"
)

// Valid reports whether s is a known status.
func (s BagStatus) Valid() bool { return s == BagOpen || s == BagSealed || s == BagDeparted }

// Bag is one bag of a station, for one next hop. Its methods enforce its
// rules; the store only persists what they allowed.
type Bag struct {
	ID        string    `json:"bag_id"`
	StationID string    `json:"station_id"`
	NextHop   string    `json:"next_hop"`
	Status    BagStatus `json:"status"`
	ItemCount int       `json:"item_count"`
	Items     []string  `json:"items,omitempty"`    // tracking numbers in the order added; empty in lists
	WeightG   int       `json:"weight_g,omitempty"` // sealed: the gross weight weighed
	// ContentsG is what its parcels weigh by their waybills (0 where a
	// parcel's weight was not known).
	ContentsG int        `json:"contents_g"`
	OpenedBy  string     `json:"opened_by"`
	OpenedAt  time.Time  `json:"opened_at"`
	SealedBy  string     `json:"sealed_by,omitempty"`
	SealedAt  *time.Time `json:"sealed_at,omitempty"`
	// WorkOrderID names the work order of the write that returned this bag.
	WorkOrderID string `json:"work_order_id,omitempty"`
}

// Parcel is what Bag.Add needs to know about a parcel.
type Parcel struct {
	TrackingNo string
	State      workorder.Parcel // its state at the bag's station
	// InBagElsewhere: a bag of another station holds it (its id stays there).
	InBagElsewhere bool
}

// alreadyBagged is the refusal for a parcel some bag holds; it names the bag
// only when the bag is this station's.
func (p Parcel) alreadyBagged() error {
	if p.State.BagID == "" {
		return refuse(ErrAlreadyBagged, map[string]any{"tracking_no": p.TrackingNo},
			"parcel %s is already in a bag of another station", p.TrackingNo)
	}
	return refuse(ErrAlreadyBagged, map[string]any{"tracking_no": p.TrackingNo, "bag_id": p.State.BagID},
		"parcel %s is already in bag %s", p.TrackingNo, p.State.BagID)
}

// errAlreadyInThisBag is a repeat, not a refusal: the parcel is in the bag
// it was scanned into.
var errAlreadyInThisBag = errors.New("parcel is already in this bag")

// Add puts a parcel in the bag: only while open, only a parcel sorted at
// this station to the bag's next hop, and only one that is in no bag. A
// parcel already in this bag is errAlreadyInThisBag.
func (b *Bag) Add(p Parcel) error {
	if b.Status != BagOpen {
		return refuse(ErrBagSealed, map[string]any{"bag_id": b.ID, "status": b.Status},
			"bag %s is %s and takes no parcels", b.ID, b.Status)
	}
	switch st := p.State.State; {
	case st == workorder.StateBagged && p.State.BagID == b.ID:
		return errAlreadyInThisBag
	case p.InBagElsewhere, st == workorder.StateBagged, st == workorder.StateSealed:
		return p.alreadyBagged()
	}
	if err := workorder.Check(workorder.OpBagAdd, p.State); err != nil {
		return err
	}
	if p.State.NextHop != b.NextHop {
		return refuse(ErrWrongNextHop, map[string]any{"tracking_no": p.TrackingNo, "parcel_next_hop": p.State.NextHop, "bag_next_hop": b.NextHop},
			"parcel %s goes to %s, bag %s to %s", p.TrackingNo, p.State.NextHop, b.ID, b.NextHop)
	}
	b.Items = append(b.Items, p.TrackingNo)
	b.ItemCount++
	return nil
}

// Remove takes a parcel out of the bag while it is open.
func (b *Bag) Remove(trackingNo string) error {
	if b.Status != BagOpen {
		return refuse(ErrBagSealed, map[string]any{"bag_id": b.ID, "status": b.Status},
			"bag %s is %s; its parcels cannot be removed", b.ID, b.Status)
	}
	i := slices.Index(b.Items, trackingNo)
	if i < 0 {
		return refuse(ErrNotInBag, map[string]any{"tracking_no": trackingNo, "bag_id": b.ID},
			"parcel %s is not in bag %s", trackingNo, b.ID)
	}
	b.Items = slices.Delete(b.Items, i, i+1)
	b.ItemCount--
	return nil
}

// WeightLimits bound a sealed bag's gross weight in grams.
type WeightLimits struct {
	MinG, MaxG int
}

// DefaultWeightLimits: an empty bag weighs some grams, and 50 kg is what
// one person may lift by the usual handling rules.
var DefaultWeightLimits = WeightLimits{MinG: 10, MaxG: 50_000}

// CheckWeight reports whether weightG is within the limits.
func (l WeightLimits) CheckWeight(weightG int) error {
	if weightG < l.MinG || weightG > l.MaxG {
		return refuse(ErrWeightOutOfBounds, map[string]any{"weight_g": weightG, "min_g": l.MinG, "max_g": l.MaxG},
			"weight %d g is outside %d..%d g", weightG, l.MinG, l.MaxG)
	}
	return nil
}

// Seal closes the bag for good with its weight: never an empty bag, never
// twice.
func (b *Bag) Seal(weightG int, limits WeightLimits, by string, at time.Time) error {
	if err := limits.CheckWeight(weightG); err != nil {
		return err
	}
	if b.Status != BagOpen {
		return refuse(ErrBagSealed, map[string]any{"bag_id": b.ID, "status": b.Status},
			"bag %s is already %s", b.ID, b.Status)
	}
	if b.ItemCount == 0 {
		return refuse(ErrBagEmpty, map[string]any{"bag_id": b.ID}, "bag %s is empty and cannot be sealed", b.ID)
	}
	b.Status, b.WeightG, b.SealedBy, b.SealedAt = BagSealed, weightG, by, &at
	return nil
}

// ItemChange is the answer to adding or removing a parcel.
type ItemChange struct {
	WorkOrderID string    `json:"work_order_id"`
	BagID       string    `json:"bag_id"`
	TrackingNo  string    `json:"tracking_no"`
	Action      string    `json:"action"` // "added", "removed" or "already_in_this_bag" (a repeat: nothing recorded)
	NextHop     string    `json:"next_hop"`
	ItemCount   int       `json:"item_count"`
	At          time.Time `json:"at"`
}

func (b *Bag) String() string { return fmt.Sprintf("bag %s (%s, %s)", b.ID, b.NextHop, b.Status) }
