package app

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/expresshub/station/station/lease"
	"github.com/expresshub/station/workorder"
)

// Lease names of the singleton jobs; every instance competes for them and
// only the holder runs the job (package lease).
const (
	LeaseOfflineReconciliation = "offline_reconciliation"
	LeaseOutboxPrune           = "outbox_prune"
	LeaseReleaseRamp           = "release_ramp"
)

// Outbox pruning deletes at most pruneBatch rows per transaction, so no
// delete holds locks or bloats WAL for long, and at most pruneMaxBatches
// batches per run; a backlog larger than that is worked off over runs.
const (
	pruneBatch      = 5000
	pruneMaxBatches = 200
)

// startSingletons launches the singleton jobs that are switched on.
func (a *App) startSingletons(ctx context.Context, wg *sync.WaitGroup) {
	ttl := a.cfg.Lease.TTL
	if every := a.cfg.Relay.PruneEvery; every > 0 {
		wg.Go(func() { a.leases.Run(ctx, LeaseOutboxPrune, ttl, every, a.pruneOutboxJob) })
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

func (a *App) pruneOutboxJob(ctx context.Context, l *lease.Lease) error {
	n, err := workorder.NewOutbox(a.db).Prune(ctx, a.cfg.Relay.Retain, pruneBatch, pruneMaxBatches, l.Guard)
	if n > 0 || err != nil {
		a.log.Info("outbox pruned", zap.Int64("deleted", n), zap.Duration("retain", a.cfg.Relay.Retain), zap.Error(err))
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
