package packing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/workorder"
)

// Work order types of bag operations.
const (
	OpBagOpen   = "bag_open"
	OpBagAdd    = "bag_add"
	OpBagRemove = "bag_remove"
	OpBagSeal   = "bag_seal"
	// A bag hung under a sorter's chute, and taken down.
	OpChuteBind   = "chute_bind"
	OpChuteUnbind = "chute_unbind"
)

// Open opens a bag at the actor's station for one next hop. The bag id
// comes from the container service before the transaction starts; when the
// service does not answer, ErrDependencyUnavailable and nothing is written.
func (s *Service) Open(ctx context.Context, act Actor, nextHop, scanID string) (Receipt[Bag], error) {
	hop, err := parseNextHop(nextHop)
	if err != nil {
		return Receipt[Bag]{}, err
	}
	if hop == act.StationID {
		return Receipt[Bag]{}, refuse(ErrInvalidNextHop, map[string]any{"next_hop": hop},
			"a bag at %s cannot be for %s itself", act.StationID, hop)
	}
	if err := checkScanID(scanID); err != nil {
		return Receipt[Bag]{}, err
	}
	hash := workorder.RequestHash(OpBagOpen, hop)
	// Replay before allocating: a retried open must not ask for a new id.
	if r, ok, err := replay[Bag](ctx, s, act.StationID, scanID, hash); ok || err != nil {
		return r, err
	}
	bagID, err := s.allocate(ctx, act.StationID, hop, scanID)
	if err != nil {
		return Receipt[Bag]{}, err
	}
	return write(ctx, s, act, scanID, hash, func(ctx context.Context, tx *workorder.Tx) (Bag, workorder.Order, error) {
		id, now := tx.ID, tx.Now
		b := Bag{ID: bagID, StationID: act.StationID, NextHop: hop, Status: BagOpen,
			OpenedBy: act.OperatorID, OpenedAt: now.UTC(), WorkOrderID: id.String()}
		_, err := tx.Exec(ctx,
			`INSERT INTO bags (id, station_id, next_hop, status, opened_by, opened_at) VALUES ($1, $2, $3, 'open', $4, $5)`,
			b.ID, b.StationID, b.NextHop, b.OpenedBy, b.OpenedAt)
		if err != nil {
			return Bag{}, workorder.Order{}, fmt.Errorf("packing: insert bag %s: %w", b.ID, err)
		}
		return b, workorder.Order{Type: OpBagOpen, SubjectID: b.ID}, nil
	})
}

// allocate asks the container service for a bag id. The request id is the
// station's scan id, so a retry after a failed transaction gets the same id.
func (s *Service) allocate(ctx context.Context, stationID, nextHop, scanID string) (string, error) {
	id, err := s.bagIDs.AllocateBagID(ctx, stationID, nextHop, stationID+"/"+scanID)
	switch {
	case err == nil && strings.TrimSpace(id) != "":
		return id, nil
	case err == nil:
		return "", fmt.Errorf("%w: container service returned an empty bag id", ErrDependencyUnavailable)
	case ctx.Err() != nil:
		return "", ctx.Err()
	case errors.Is(err, clients.ErrNotFound):
		return "", refuse(ErrUnknownNextHop, map[string]any{"next_hop": nextHop}, "next hop %s is not a known site", nextHop)
	case errors.Is(err, clients.ErrInvalidArgument):
		return "", refuse(ErrInvalidNextHop, map[string]any{"next_hop": nextHop}, "container service refused next hop %s", nextHop)
	default:
		return "", fmt.Errorf("%w: container service: %w", ErrDependencyUnavailable, err)
	}
}

