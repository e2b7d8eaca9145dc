package app

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/expresshub/station/station/lease"
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
	n, err := pruneOutbox(ctx, a.db, a.cfg.Relay.Retain, pruneBatch, pruneMaxBatches, l.Guard)
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

// pruneOutbox deletes delivered tracking events delivered more than retain
// ago, batch rows per transaction behind guard, at most maxBatches
// batches. Pending and dead events are never touched: only the order
// center's acknowledgement (status delivered) makes an event disposable.
// Rows a relay holds are skipped, not waited for.
func pruneOutbox(ctx context.Context, db *pgxpool.Pool, retain time.Duration, batch, maxBatches int,
	guard func(context.Context, pgx.Tx) error) (int64, error) {
	var total int64
	for range maxBatches {
		var n int64
		err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			if err := guard(ctx, tx); err != nil {
				return err
			}
			tag, err := tx.Exec(ctx, `DELETE FROM tracking_outbox WHERE status = 'delivered' AND id IN (
				SELECT id FROM tracking_outbox WHERE status = 'delivered' AND delivered_at < now() - $1 * interval '1 microsecond'
				ORDER BY delivered_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, retain.Microseconds(), batch)
			n = tag.RowsAffected()
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		total += n
		if n < int64(batch) {
			break
		}
	}
	return total, nil
}
