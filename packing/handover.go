package packing

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/workorder"
)

// Work order types of handover operations.
const (
	OpHandoverOpen  = "handover_open"
	OpHandoverAdd   = "handover_add"
	OpHandoverClose = "handover_close"
)

// HandoverType is who carries the bags away.
type HandoverType string

// Handover types.
const (
	HandoverLinehaul   HandoverType = "linehaul"   // a truck trip of the linehaul service
	HandoverLastMile   HandoverType = "lastmile"   // a last-mile rider
	HandoverThirdParty HandoverType = "thirdparty" // a partner carrier
)

// HandoverStatus: open takes bags; closed has departed.
type HandoverStatus string

// Handover statuses.
const (
	HandoverOpen   HandoverStatus = "open"
	HandoverClosed HandoverStatus = "closed"
)

// HandoverRequest names the departure: exactly the field of its type.
type HandoverRequest struct {
	Type    HandoverType
	TripID  string // linehaul
	RiderID string // lastmile
	Carrier string // thirdparty
}

// ref validates the request and returns the one reference of its type.
func (r HandoverRequest) ref() (string, error) {
	set := map[string]string{}
	for k, v := range map[string]string{"trip_id": r.TripID, "rider_id": r.RiderID, "carrier": r.Carrier} {
		if v = strings.TrimSpace(v); v != "" {
			set[k] = v
		}
	}
	want := map[HandoverType]string{HandoverLinehaul: "trip_id", HandoverLastMile: "rider_id", HandoverThirdParty: "carrier"}[r.Type]
	if want == "" {
		return "", refuse(ErrInvalidHandover, map[string]any{"type": r.Type}, "type must be linehaul, lastmile or thirdparty")
	}
	ref, ok := set[want]
	if !ok || len(set) != 1 {
		return "", refuse(ErrInvalidHandover, map[string]any{"type": r.Type, "want": want},
			"a %s handover names exactly its %s", r.Type, want)
	}
	if len(ref) > 64 {
		return "", refuse(ErrInvalidHandover, map[string]any{want: clip(ref)}, "%s is longer than 64 characters", want)
	}
	return ref, nil
}

// HandoverBag is one bag on a handover.
type HandoverBag struct {
	BagID     string    `json:"bag_id"`
	NextHop   string    `json:"next_hop"`
	ItemCount int       `json:"item_count"`
	WeightG   int       `json:"weight_g"`
	AddedAt   time.Time `json:"added_at"`
}

// Handover loads sealed bags onto one departure.
type Handover struct {
	ID          string         `json:"handover_id"`
	StationID   string         `json:"station_id"`
	Type        HandoverType   `json:"type"`
	TripID      string         `json:"trip_id,omitempty"`
	RiderID     string         `json:"rider_id,omitempty"`
	Carrier     string         `json:"carrier,omitempty"`
	TripStops   []string       `json:"trip_stops,omitempty"`
	Status      HandoverStatus `json:"status"`
	Bags        []HandoverBag  `json:"bags"`
	BagCount    int            `json:"bag_count"`
	ParcelCount int            `json:"parcel_count"`
	WeightG     int            `json:"weight_g"`
	CreatedBy   string         `json:"created_by"`
	CreatedAt   time.Time      `json:"created_at"`
	ClosedBy    string         `json:"closed_by,omitempty"`
	ClosedAt    *time.Time     `json:"closed_at,omitempty"`
	WorkOrderID string         `json:"work_order_id,omitempty"`
}

// Ref is the trip id, rider id or carrier, whichever the type uses.
func (h *Handover) Ref() string {
	switch h.Type {
	case HandoverLinehaul:
		return h.TripID
	case HandoverLastMile:
		return h.RiderID
	}
	return h.Carrier
}

func (h *Handover) setRef(ref string) {
	switch h.Type {
	case HandoverLinehaul:
		h.TripID = ref
	case HandoverLastMile:
		h.RiderID = ref
	default:
		h.Carrier = ref
	}
}