// AddItem puts a parcel into an open bag of the actor's station.
func (s *Service) AddItem(ctx context.Context, act Actor, bagID, trackingNo, scanID string) (Receipt[ItemChange], error) {
	no, err := parseTrackingNo(trackingNo)
	if err != nil {
		return Receipt[ItemChange]{}, err
	}
	bagID = strings.TrimSpace(bagID)
	hash := workorder.RequestHash(OpBagAdd, bagID, no)
	return write(ctx, s, act, scanID, hash, func(ctx context.Context, tx *workorder.Tx) (ItemChange, workorder.Order, error) {
		id, now := tx.ID, tx.Now
		b, err := lockBag(ctx, tx, act.StationID, bagID, false)
		if err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		p := Parcel{TrackingNo: no}
		if p.State, err = tx.Parcel(ctx, no); err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		if _, p.InBagElsewhere, err = holder(ctx, tx, act.StationID, no); err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		if err := b.Add(p); err != nil {
			if errors.Is(err, errAlreadyInThisBag) {
				return ItemChange{}, workorder.Order{}, &workorder.Repeat[ItemChange]{Value: ItemChange{BagID: b.ID, TrackingNo: no,
					Action: "already_in_this_bag", NextHop: b.NextHop, ItemCount: b.ItemCount, At: p.State.UpdatedAt}}
			}
			return ItemChange{}, workorder.Order{}, err
		}
		// The partial unique index is the final word across instances: a
		// concurrent add of the same parcel to another bag waits there for
		// that transaction and then inserts nothing.
		grams, err := s.putItem(ctx, tx, b, no, act.OperatorID, p.State.WeightG)
		if err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		b.ContentsG += grams
		if err := setContents(ctx, tx, b); err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		ch := ItemChange{WorkOrderID: id.String(), BagID: b.ID, TrackingNo: no, Action: "added",
			NextHop: b.NextHop, ItemCount: b.ItemCount, At: now.UTC()}
		return ch, workorder.Order{Type: OpBagAdd, TrackingNo: no, SubjectID: b.ID, Events: []workorder.Event{{
			TrackingNo: no, Type: workorder.EventBagged, OccurredAt: now,
			Payload: map[string]any{"bag_id": b.ID, "next_hop": b.NextHop},
		}}, Moves: []workorder.Move{{Op: workorder.OpBagAdd, TrackingNo: no, To: workorder.StateBagged,
			NextHop: p.State.NextHop, Chute: p.State.Chute, BagID: b.ID, WeightG: p.State.WeightG}}}, nil
	})
}

// RemoveItem takes a parcel out of an open bag of the actor's station.
func (s *Service) RemoveItem(ctx context.Context, act Actor, bagID, trackingNo, scanID string) (Receipt[ItemChange], error) {
	no, err := parseTrackingNo(trackingNo)
	if err != nil {
		return Receipt[ItemChange]{}, err
	}
	bagID = strings.TrimSpace(bagID)
	hash := workorder.RequestHash(OpBagRemove, bagID, no)
	return write(ctx, s, act, scanID, hash, func(ctx context.Context, tx *workorder.Tx) (ItemChange, workorder.Order, error) {
		id, now := tx.ID, tx.Now
		b, err := lockBag(ctx, tx, act.StationID, bagID, true)
		if err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		if err := b.Remove(no); err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		p, err := tx.Parcel(ctx, no)
		if err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		var grams int
		if err := tx.QueryRow(ctx, `DELETE FROM bag_items WHERE bag_id = $1 AND tracking_no = $2 RETURNING weight_g`, b.ID, no).
			Scan(&grams); err != nil {
			return ItemChange{}, workorder.Order{}, fmt.Errorf("packing: delete item: %w", err)
		}
		b.ContentsG = max(b.ContentsG-grams, 0)
		if err := setContents(ctx, tx, b); err != nil {
			return ItemChange{}, workorder.Order{}, err
		}
		ch := ItemChange{WorkOrderID: id.String(), BagID: b.ID, TrackingNo: no, Action: "removed",
			NextHop: b.NextHop, ItemCount: b.ItemCount, At: now.UTC()}
		return ch, workorder.Order{Type: OpBagRemove, TrackingNo: no, SubjectID: b.ID, Events: []workorder.Event{{
			TrackingNo: no, Type: workorder.EventUnbagged, OccurredAt: now,
			Payload: map[string]any{"bag_id": b.ID},
		}}, Moves: []workorder.Move{{Op: workorder.OpBagRemove, TrackingNo: no, To: workorder.StateSorted,
			NextHop: p.NextHop, Chute: p.Chute}}}, nil
	})
}

