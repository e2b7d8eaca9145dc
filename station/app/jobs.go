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