// AddBag loads a bag: only onto an open handover, only a sealed bag of the
// same station that is on no handover yet, and for a linehaul trip only a
// bag whose next hop is a stop of the trip. onHandover is the handover the
// bag is already on, if any.
func (h *Handover) AddBag(b Bag, onHandover string, at time.Time) error {
	if h.Status != HandoverOpen {
		return refuse(ErrHandoverClosed, map[string]any{"handover_id": h.ID}, "handover %s is closed", h.ID)
	}
	if b.StationID != h.StationID {
		return fmt.Errorf("packing: bag %s: %w", b.ID, ErrOtherStation)
	}
	if onHandover != "" {
		return refuse(ErrBagOnHandover, map[string]any{"bag_id": b.ID, "handover_id": onHandover},
			"bag %s is already on handover %s", b.ID, onHandover)
	}
	if b.Status != BagSealed {
		return refuse(ErrBagNotSealed, map[string]any{"bag_id": b.ID, "status": b.Status},
			"bag %s is %s; only sealed bags are handed over", b.ID, b.Status)
	}
	if h.Type == HandoverLinehaul && !slices.Contains(h.TripStops, b.NextHop) {
		return refuse(ErrNotOnTrip, map[string]any{"bag_id": b.ID, "next_hop": b.NextHop, "trip_id": h.TripID, "trip_stops": h.TripStops},
			"bag %s goes to %s, which trip %s does not stop at", b.ID, b.NextHop, h.TripID)
	}
	h.Bags = append(h.Bags, HandoverBag{BagID: b.ID, NextHop: b.NextHop, ItemCount: b.ItemCount, WeightG: b.WeightG, AddedAt: at})
	h.recount()
	return nil
}

// Close ends the handover for good: the bags have left.
func (h *Handover) Close(by string, at time.Time) error {
	if h.Status != HandoverOpen {
		return refuse(ErrHandoverClosed, map[string]any{"handover_id": h.ID}, "handover %s is already closed", h.ID)
	}
	if len(h.Bags) == 0 {
		return refuse(ErrHandoverEmpty, map[string]any{"handover_id": h.ID}, "handover %s has no bags", h.ID)
	}
	h.Status, h.ClosedBy, h.ClosedAt = HandoverClosed, by, &at
	return nil
}

func (h *Handover) recount() {
	h.BagCount, h.ParcelCount, h.WeightG = len(h.Bags), 0, 0
	for _, b := range h.Bags {
		h.ParcelCount += b.ItemCount
		h.WeightG += b.WeightG
	}
}

// HandoverBagAdded is the answer to loading a bag.
type HandoverBagAdded struct {
	WorkOrderID string `json:"work_order_id"`
	HandoverID  string `json:"handover_id"`
	BagID       string `json:"bag_id"`
	NextHop     string `json:"next_hop"`
	BagCount    int    `json:"bag_count"`
	ParcelCount int    `json:"parcel_count"`
}