// Seal seals an open, non-empty bag with its gross weight; every parcel in
// it gets a bag_sealed tracking event.
func (s *Service) Seal(ctx context.Context, act Actor, bagID string, weightG int, scanID string) (Receipt[Bag], error) {
	// Input first: a bad weight is a 400 whatever state the bag is in.
	if err := s.limits.CheckWeight(weightG); err != nil {
		return Receipt[Bag]{}, err
	}
	bagID = strings.TrimSpace(bagID)
	hash := workorder.RequestHash(OpBagSeal, bagID, fmt.Sprint(weightG))
	return write(ctx, s, act, scanID, hash, func(ctx context.Context, tx *workorder.Tx) (Bag, workorder.Order, error) {
		id, now := tx.ID, tx.Now
		b, err := lockBag(ctx, tx, act.StationID, bagID, true)
		if err != nil {
			return Bag{}, workorder.Order{}, err
		}
		if err := b.Seal(weightG, s.limits, act.OperatorID, now.UTC()); err != nil {
			return Bag{}, workorder.Order{}, err
		}
		if _, err := tx.Exec(ctx,
			`WITH unbound AS (DELETE FROM chute_bags WHERE bag_id = $1)
			 UPDATE bags SET status = 'sealed', weight_g = $2, sealed_by = $3, sealed_at = $4 WHERE id = $1`,
			b.ID, b.WeightG, b.SealedBy, *b.SealedAt); err != nil {
			return Bag{}, workorder.Order{}, fmt.Errorf("packing: seal bag: %w", err)
		}
		events := make([]workorder.Event, 0, len(b.Items))
		for _, no := range b.Items {
			events = append(events, workorder.Event{TrackingNo: no, Type: workorder.EventBagSealed, OccurredAt: now,
				Payload: map[string]any{"bag_id": b.ID, "next_hop": b.NextHop, "weight_g": b.WeightG}})
		}
		moves, err := follow(ctx, tx, workorder.OpBagSeal, workorder.StateSealed, "", b.ID)
		if err != nil {
			return Bag{}, workorder.Order{}, err
		}
		b.WorkOrderID = id.String()
		return *b, workorder.Order{Type: OpBagSeal, SubjectID: b.ID, Events: events, Moves: moves}, nil
	})
}

// Bag returns one bag of the station with its parcels.
func (s *Service) Bag(ctx context.Context, stationID, bagID string) (Bag, error) {
	b, err := loadBag(ctx, s.db, stationID, strings.TrimSpace(bagID), true, false)
	if err != nil {
		return Bag{}, err
	}
	return *b, nil
}

// maxList bounds a listing; a station has far fewer bags in one state.
const maxList = 1000

// Bags lists a station's bags in one status (all when status is ""),
// without their parcel lists. Open and sealed bags are work still to do and
// come longest waiting first. Departed bags, and the whole list, are
// history and come newest first, so the cap leaves out the oldest rather
// than today's.
func (s *Service) Bags(ctx context.Context, stationID string, status BagStatus) ([]Bag, error) {
	if status != "" && !status.Valid() {
		return nil, fmt.Errorf("%w: got %q", ErrInvalidBagStatus, clip(string(status)))
	}
	order := "opened_at DESC, id DESC"
	if status == BagOpen || status == BagSealed {
		order = "opened_at, id"
	}
	rows, err := s.db.Query(ctx, `SELECT `+bagColumns+` FROM bags
		WHERE station_id = $1 AND ($2 = '' OR status = $2) ORDER BY `+order+` LIMIT $3`,
		stationID, string(status), maxList)
	if err != nil {
		return nil, fmt.Errorf("packing: list bags: %w", err)
	}
	bags, err := pgx.CollectRows(rows, scanBag)
	if err != nil {
		return nil, fmt.Errorf("packing: list bags: %w", err)
	}
	return bags, nil
}

