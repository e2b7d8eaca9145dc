package app

import (
	"context"
	"fmt"
	"time"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/whatif"
	"github.com/expresshub/station/station/config"
)

// Whatif runs one what-if replay for the command line (`station whatif`):
// the station's sorting stack is built as serve builds it, over the
// configured database and downstream services, without Redis, the belt or
// the HTTP edge. It writes nothing (a database with no flows stored yet is
// seeded with the shipped ones, as any instance would at start).
func Whatif(ctx context.Context, cfg config.Config, in whatif.Input, c whatif.Candidate) (whatif.Report, error) {
	db, err := OpenPool(ctx, cfg.Database)
	if err != nil {
		return whatif.Report{}, err
	}
	defer db.Close()
	cs, err := clients.Dial(ctx, cfg.Downstream, clients.Options{})
	if err != nil {
		return whatif.Report{}, fmt.Errorf("downstream clients: %w", err)
	}
	defer func() { _ = cs.Close() }()
	chutes := sorting.NewChuteStore(db, time.Minute)
	flows, err := sorting.NewFlowSet(ctx, db, sorting.Clients(cs), chutes)
	if err != nil {
		return whatif.Report{}, err
	}
	svc := sorting.NewService(db, sorting.NewRouter(flows, chutes, nil, nil), nil, nil)
	bags := packing.New(db, nil, nil, packing.WithBagLimits(packing.BagLimits{MaxParcels: cfg.Floor.BagMaxParcels,
		MaxGrams: cfg.Floor.BagMaxGrams, SealSoon: cfg.Floor.SealSoon}))
	r := whatif.New(db, svc, func(ctx context.Context, station string) (whatif.BagLimits, error) {
		l, err := bags.Limits(ctx, db, station)
		return whatif.BagLimits{MaxParcels: l.MaxParcels, MaxGrams: l.MaxGrams}, err
	}, whatif.Config{BeltDeadline: cfg.Sorter.DefaultBudget - cfg.Sorter.SafetyMargin})
	return r.Replay(ctx, in, c)
}
