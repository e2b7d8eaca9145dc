package packing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/workorder"
)

// Refusals of chute binding.
var (
	ErrChuteHasBag   = fault.New(fault.Conflict, "chute_has_bag", "another bag hangs under this chute; seal or unbind it first")
	ErrBagAtChute    = fault.New(fault.Conflict, "bag_at_other_chute", "the bag hangs under another chute")
	ErrNoBagAtChute  = fault.New(fault.NotFound, "no_bag_at_chute", "no bag hangs under this chute")
	ErrInvalidLimits = fault.New(fault.Invalid, "invalid_bag_limits", "bag limits must be positive")
)

// BagLimits are what a bag under a chute may hold before it must be
// sealed, and the share of either at which the floor says "seal soon".
type BagLimits struct {
	MaxParcels int     `json:"max_parcels"`
	MaxGrams   int     `json:"max_grams"`
	SealSoon   float64 `json:"seal_soon"` // e.g. 0.9
}

// DefaultBagLimits: a sack of 60 small parcels, or what one person may
// lift.
var DefaultBagLimits = BagLimits{MaxParcels: 60, MaxGrams: 25_000, SealSoon: 0.9}

// FillLevel is what the floor asks of a chute's bag.
type FillLevel string

// Fill levels.
const (
	FillOK       FillLevel = "ok"
	FillSealSoon FillLevel = "seal_soon"
	FillSealNow  FillLevel = "seal_now" // at a limit: the chute counts as full
)

// Fill is how full a bag is against the station's limits.
type Fill struct {
	Parcels    int       `json:"parcels"`
	MaxParcels int       `json:"max_parcels"`
	Grams      int       `json:"grams"`
	MaxGrams   int       `json:"max_grams"`
	Ratio      float64   `json:"ratio"` // the fuller of the two, 0..1+
	Level      FillLevel `json:"level"`
}

// FillOf rates a bag's contents against limits.
func FillOf(parcels, grams int, l BagLimits) Fill {
	f := Fill{Parcels: parcels, MaxParcels: l.MaxParcels, Grams: grams, MaxGrams: l.MaxGrams, Level: FillOK}
	f.Ratio = max(float64(parcels)/float64(max(l.MaxParcels, 1)), float64(grams)/float64(max(l.MaxGrams, 1)))
	switch {
	case parcels >= l.MaxParcels || grams >= l.MaxGrams:
		f.Level = FillSealNow
	case f.Ratio >= l.SealSoon:
		f.Level = FillSealSoon
	}
	return f
}

// ChuteParcel is a parcel at a chute that is in no bag, and why.
type ChuteParcel struct {
	TrackingNo string `json:"tracking_no"`
	NextHop    string `json:"next_hop,omitempty"`
	Reason     string `json:"reason"` // no_bag, wrong_next_hop, already_bagged, ...
}

// ChuteBinding is the answer to binding a bag to a chute.
type ChuteBinding struct {
	WorkOrderID string        `json:"work_order_id"`
	StationID   string        `json:"station_id"`
	Chute       int           `json:"chute"`
	BagID       string        `json:"bag_id"`
	NextHop     string        `json:"next_hop"`
	Bound       bool          `json:"bound"` // false once unbound
	Added       []string      `json:"added"` // parcels waiting at the chute that went into the bag
	Left        []ChuteParcel `json:"left"`  // parcels at the chute that could not, with the reason
	Fill        Fill          `json:"fill"`
	At          time.Time     `json:"at"`
}

// ChuteAdd is what happened to a parcel the sorter put into a chute.
type ChuteAdd struct {
	BagID  string `json:"bag_id,omitempty"`
	Added  bool   `json:"added"`
	Reason string `json:"reason,omitempty"` // why not: no_bag, wrong_next_hop, ...
	Fill   Fill   `json:"fill"`
}

// Limits are the station's bag limits.
func (s *Service) Limits(ctx context.Context, q querier, stationID string) (BagLimits, error) {
	l := s.bagLimits
	err := q.QueryRow(ctx, `SELECT max_parcels, max_grams FROM bag_limits WHERE station_id = $1`, stationID).
		Scan(&l.MaxParcels, &l.MaxGrams)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return BagLimits{}, fmt.Errorf("packing: bag limits of %s: %w", stationID, err)
	}
	return l, nil
}