const bagColumns = `id, station_id, next_hop, status, item_count, coalesce(weight_g, 0), contents_g, opened_by, opened_at, coalesce(sealed_by, ''), sealed_at`

func scanBag(row pgx.CollectableRow) (Bag, error) {
	var b Bag
	err := row.Scan(&b.ID, &b.StationID, &b.NextHop, &b.Status, &b.ItemCount, &b.WeightG, &b.ContentsG,
		&b.OpenedBy, &b.OpenedAt, &b.SealedBy, &b.SealedAt)
	b.OpenedAt = b.OpenedAt.UTC()
	if b.SealedAt != nil {
		at := b.SealedAt.UTC()
		b.SealedAt = &at
	}
	return b, err
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// lockBag loads a bag of the station and locks its row until the
// transaction ends: every change to a bag goes through this lock, so adds,
// removes and the seal of one bag happen one after another on every
// instance.
func lockBag(ctx context.Context, tx pgx.Tx, stationID, bagID string, items bool) (*Bag, error) {
	return loadBag(ctx, tx, stationID, bagID, items, true)
}

func loadBag(ctx context.Context, q querier, stationID, bagID string, items, lock bool) (*Bag, error) {
	sql := `SELECT ` + bagColumns + ` FROM bags WHERE id = $1`
	if lock {
		sql += ` FOR UPDATE`
	}
	rows, err := q.Query(ctx, sql, bagID)
	if err != nil {
		return nil, fmt.Errorf("packing: load bag: %w", err)
	}
	b, err := pgx.CollectExactlyOneRow(rows, scanBag)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, refuse(ErrBagNotFound, map[string]any{"bag_id": bagID}, "bag %s not found", clip(bagID))
	}
	if err != nil {
		return nil, fmt.Errorf("packing: load bag: %w", err)
	}
	if b.StationID != stationID {
		return nil, fmt.Errorf("packing: bag %s: %w", bagID, ErrOtherStation)
	}
	if items {
		if b.Items, err = bagItems(ctx, q, b.ID); err != nil {
			return nil, err
		}
	}
	return &b, nil
}

func bagItems(ctx context.Context, q querier, bagID string) ([]string, error) {
	rows, err := q.Query(ctx, `SELECT tracking_no FROM bag_items WHERE bag_id = $1 ORDER BY added_at, tracking_no`, bagID)
	if err != nil {
		return nil, fmt.Errorf("packing: bag items: %w", err)
	}
	items, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("packing: bag items: %w", err)
	}
	return items, nil
}

// follow moves every parcel of the bags along with them (sealed with
// their bag, departed with their handover).
func follow(ctx context.Context, tx *workorder.Tx, op workorder.Op, to workorder.State, handoverID string, bagIDs ...string) ([]workorder.Move, error) {
	parcels, err := tx.ParcelsInBag(ctx, bagIDs...)
	if err != nil {
		return nil, err
	}
	moves := make([]workorder.Move, 0, len(parcels))
	for _, p := range parcels {
		moves = append(moves, workorder.Move{Op: op, TrackingNo: p.TrackingNo, To: to, NextHop: p.NextHop, Chute: p.Chute,
			BagID: p.BagID, HandoverID: handoverID})
	}
	return moves, nil
}

// holder is the open or sealed bag that holds the parcel, "" if none.
func holder(ctx context.Context, q querier, stationID, trackingNo string) (bagID string, elsewhere bool, err error) {
	var station string
	err = q.QueryRow(ctx, `SELECT bag_id, station_id FROM bag_items WHERE tracking_no = $1 AND NOT departed`, trackingNo).Scan(&bagID, &station)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("packing: bag of parcel: %w", err)
	}
	if station != stationID {
		// Another station's bag ids are not this operator's to learn
		// (object-level authorization): say only that one holds it.
		return "", true, nil
	}
	return bagID, false, nil
}