// OpenHandover starts a handover at the actor's station. A linehaul trip is
// looked up in the linehaul service first (outside the transaction); it must
// leave from this station, and its stops are kept with the handover.
func (s *Service) OpenHandover(ctx context.Context, act Actor, req HandoverRequest, scanID string) (Receipt[Handover], error) {
	ref, err := req.ref()
	if err != nil {
		return Receipt[Handover]{}, err
	}
	if err := checkScanID(scanID); err != nil {
		return Receipt[Handover]{}, err
	}
	hash := workorder.RequestHash(OpHandoverOpen, string(req.Type), ref)
	if r, ok, err := replay[Handover](ctx, s, act.StationID, scanID, hash); ok || err != nil {
		return r, err
	}
	var stops []string
	if req.Type == HandoverLinehaul {
		if stops, err = s.tripStops(ctx, act.StationID, ref); err != nil {
			return Receipt[Handover]{}, err
		}
	}
	return write(ctx, s, act, scanID, hash, func(ctx context.Context, tx *workorder.Tx) (Handover, workorder.Order, error) {
		id, now := tx.ID, tx.Now
		h := Handover{ID: id.String(), StationID: act.StationID, Type: req.Type, TripStops: stops,
			Status: HandoverOpen, Bags: []HandoverBag{}, CreatedBy: act.OperatorID, CreatedAt: now.UTC(), WorkOrderID: id.String()}
		h.setRef(ref)
		_, err := tx.Exec(ctx, `INSERT INTO handovers (id, station_id, type, carrier_ref, trip_stops, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, h.ID, h.StationID, string(h.Type), ref, orEmpty(stops), h.CreatedBy, h.CreatedAt)
		if err != nil {
			return Handover{}, workorder.Order{}, fmt.Errorf("packing: insert handover: %w", err)
		}
		return h, workorder.Order{Type: OpHandoverOpen, SubjectID: h.ID}, nil
	})
}

func (s *Service) tripStops(ctx context.Context, stationID, tripID string) ([]string, error) {
	trip, err := s.trips.GetTrip(ctx, tripID)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case errors.Is(err, clients.ErrNotFound), errors.Is(err, clients.ErrInvalidArgument):
		return nil, refuse(ErrUnknownTrip, map[string]any{"trip_id": tripID}, "trip %s is not known", clip(tripID))
	default:
		return nil, fmt.Errorf("%w: linehaul service: %w", ErrDependencyUnavailable, err)
	}
	if trip.Origin != stationID {
		return nil, refuse(ErrTripOtherStation, map[string]any{"trip_id": trip.ID, "origin": trip.Origin},
			"trip %s leaves from %s, not %s", trip.ID, trip.Origin, stationID)
	}
	stops := make([]string, 0, len(trip.Stops))
	for _, st := range trip.Stops {
		stops = append(stops, st.SiteID)
	}
	return stops, nil
}

// AddBagToHandover loads a sealed bag onto an open handover.
func (s *Service) AddBagToHandover(ctx context.Context, act Actor, handoverID, bagID, scanID string) (Receipt[HandoverBagAdded], error) {
	handoverID, bagID = strings.TrimSpace(handoverID), strings.TrimSpace(bagID)
	if bagID == "" {
		return Receipt[HandoverBagAdded]{}, refuse(ErrBagNotFound, nil, "bag_id is required")
	}
	hash := workorder.RequestHash(OpHandoverAdd, handoverID, bagID)
	return write(ctx, s, act, scanID, hash, func(ctx context.Context, tx *workorder.Tx) (HandoverBagAdded, workorder.Order, error) {
		id, now := tx.ID, tx.Now
		// Lock order everywhere: the handover, then its bags.
		h, err := loadHandover(ctx, tx, act.StationID, handoverID, true)
		if err != nil {
			return HandoverBagAdded{}, workorder.Order{}, err
		}
		b, err := lockBag(ctx, tx, act.StationID, bagID, false)
		if err != nil {
			return HandoverBagAdded{}, workorder.Order{}, err
		}
		var on string
		err = tx.QueryRow(ctx, `SELECT handover_id FROM handover_bags WHERE bag_id = $1`, b.ID).Scan(&on)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return HandoverBagAdded{}, workorder.Order{}, fmt.Errorf("packing: handover of bag: %w", err)
		}
		if err := h.AddBag(*b, on, now.UTC()); err != nil {
			return HandoverBagAdded{}, workorder.Order{}, err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO handover_bags (handover_id, bag_id, added_by, added_at) VALUES ($1, $2, $3, $4)`,
			h.ID, b.ID, act.OperatorID, now.UTC()); err != nil {
			return HandoverBagAdded{}, workorder.Order{}, fmt.Errorf("packing: load bag onto handover: %w", err)
		}
		res := HandoverBagAdded{WorkOrderID: id.String(), HandoverID: h.ID, BagID: b.ID, NextHop: b.NextHop,
			BagCount: h.BagCount, ParcelCount: h.ParcelCount}
		return res, workorder.Order{Type: OpHandoverAdd, SubjectID: h.ID}, nil
	})
}