// SetLimits sets a station's bag limits.
func (s *Service) SetLimits(ctx context.Context, act Actor, l BagLimits) (BagLimits, error) {
	if l.MaxParcels <= 0 || l.MaxGrams <= 0 || l.MaxParcels > 100_000 || l.MaxGrams > 1_000_000 {
		return BagLimits{}, ErrInvalidLimits.With(map[string]any{"max_parcels": l.MaxParcels, "max_grams": l.MaxGrams},
			"bag limits must be 1..100000 parcels and 1..1000000 g")
	}
	_, err := s.db.Exec(ctx, `INSERT INTO bag_limits (station_id, max_parcels, max_grams, updated_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (station_id) DO UPDATE SET max_parcels = $2, max_grams = $3, updated_by = $4, updated_at = now()`,
		act.StationID, l.MaxParcels, l.MaxGrams, act.OperatorID)
	if err != nil {
		return BagLimits{}, fmt.Errorf("packing: set bag limits: %w", err)
	}
	l.SealSoon = s.bagLimits.SealSoon
	return l, nil
}

// BindTx hangs bag bagID under chute, whose next hop on the chute map is
// hop, inside the caller's work order: the bag must be open, for that next
// hop, and at no other chute; the chute must have no other bag. Parcels the
// sorter already put into the chute go into the bag now, unless the bag's
// rules refuse one (it stays at the chute with the reason). A bind of the
// bag already there is a repeat (Bound, nothing added).
func (s *Service) BindTx(ctx context.Context, tx *workorder.Tx, operator string, chute int, hop, bagID string) (ChuteBinding, workorder.Order, error) {
	b, err := lockBag(ctx, tx, tx.StationID, bagID, false)
	if err != nil {
		return ChuteBinding{}, workorder.Order{}, err
	}
	res := ChuteBinding{WorkOrderID: tx.ID.String(), StationID: tx.StationID, Chute: chute, BagID: b.ID, NextHop: b.NextHop,
		Bound: true, Added: []string{}, Left: []ChuteParcel{}, At: tx.Now.UTC()}
	if b.Status != BagOpen {
		return ChuteBinding{}, workorder.Order{}, ErrBagSealed.With(map[string]any{"bag_id": b.ID, "status": b.Status},
			"bag %s is %s and cannot hang under a chute", b.ID, b.Status)
	}
	if b.NextHop != hop {
		return ChuteBinding{}, workorder.Order{}, ErrWrongNextHop.With(map[string]any{"bag_id": b.ID, "bag_next_hop": b.NextHop, "chute": chute, "chute_next_hop": hop},
			"bag %s is for %s, chute %d for %s", b.ID, b.NextHop, chute, hop)
	}
	var there string
	var at int
	err = tx.QueryRow(ctx, `SELECT coalesce((SELECT bag_id FROM chute_bags WHERE station_id = $1 AND chute = $2), ''),
		coalesce((SELECT chute FROM chute_bags WHERE bag_id = $3), 0)`, tx.StationID, chute, b.ID).Scan(&there, &at)
	if err != nil {
		return ChuteBinding{}, workorder.Order{}, fmt.Errorf("packing: chute %d: %w", chute, err)
	}
	switch {
	case there == b.ID:
		// Nothing is written: no work order to name, and the fill is the
		// bag's as it hangs, so the floor is not told it is empty.
		l, err := s.Limits(ctx, tx, tx.StationID)
		if err != nil {
			return ChuteBinding{}, workorder.Order{}, err
		}
		res.WorkOrderID, res.Fill = "", FillOf(b.ItemCount, b.ContentsG, l)
		return ChuteBinding{}, workorder.Order{}, &workorder.Repeat[ChuteBinding]{Value: res}
	case there != "":
		return ChuteBinding{}, workorder.Order{}, ErrChuteHasBag.With(map[string]any{"chute": chute, "bag_id": there},
			"bag %s hangs under chute %d; seal or unbind it first", there, chute)
	case at != 0:
		return ChuteBinding{}, workorder.Order{}, ErrBagAtChute.With(map[string]any{"chute": at, "bag_id": b.ID},
			"bag %s hangs under chute %d", b.ID, at)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO chute_bags (station_id, chute, bag_id, bound_by, bound_at) VALUES ($1, $2, $3, $4, $5)`,
		tx.StationID, chute, b.ID, operator, tx.Now.UTC()); err != nil {
		return ChuteBinding{}, workorder.Order{}, fmt.Errorf("packing: bind chute %d: %w", chute, err)
	}
	waiting, err := tx.ParcelsAtChute(ctx, chute)
	if err != nil {
		return ChuteBinding{}, workorder.Order{}, err
	}
	order := workorder.Order{Type: OpChuteBind, SubjectID: b.ID}
	for _, p := range waiting {
		if err := b.Add(Parcel{TrackingNo: p.TrackingNo, State: p}); err != nil {
			res.Left = append(res.Left, ChuteParcel{TrackingNo: p.TrackingNo, NextHop: p.NextHop, Reason: reasonOf(err)})
			continue
		}
		grams, err := s.putItem(ctx, tx, b, p.TrackingNo, operator, p.WeightG)
		if err != nil {
			return ChuteBinding{}, workorder.Order{}, err
		}
		b.ContentsG += grams
		res.Added = append(res.Added, p.TrackingNo)
		order.Events = append(order.Events, baggedEvent(b, p.TrackingNo, tx.Now, chute))
		order.Moves = append(order.Moves, workorder.Move{Op: workorder.OpBagAdd, TrackingNo: p.TrackingNo, To: workorder.StateBagged,
			NextHop: p.NextHop, Chute: p.Chute, BagID: b.ID, WeightG: p.WeightG})
	}
	if err := setContents(ctx, tx, b); err != nil {
		return ChuteBinding{}, workorder.Order{}, err
	}
	l, err := s.Limits(ctx, tx, tx.StationID)
	if err != nil {
		return ChuteBinding{}, workorder.Order{}, err
	}
	res.Fill = FillOf(b.ItemCount, b.ContentsG, l)
	return res, order, nil
}

// UnbindTx takes the bag down from chute inside the caller's work order.
func (s *Service) UnbindTx(ctx context.Context, tx *workorder.Tx, chute int) (ChuteBinding, workorder.Order, error) {
	var bagID string
	err := tx.QueryRow(ctx, `DELETE FROM chute_bags WHERE station_id = $1 AND chute = $2 RETURNING bag_id`, tx.StationID, chute).Scan(&bagID)
	if errors.Is(err, pgx.ErrNoRows) {
		return ChuteBinding{}, workorder.Order{}, ErrNoBagAtChute.With(map[string]any{"chute": chute}, "no bag hangs under chute %d", chute)
	}
	if err != nil {
		return ChuteBinding{}, workorder.Order{}, fmt.Errorf("packing: unbind chute %d: %w", chute, err)
	}
	b, err := lockBag(ctx, tx, tx.StationID, bagID, false)
	if err != nil {
		return ChuteBinding{}, workorder.Order{}, err
	}
	l, err := s.Limits(ctx, tx, tx.StationID)
	if err != nil {
		return ChuteBinding{}, workorder.Order{}, err
	}
	return ChuteBinding{WorkOrderID: tx.ID.String(), StationID: tx.StationID, Chute: chute, BagID: b.ID, NextHop: b.NextHop,
			Added: []string{}, Left: []ChuteParcel{}, Fill: FillOf(b.ItemCount, b.ContentsG, l), At: tx.Now.UTC()},
		workorder.Order{Type: OpChuteUnbind, SubjectID: b.ID}, nil
}

// AddAtChuteTx puts a parcel the sorter confirmed into chute into the bag
// hanging there, inside the confirm's transaction. p is the parcel as the
// confirm leaves it (sorted into the chute, or still in its bag). It never
// forces a parcel in: without a bag, or when the bag's rules refuse it,
// Added is false and Reason says why, and the parcel stays at the chute.
// When it is added, also is the bag add's own work order (its scan id
// derives from the confirm's) to record with the confirm.
func (s *Service) AddAtChuteTx(ctx context.Context, tx *workorder.Tx, confirmScanID string, actor workorder.Actor, chute int, p workorder.Parcel) (ChuteAdd, *workorder.Order, error) {
	// Two round trips on the belt's confirm: the bag under the chute, locked,
	// with the station's limits; then the insert and the bag's counts.
	l := s.bagLimits
	rows, err := tx.Query(ctx, `SELECT b.id, b.station_id, b.next_hop, b.status, b.item_count, coalesce(b.weight_g, 0), b.contents_g,
		       b.opened_by, b.opened_at, coalesce(b.sealed_by, ''), b.sealed_at, coalesce(l.max_parcels, $3), coalesce(l.max_grams, $4)
		FROM chute_bags c JOIN bags b ON b.id = c.bag_id LEFT JOIN bag_limits l ON l.station_id = c.station_id
		WHERE c.station_id = $1 AND c.chute = $2 FOR UPDATE OF b`, tx.StationID, chute, l.MaxParcels, l.MaxGrams)
	if err != nil {
		return ChuteAdd{}, nil, fmt.Errorf("packing: bag at chute %d: %w", chute, err)
	}
	b, err := pgx.CollectExactlyOneRow(rows, func(row pgx.CollectableRow) (Bag, error) {
		var b Bag
		err := row.Scan(&b.ID, &b.StationID, &b.NextHop, &b.Status, &b.ItemCount, &b.WeightG, &b.ContentsG,
			&b.OpenedBy, &b.OpenedAt, &b.SealedBy, &b.SealedAt, &l.MaxParcels, &l.MaxGrams)
		return b, err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return ChuteAdd{Reason: "no_bag"}, nil, nil
	}
	if err != nil {
		return ChuteAdd{}, nil, fmt.Errorf("packing: bag at chute %d: %w", chute, err)
	}
	add := ChuteAdd{BagID: b.ID}
	if err := b.Add(Parcel{TrackingNo: p.TrackingNo, State: p}); err != nil {
		add.Reason = reasonOf(err)
		add.Fill = FillOf(b.ItemCount, b.ContentsG, l)
		return add, nil, nil
	}
	// The partial unique index is the last word: a parcel another
	// station's bag still holds inserts nothing and stays at the chute.
	var added bool
	err = tx.QueryRow(ctx, `WITH ins AS (
			INSERT INTO bag_items (bag_id, tracking_no, station_id, added_by, added_at, weight_g) VALUES ($1, $2, $3, $4, $5, $6)
			ON CONFLICT (tracking_no) WHERE NOT departed DO NOTHING RETURNING weight_g)
		UPDATE bags SET item_count = item_count + (SELECT count(*) FROM ins),
		                contents_g = contents_g + coalesce((SELECT sum(weight_g) FROM ins), 0)
		 WHERE id = $1 RETURNING item_count, contents_g, EXISTS (SELECT 1 FROM ins)`,
		b.ID, p.TrackingNo, tx.StationID, actor.ID, tx.Now.UTC(), max(p.WeightG, 0)).Scan(&b.ItemCount, &b.ContentsG, &added)
	if err != nil {
		return ChuteAdd{}, nil, fmt.Errorf("packing: bag at chute %d: %w", chute, err)
	}
	if !added {
		add.Reason, add.Fill = ErrAlreadyBagged.Code, FillOf(b.ItemCount, b.ContentsG, l)
		return add, nil, nil
	}
	add.Added, add.Fill = true, FillOf(b.ItemCount, b.ContentsG, l)
	ch := ItemChange{BagID: b.ID, TrackingNo: p.TrackingNo, Action: "added",
		NextHop: b.NextHop, ItemCount: b.ItemCount, At: tx.Now.UTC()}
	id := workorder.NewID()
	ch.WorkOrderID = id.String()
	body, err := json.Marshal(ch)
	if err != nil {
		return ChuteAdd{}, nil, err
	}
	also := &workorder.Order{ID: id, StationID: tx.StationID, Type: OpBagAdd, TrackingNo: p.TrackingNo, SubjectID: b.ID,
		Actor: actor, ScanID: confirmScanID + "/bag", RequestHash: workorder.RequestHash(OpBagAdd, b.ID, p.TrackingNo, "chute", strconv.Itoa(chute)),
		Outcome: "ok", Response: body,
		Events: []workorder.Event{baggedEvent(&b, p.TrackingNo, tx.Now, chute)},
		Moves: []workorder.Move{{Op: workorder.OpBagAdd, TrackingNo: p.TrackingNo, To: workorder.StateBagged,
			NextHop: p.NextHop, Chute: chute, BagID: b.ID, WeightG: p.WeightG}}}
	return add, also, nil
}

// putItem inserts a parcel into a locked open bag and counts it; the
// partial unique index is the last word across instances.
func (s *Service) putItem(ctx context.Context, tx *workorder.Tx, b *Bag, trackingNo, by string, weightG int) (int, error) {
	tag, err := tx.Exec(ctx,
		`INSERT INTO bag_items (bag_id, tracking_no, station_id, added_by, added_at, weight_g) VALUES ($1, $2, $3, $4, $5, $6)
		 ON CONFLICT (tracking_no) WHERE NOT departed DO NOTHING`,
		b.ID, trackingNo, tx.StationID, by, tx.Now.UTC(), max(weightG, 0))
	if err != nil {
		return 0, fmt.Errorf("packing: insert item: %w", err)
	}
	if tag.RowsAffected() == 0 {
		other, elsewhere, err := holder(ctx, tx, tx.StationID, trackingNo)
		if err != nil {
			return 0, err
		}
		p := Parcel{TrackingNo: trackingNo, InBagElsewhere: elsewhere}
		p.State.BagID = other
		return 0, p.alreadyBagged()
	}
	if !containsItem(b.Items, trackingNo) {
		b.Items = append(b.Items, trackingNo)
		b.ItemCount++
	}
	return max(weightG, 0), nil
}

func containsItem(items []string, tn string) bool {
	for _, it := range items {
		if it == tn {
			return true
		}
	}
	return false
}

func setContents(ctx context.Context, tx *workorder.Tx, b *Bag) error {
	if _, err := tx.Exec(ctx, `UPDATE bags SET item_count = $2, contents_g = $3 WHERE id = $1`, b.ID, b.ItemCount, b.ContentsG); err != nil {
		return fmt.Errorf("packing: bag contents: %w", err)
	}
	return nil
}

func baggedEvent(b *Bag, trackingNo string, at time.Time, chute int) workorder.Event {
	return workorder.Event{TrackingNo: trackingNo, Type: workorder.EventBagged, OccurredAt: at,
		Payload: map[string]any{"bag_id": b.ID, "next_hop": b.NextHop, "chute": chute}}
}

// reasonOf is the stable code of a bag's refusal, for a parcel left at a
// chute.
func reasonOf(err error) string {
	if f, ok := fault.As(err); ok {
		return f.Code
	}
	return "refused"
}

// ChuteBag is a bag hanging under a chute, with its fill.
type ChuteBag struct {
	Chute   int       `json:"chute"`
	BagID   string    `json:"bag_id"`
	NextHop string    `json:"next_hop"`
	BoundBy string    `json:"bound_by"`
	BoundAt time.Time `json:"bound_at"`
	Fill    Fill      `json:"fill"`
}

// ChuteBags are the bags hanging under a station's chutes.
func (s *Service) ChuteBags(ctx context.Context, stationID string) ([]ChuteBag, BagLimits, error) {
	l, err := s.Limits(ctx, s.db, stationID)
	if err != nil {
		return nil, BagLimits{}, err
	}
	rows, err := s.db.Query(ctx, `SELECT c.chute, c.bag_id, b.next_hop, c.bound_by, c.bound_at, b.item_count, b.contents_g
		FROM chute_bags c JOIN bags b ON b.id = c.bag_id WHERE c.station_id = $1 ORDER BY c.chute`, stationID)
	if err != nil {
		return nil, BagLimits{}, fmt.Errorf("packing: chute bags: %w", err)
	}
	bags, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ChuteBag, error) {
		var c ChuteBag
		var n, g int
		err := row.Scan(&c.Chute, &c.BagID, &c.NextHop, &c.BoundBy, &c.BoundAt, &n, &g)
		c.BoundAt, c.Fill = c.BoundAt.UTC(), FillOf(n, g, l)
		return c, err
	})
	if err != nil {
		return nil, BagLimits{}, fmt.Errorf("packing: chute bags: %w", err)
	}
	return bags, l, nil
}
