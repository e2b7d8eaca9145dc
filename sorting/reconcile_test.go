package sorting

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/workorder"
)

// offlineService is a sorting service on a fresh database whose stored
// sorts at SG-H01 all disagree with any flow: each offline comparison is a
// mismatch, so every kind of offline write happens.
func offlineService(t *testing.T, parcels int) (*Service, *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	db := dbtest.Pool(t)
	s := simtest.Start(t, simtest.WithZeroLatency())
	set, err := clients.Dial(ctx, clients.DefaultConfig().WithAddr(s.Addr()), clients.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	chutes := NewChuteStore(db, time.Second)
	if _, err := chutes.Put(ctx, "SG-H01", NumberedChuteMap(s.Fixtures().NextHops("SG-H01")), 0, "test"); err != nil {
		t.Fatal(err)
	}
	flows, err := NewFlowSet(ctx, db, Clients(set), chutes)
	if err != nil {
		t.Fatal(err)
	}
	for i := range parcels {
		if _, err := db.Exec(ctx, `INSERT INTO sort_results (id, station_id, tracking_no, next_hop, chute, flow, flow_version)
			VALUES ($1, 'SG-H01', $2, 'XX-NOWHERE', 999, 'full', 1)`, workorder.NewID(), sim.ViaStation("SG-H01", i)); err != nil {
			t.Fatal(err)
		}
	}
	return NewService(db, NewRouter(flows, chutes, nil, nil), nil, nil), db
}

func offlineRows(t *testing.T, db *pgxpool.Pool) (mismatches, comparisons int) {
	t.Helper()
	if err := db.QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM reconciliation_mismatches WHERE source = 'offline'),
		(SELECT coalesce(sum(comparisons), 0) FROM reconciliation_counts WHERE source = 'offline')`).Scan(&mismatches, &comparisons); err != nil {
		t.Fatal(err)
	}
	return mismatches, comparisons
}

func TestOfflineWritesNothingWhenItsFenceRefuses(t *testing.T) {
	t.Parallel()
	svc, db := offlineService(t, 3)
	notOurs := errors.New("lease lost")
	_, err := svc.Offline(context.Background(), OfflineRequest{SiteID: "SG-H01", CandidateFlow: "full_v2", CandidateVersion: 1,
		Since: time.Now().Add(-time.Hour), Fence: func(context.Context, pgx.Tx) error { return notOurs }})
	if !errors.Is(err, notOurs) {
		t.Fatalf("Offline behind a refusing fence: %v", err)
	}
	if m, c := offlineRows(t, db); m != 0 || c != 0 {
		t.Fatalf("%d mismatches and %d comparisons written behind a refusing fence", m, c)
	}
}

func TestOfflineCallsItsFenceInEveryWritingTransaction(t *testing.T) {
	t.Parallel()
	const parcels = 3
	svc, db := offlineService(t, parcels)
	var calls atomic.Int32
	rep, err := svc.Offline(context.Background(), OfflineRequest{SiteID: "SG-H01", CandidateFlow: "full_v2", CandidateVersion: 1,
		Since: time.Now().Add(-time.Hour), Fence: func(ctx context.Context, tx pgx.Tx) error {
			calls.Add(1)
			var one int
			return tx.QueryRow(ctx, `SELECT 1`).Scan(&one)
		}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Comparisons != parcels || rep.Mismatches != parcels {
		t.Fatalf("report %+v", rep)
	}
	if m, c := offlineRows(t, db); m != parcels || c != parcels {
		t.Fatalf("%d mismatches and %d comparisons written, want %d each", m, c, parcels)
	}
	if n := calls.Load(); n != parcels+1 {
		t.Fatalf("fence called %d times, want once per mismatch and once for the counts (%d)", n, parcels+1)
	}
}

func TestOfflineSweepChecksEverySiteThatComparesACandidate(t *testing.T) {
	t.Parallel()
	const parcels = 2
	ctx := context.Background()
	svc, db := offlineService(t, parcels)
	for _, r := range []struct{ site, mode string }{{"SG-H01", ModeShadow}, {"SG-H02", ModeOff}} {
		if _, err := db.Exec(ctx, `INSERT INTO release_rules (site_id, stable_flow, stable_version, candidate_flow, candidate_version,
			mode, ratio_bp, salt, version, updated_by) VALUES ($1, 'full', 1, 'full_v2', 1, $2, 0, 's', 1, 'test')`, r.site, r.mode); err != nil {
			t.Fatal(err)
		}
	}
	reps, err := svc.OfflineSweep(ctx, time.Now().Add(-time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) != 1 || reps[0].SiteID != "SG-H01" || reps[0].Comparisons != parcels {
		t.Fatalf("sweep reports %+v, want SG-H01 alone", reps)
	}
	if m, c := offlineRows(t, db); m != parcels || c != parcels {
		t.Fatalf("%d mismatches and %d comparisons written, want %d each", m, c, parcels)
	}
}
