package app

import (
	"context"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/history"
	"github.com/expresshub/station/station/lease"
	"github.com/expresshub/station/workorder"
)

// Lease names of the singleton jobs; every instance competes for them and
// only the holder runs the job (package lease).
const (
	LeaseOfflineReconciliation = "offline_reconciliation"
	LeaseReleaseRamp           = "release_ramp"
	LeaseHistory               = "history_partitions"
)

// Trimming the scan keys deletes at most trimBatch rows per transaction, so
// no delete holds locks or bloats WAL for long, and at most trimMaxBatches
// batches per run; a backlog larger than that is worked off over runs.
const (
	trimBatch      = 5000
	trimMaxBatches = 200
)

// startSingletons launches the singleton jobs that are switched on.
func (a *App) startSingletons(ctx context.Context, wg *sync.WaitGroup) {
	ttl := a.cfg.Lease.TTL
	// Today's partitions exist before the job first runs, even after a
	// stop longer than the days made ahead.
	if err := historyKeeper(a.db, a.cfg.History).Ensure(ctx); err != nil {
		a.log.Warn("history partitions not ensured", zap.Error(err))
	}
	if every := a.cfg.History.Every; every > 0 {
		wg.Go(func() { a.leases.Run(ctx, LeaseHistory, ttl, every, a.historyJob) })
	}
	if every := a.cfg.Release.OfflineEvery; every > 0 {
		wg.Go(func() { a.leases.Run(ctx, LeaseOfflineReconciliation, ttl, every, a.offlineJob) })
	}
	if every := a.cfg.Release.RampEvery; every > 0 {
		wg.Go(func() { a.leases.Run(ctx, LeaseReleaseRamp, ttl, every, a.rampJob) })
	}
}

// rampJob steps every running guarded ramp up, or rolls it back: one
// instance decides, PostgreSQL and the rule signal tell the others.
func (a *App) rampJob(ctx context.Context, l *lease.Lease) error {
	acts, err := a.releases.AdvanceRamps(ctx, l.Guard)
	for _, act := range acts {
		a.log.Info("release ramp", zap.String("site", act.SiteID), zap.String("action", act.Action),
			zap.Int("from_bp", act.From), zap.Int("to_bp", act.To))
	}
	return err
}

// historyKeeper maintains the partitioned history tables with the
// configured retentions.
func historyKeeper(db *pgxpool.Pool, cfg config.History) *history.Keeper {
	r := cfg.Retain
	return history.New(db, cfg.Ahead,
		history.Table{Name: "work_orders", Retain: r.WorkOrders},
		history.Table{Name: "sort_results", Retain: r.SortResults},
		history.Table{Name: "tracking_outbox", Retain: r.TrackingOutbox, Keep: workorder.OutboxKeep},
		history.Table{Name: "parcel_state_history", Retain: r.ParcelStateHistory},
		history.Table{Name: "belt_decisions", Retain: r.BeltDecisions})
}

// historyJob creates the coming days' partitions, drops the days past
// retention and trims the scan keys.
func (a *App) historyJob(ctx context.Context, l *lease.Lease) error {
	rep, err := historyKeeper(a.db, a.cfg.History).Run(ctx, l.Guard)
	if rep.Created > 0 || len(rep.Dropped) > 0 || len(rep.Busy) > 0 || err != nil {
		a.log.Info("history partitions", zap.Int("created", rep.Created), zap.Strings("dropped", rep.Dropped),
			zap.Strings("busy", rep.Busy), zap.Error(err))
	}
	if len(rep.Kept) > 0 {
		a.log.Warn("history partitions past retention kept: undelivered tracking events", zap.Strings("kept", rep.Kept))
	}
	if err != nil {
		return err
	}
	n, err := workorder.TrimScanKeys(ctx, a.db, a.cfg.History.Retain.ScanKeys, trimBatch, trimMaxBatches, l.Guard)
	if n > 0 || err != nil {
		a.log.Info("scan keys trimmed", zap.Int64("deleted", n), zap.Duration("retain", a.cfg.History.Retain.ScanKeys), zap.Error(err))
	}
	return err
}

func (a *App) offlineJob(ctx context.Context, l *lease.Lease) error {
	reports, err := a.sorting.OfflineSweep(ctx, time.Now().Add(-a.cfg.Release.OfflineWindow), l.Guard)
	for _, r := range reports {
		a.log.Info("scheduled offline reconciliation", zap.String("site", r.SiteID), zap.String("candidate", r.Candidate),
			zap.Int("comparisons", r.Comparisons), zap.Int("mismatches", r.Mismatches))
	}
	return err
}