// CloseHandover closes an open handover with at least one bag: its bags
// depart, their parcels are released from the one-bag guard, and every
// parcel of every bag gets a "departed" tracking event, all in one work
// order.
func (s *Service) CloseHandover(ctx context.Context, act Actor, handoverID, scanID string) (Receipt[Handover], error) {
	handoverID = strings.TrimSpace(handoverID)
	hash := workorder.RequestHash(OpHandoverClose, handoverID)
	return write(ctx, s, act, scanID, hash, func(ctx context.Context, tx *workorder.Tx) (Handover, workorder.Order, error) {
		id, now := tx.ID, tx.Now
		h, err := loadHandover(ctx, tx, act.StationID, handoverID, true)
		if err != nil {
			return Handover{}, workorder.Order{}, err
		}
		if err := h.Close(act.OperatorID, now.UTC()); err != nil {
			return Handover{}, workorder.Order{}, err
		}
		ids := make([]string, len(h.Bags))
		for i, b := range h.Bags {
			ids[i] = b.BagID
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM bags WHERE id = ANY($1) ORDER BY id FOR UPDATE`, ids); err != nil {
			return Handover{}, workorder.Order{}, fmt.Errorf("packing: lock bags: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE handovers SET status = 'closed', closed_by = $2, closed_at = $3 WHERE id = $1`,
			h.ID, h.ClosedBy, *h.ClosedAt); err != nil {
			return Handover{}, workorder.Order{}, fmt.Errorf("packing: close handover: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE bags SET status = 'departed' WHERE id = ANY($1)`, ids); err != nil {
			return Handover{}, workorder.Order{}, fmt.Errorf("packing: depart bags: %w", err)
		}
		parcels, err := bagParcels(ctx, tx, ids)
		if err != nil {
			return Handover{}, workorder.Order{}, err
		}
		if _, err := tx.Exec(ctx, `UPDATE bag_items SET departed = true WHERE bag_id = ANY($1)`, ids); err != nil {
			return Handover{}, workorder.Order{}, fmt.Errorf("packing: release parcels: %w", err)
		}
		moves, err := follow(ctx, tx, workorder.OpHandover, workorder.StateDeparted, h.ID, ids...)
		if err != nil {
			return Handover{}, workorder.Order{}, err
		}
		var events []workorder.Event
		for _, b := range h.Bags {
			for _, no := range parcels[b.BagID] {
				events = append(events, workorder.Event{TrackingNo: no, Type: workorder.EventDeparted, OccurredAt: now,
					Payload: map[string]any{"bag_id": b.BagID, "next_hop": b.NextHop, "handover_id": h.ID,
						"handover_type": string(h.Type), "carrier_ref": h.Ref()}})
			}
		}
		h.WorkOrderID = id.String()
		return *h, workorder.Order{Type: OpHandoverClose, SubjectID: h.ID, Events: events, Moves: moves}, nil
	})
}

// Handover returns one handover of the station with its bags.
func (s *Service) Handover(ctx context.Context, stationID, handoverID string) (Handover, error) {
	h, err := loadHandover(ctx, s.db, stationID, strings.TrimSpace(handoverID), false)
	if err != nil {
		return Handover{}, err
	}
	return *h, nil
}

func loadHandover(ctx context.Context, q querier, stationID, id string, lock bool) (*Handover, error) {
	sql := `SELECT id, station_id, type, carrier_ref, trip_stops, status, created_by, created_at, coalesce(closed_by, ''), closed_at
		FROM handovers WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	var h Handover
	var ref string
	err := q.QueryRow(ctx, sql, id).Scan(&h.ID, &h.StationID, &h.Type, &ref, &h.TripStops, &h.Status,
		&h.CreatedBy, &h.CreatedAt, &h.ClosedBy, &h.ClosedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, refuse(ErrHandoverNotFound, map[string]any{"handover_id": clip(id)}, "handover %s not found", clip(id))
	}
	if err != nil {
		return nil, fmt.Errorf("packing: load handover: %w", err)
	}
	if h.StationID != stationID {
		return nil, fmt.Errorf("packing: handover %s: %w", id, ErrOtherStation)
	}
	h.setRef(ref)
	h.CreatedAt = h.CreatedAt.UTC()
	if h.ClosedAt != nil {
		at := h.ClosedAt.UTC()
		h.ClosedAt = &at
	}
	if len(h.TripStops) == 0 {
		h.TripStops = nil
	}
	rows, err := q.Query(ctx, `SELECT hb.bag_id, b.next_hop, b.item_count, coalesce(b.weight_g, 0), hb.added_at
		FROM handover_bags hb JOIN bags b ON b.id = hb.bag_id WHERE hb.handover_id = $1 ORDER BY hb.added_at, hb.bag_id`, h.ID)
	if err != nil {
		return nil, fmt.Errorf("packing: handover bags: %w", err)
	}
	h.Bags, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (HandoverBag, error) {
		var b HandoverBag
		err := row.Scan(&b.BagID, &b.NextHop, &b.ItemCount, &b.WeightG, &b.AddedAt)
		b.AddedAt = b.AddedAt.UTC()
		return b, err
	})
	if err != nil {
		return nil, fmt.Errorf("packing: handover bags: %w", err)
	}
	h.recount()
	return &h, nil
}

// bagParcels maps each bag to its parcels in the order they were added.
func bagParcels(ctx context.Context, q querier, bagIDs []string) (map[string][]string, error) {
	rows, err := q.Query(ctx, `SELECT bag_id, tracking_no FROM bag_items WHERE bag_id = ANY($1) ORDER BY bag_id, added_at, tracking_no`, bagIDs)
	if err != nil {
		return nil, fmt.Errorf("packing: parcels of bags: %w", err)
	}
	out := make(map[string][]string, len(bagIDs))
	var bag, no string
	_, err = pgx.ForEachRow(rows, []any{&bag, &no}, func() error {
		out[bag] = append(out[bag], no)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("packing: parcels of bags: %w", err)
	}
	return out, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// HandoverSummary is a handover in a listing: its counts, not its bags.
type HandoverSummary struct {
	ID          string         `json:"handover_id"`
	StationID   string         `json:"station_id"`
	Type        HandoverType   `json:"type"`
	TripID      string         `json:"trip_id,omitempty"`
	RiderID     string         `json:"rider_id,omitempty"`
	Carrier     string         `json:"carrier,omitempty"`
	Status      HandoverStatus `json:"status"`
	BagCount    int            `json:"bag_count"`
	ParcelCount int            `json:"parcel_count"`
	WeightG     int            `json:"weight_g"`
	CreatedBy   string         `json:"created_by"`
	CreatedAt   time.Time      `json:"created_at"`
	ClosedAt    *time.Time     `json:"closed_at,omitempty"`
}

// Handovers lists the station's handovers in one status ("" for all),
// newest first, so a terminal resumes an open one by picking it rather than
// typing its UUID.
func (s *Service) Handovers(ctx context.Context, stationID string, status HandoverStatus) ([]HandoverSummary, error) {
	if status != "" && status != HandoverOpen && status != HandoverClosed {
		return nil, fmt.Errorf("%w: got %q", ErrInvalidHandoverStatus, clip(string(status)))
	}
	rows, err := s.db.Query(ctx, `SELECT h.id, h.station_id, h.type, h.carrier_ref, h.status, h.created_by, h.created_at, h.closed_at,
			count(b.id), coalesce(sum(b.item_count), 0), coalesce(sum(b.weight_g), 0)
		FROM handovers h
		LEFT JOIN handover_bags hb ON hb.handover_id = h.id
		LEFT JOIN bags b ON b.id = hb.bag_id
		WHERE h.station_id = $1 AND ($2 = '' OR h.status = $2)
		GROUP BY h.id
		ORDER BY h.created_at DESC, h.id DESC LIMIT $3`, stationID, string(status), maxList)
	if err != nil {
		return nil, fmt.Errorf("packing: list handovers: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HandoverSummary, error) {
		var h HandoverSummary
		var ref string
		err := row.Scan(&h.ID, &h.StationID, &h.Type, &ref, &h.Status, &h.CreatedBy, &h.CreatedAt, &h.ClosedAt,
			&h.BagCount, &h.ParcelCount, &h.WeightG)
		full := Handover{Type: h.Type}
		full.setRef(ref)
		h.TripID, h.RiderID, h.Carrier = full.TripID, full.RiderID, full.Carrier
		h.CreatedAt = h.CreatedAt.UTC()
		if h.ClosedAt != nil {
			at := h.ClosedAt.UTC()
			h.ClosedAt = &at
		}
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("packing: list handovers: %w", err)
	}
	return list, nil
}
