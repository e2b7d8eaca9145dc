package sorting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sync/errgroup"
)

// ErrMismatchNotFound is returned for an unknown mismatch id.
var ErrMismatchNotFound = fault.New(fault.NotFound, "not_found", "mismatch not found")

// Report is a site's reconciliation since a time.
type Report struct {
	SiteID      string            `json:"site_id"`
	Since       time.Time         `json:"since"`
	Comparisons int               `json:"comparisons"`
	Matches     int               `json:"matches"`
	Mismatches  int               `json:"mismatches"`
	Drops       int               `json:"drops"`
	MatchRate   *float64          `json:"match_rate"` // null without comparisons
	Noise       NoiseReport       `json:"noise"`
	Offline     *SourceCounts     `json:"offline,omitempty"`
	ByStep      map[string]int    `json:"by_step"` // first diverging node -> mismatches
	Series      []SeriesPoint     `json:"series"`
	Recent      []MismatchSummary `json:"recent_mismatches"`
}

// NoiseReport is the old-versus-old comparison: how often the stable flow
// disagrees with itself, the floor under any match rate.
type NoiseReport struct {
	Comparisons int      `json:"comparisons"`
	Mismatches  int      `json:"mismatches"`
	Rate        *float64 `json:"mismatch_rate"`
}

// SourceCounts are the totals of one source.
type SourceCounts struct {
	Comparisons int `json:"comparisons"`
	Mismatches  int `json:"mismatches"`
}

// SeriesPoint is one minute of shadow comparisons.
type SeriesPoint struct {
	Minute      time.Time `json:"minute"`
	Comparisons int       `json:"comparisons"`
	Mismatches  int       `json:"mismatches"`
	Drops       int       `json:"drops"`
}

// MismatchSummary is one line of the mismatch list.
type MismatchSummary struct {
	ID            string  `json:"id"`
	Source        string  `json:"source"`
	TrackingNo    string  `json:"tracking_no"`
	FirstDiffNode *string `json:"first_diff_node"`
	FirstDiffKey  *string `json:"first_diff_key"`
	// FirstDiffOnlyIn says which flow alone has the blamed step ("stable"
	// or "candidate"); null when both have it.
	FirstDiffOnlyIn *string   `json:"first_diff_only_in"`
	CreatedAt       time.Time `json:"created_at"`
}

// onlyInSQL reads from the stored traces which flow alone has the blamed
// step: the traces are the evidence the blame was made from, so no column
// has to repeat it.
const onlyInSQL = `CASE WHEN first_diff_node IS NULL OR stable_trace IS NULL OR candidate_trace IS NULL THEN NULL
	WHEN NOT candidate_trace @> jsonb_build_object('nodes', jsonb_build_array(jsonb_build_object('node', first_diff_node))) THEN 'stable'
	WHEN NOT stable_trace @> jsonb_build_object('nodes', jsonb_build_array(jsonb_build_object('node', first_diff_node))) THEN 'candidate'
	END`

// Mismatch is one recorded difference in full.
type Mismatch struct {
	MismatchSummary
	SiteID           string          `json:"site_id"`
	StableFlow       string          `json:"stable_flow"`
	StableVersion    int             `json:"stable_version"`
	CandidateFlow    string          `json:"candidate_flow"`
	CandidateVersion int             `json:"candidate_version"`
	Stable           json.RawMessage `json:"stable"`
	Candidate        json.RawMessage `json:"candidate"`
	StableTrace      json.RawMessage `json:"stable_trace"`
	CandidateTrace   json.RawMessage `json:"candidate_trace"`
}

func rate(num, den int) *float64 {
	if den == 0 {
		return nil
	}
	r := float64(num) / float64(den)
	return &r
}

// Reconciliation builds a site's report from PostgreSQL.
func (s *Service) Reconciliation(ctx context.Context, site string, since time.Time) (Report, error) {
	rep := Report{SiteID: site, Since: since, ByStep: map[string]int{}, Series: []SeriesPoint{}, Recent: []MismatchSummary{}}
	rows, err := s.db.Query(ctx, `SELECT source, minute, comparisons, mismatches, drops FROM reconciliation_counts
		WHERE site_id = $1 AND minute >= date_trunc('minute', $2::timestamptz) ORDER BY minute`, site, since)
	if err != nil {
		return Report{}, fmt.Errorf("sorting: reconciliation counts: %w", err)
	}
	var offline SourceCounts
	for rows.Next() {
		var source string
		var p SeriesPoint
		if err := rows.Scan(&source, &p.Minute, &p.Comparisons, &p.Mismatches, &p.Drops); err != nil {
			rows.Close()
			return Report{}, err
		}
		switch source {
		case "shadow":
			rep.Comparisons += p.Comparisons
			rep.Mismatches += p.Mismatches
			rep.Drops += p.Drops
			rep.Series = append(rep.Series, p)
		case "noise":
			rep.Noise.Comparisons += p.Comparisons
			rep.Noise.Mismatches += p.Mismatches
		case "offline":
			offline.Comparisons += p.Comparisons
			offline.Mismatches += p.Mismatches
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return Report{}, err
	}
	rep.Matches = rep.Comparisons - rep.Mismatches
	rep.MatchRate = rate(rep.Matches, rep.Comparisons)
	rep.Noise.Rate = rate(rep.Noise.Mismatches, rep.Noise.Comparisons)
	if offline.Comparisons > 0 {
		rep.Offline = &offline
	}
	steps, err := s.db.Query(ctx, `SELECT coalesce(first_diff_node, 'unknown'), count(*) FROM reconciliation_mismatches
		WHERE site_id = $1 AND created_at >= $2 AND source = 'shadow' GROUP BY 1`, site, since)
	if err != nil {
		return Report{}, err
	}
	for steps.Next() {
		var node string
		var n int
		if err := steps.Scan(&node, &n); err != nil {
			steps.Close()
			return Report{}, err
		}
		rep.ByStep[node] = n
	}
	steps.Close()
	recent, err := s.db.Query(ctx, `SELECT id::text, source, tracking_no, first_diff_node, first_diff_key, `+onlyInSQL+`, created_at
		FROM reconciliation_mismatches WHERE site_id = $1 AND created_at >= $2 ORDER BY created_at DESC LIMIT 100`, site, since)
	if err != nil {
		return Report{}, err
	}
	rep.Recent, err = pgx.CollectRows(recent, pgx.RowToStructByPos[MismatchSummary])
	if err != nil {
		return Report{}, err
	}
	return rep, nil
}

// Mismatch returns one recorded mismatch.
func (s *Service) Mismatch(ctx context.Context, id string) (Mismatch, error) {
	var m Mismatch
	err := s.db.QueryRow(ctx, `SELECT id::text, source, tracking_no, first_diff_node, first_diff_key, `+onlyInSQL+`, created_at, site_id,
		stable_flow, stable_version, candidate_flow, candidate_version, stable, candidate,
		coalesce(stable_trace, 'null'::jsonb), coalesce(candidate_trace, 'null'::jsonb)
		FROM reconciliation_mismatches WHERE id::text = $1`, id).Scan(&m.ID, &m.Source, &m.TrackingNo, &m.FirstDiffNode,
		&m.FirstDiffKey, &m.FirstDiffOnlyIn, &m.CreatedAt, &m.SiteID, &m.StableFlow, &m.StableVersion, &m.CandidateFlow, &m.CandidateVersion,
		&m.Stable, &m.Candidate, &m.StableTrace, &m.CandidateTrace)
	if errors.Is(err, pgx.ErrNoRows) {
		return Mismatch{}, ErrMismatchNotFound
	}
	if err != nil {
		return Mismatch{}, fmt.Errorf("sorting: mismatch %s: %w", id, err)
	}
	return m, nil
}

// OfflineRequest asks for a candidate to be checked against a site's stored
// sorts before shadow is turned on.
type OfflineRequest struct {
	SiteID           string
	CandidateFlow    string
	CandidateVersion int
	Since            time.Time
	Limit            int // parcels at most (default 2000, max 20000)
	Parallel         int // candidate runs at once (default 8)
	// Fence, when set, is called first in every transaction that writes
	// the run's mismatches and counts; its error aborts the write and the
	// run. A singleton job passes its lease's guard, so an instance that
	// lost the lease writes nothing.
	Fence Fence
}

// Fence checks, inside a writer's transaction, that the writer may still
// write (see package station/lease).
type Fence func(ctx context.Context, tx pgx.Tx) error

// reconWriter is a pool or a transaction: where reconciliation rows go.
type reconWriter interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// write runs fn on the pool, or in a transaction behind the fence.
func (s *Service) write(ctx context.Context, fence Fence, fn func(w reconWriter) error) error {
	if fence == nil {
		return fn(s.db)
	}
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := fence(ctx, tx); err != nil {
			return fmt.Errorf("sorting: offline: fenced: %w", err)
		}
		return fn(tx)
	})
}

// OfflineReport is what an offline reconciliation found.
type OfflineReport struct {
	SiteID      string         `json:"site_id"`
	Candidate   string         `json:"candidate"`
	Parcels     int            `json:"parcels"`
	Comparisons int            `json:"comparisons"`
	Mismatches  int            `json:"mismatches"`
	MatchRate   *float64       `json:"match_rate"`
	ByStep      map[string]int `json:"by_step"`
}

// Offline re-runs a candidate in dry run over the site's stored sort results
// (the newest per parcel since req.Since) and records the comparison like a
// shadow run would, as source "offline".
func (s *Service) Offline(ctx context.Context, req OfflineRequest) (OfflineReport, error) {
	candidate, err := s.router.flows.Version(req.CandidateFlow, req.CandidateVersion)
	if err != nil {
		return OfflineReport{}, err
	}
	if req.Limit <= 0 {
		req.Limit = 2000
	}
	req.Limit = min(req.Limit, 20000)
	if req.Parallel <= 0 {
		req.Parallel = 8
	}
	rows, err := s.db.Query(ctx, `SELECT DISTINCT ON (tracking_no) tracking_no, next_hop, chute, exception_code, flow, flow_version
		FROM sort_results WHERE station_id = $1 AND created_at >= $2 ORDER BY tracking_no, created_at DESC LIMIT $3`,
		req.SiteID, req.Since, req.Limit)
	if err != nil {
		return OfflineReport{}, fmt.Errorf("sorting: offline: %w", err)
	}
	type stored struct {
		tn      string
		nextHop *string
		chute   int
		code    *string
		flow    string
		version int
	}
	parcels, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
		var p stored
		err := r.Scan(&p.tn, &p.nextHop, &p.chute, &p.code, &p.flow, &p.version)
		return p, err
	})
	if err != nil {
		return OfflineReport{}, err
	}
	rep := OfflineReport{SiteID: req.SiteID, Candidate: fmt.Sprintf("%s v%d", candidate.Name, candidate.Version), Parcels: len(parcels), ByStep: map[string]int{}}
	var mu sync.Mutex
	counts := map[countKey]*count{}
	minute := time.Now().UTC().Truncate(time.Minute)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(req.Parallel)
	for _, p := range parcels {
		g.Go(func() error {
			tn := ident.TrackingNo(p.tn)
			was := Result{NextHop: p.nextHop, Chute: p.chute}
			if p.code != nil {
				was.Exception = &Exception{Code: *p.code}
			}
			now, nowRun := s.run(gctx, candidate, req.SiteID, tn, dagDryRun(candidate))
			same := Same(was, now)
			if !same {
				// Re-run the stored flow to find the first step that differs;
				// the stored answer stays what is compared.
				if stable, err := s.router.flows.Version(p.flow, p.version); err == nil {
					r, wasRun := s.run(gctx, stable, req.SiteID, tn, dagDryRun(stable))
					r.NextHop, r.Chute, r.Exception = was.NextHop, was.Chute, was.Exception
					err := s.write(gctx, req.Fence, func(w reconWriter) error {
						return recordMismatch(gctx, w, "offline", req.SiteID, tn, stable, candidate, r, wasRun, now, nowRun)
					})
					if err != nil {
						return err
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			k := countKey{site: req.SiteID, source: "offline", minute: minute}
			if counts[k] == nil {
				counts[k] = &count{}
			}
			counts[k].comparisons++
			rep.Comparisons++
			if !same {
				counts[k].mismatches++
				rep.Mismatches++
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return OfflineReport{}, err
	}
	if err := s.write(ctx, req.Fence, func(w reconWriter) error { return writeCounts(ctx, w, counts) }); err != nil {
		return OfflineReport{}, err
	}
	rep.MatchRate = rate(rep.Comparisons-rep.Mismatches, rep.Comparisons)
	steps, err := s.db.Query(ctx, `SELECT coalesce(first_diff_node, 'unknown'), count(*) FROM reconciliation_mismatches
		WHERE site_id = $1 AND source = 'offline' AND created_at >= $2 GROUP BY 1`, req.SiteID, minute)
	if err == nil {
		for steps.Next() {
			var node string
			var n int
			if steps.Scan(&node, &n) == nil {
				rep.ByStep[node] = n
			}
		}
		steps.Close()
	}
	return rep, nil
}

// OfflineSweep runs Offline for every site whose release rule compares a
// candidate (mode shadow or split), over the stored sorts since since: the
// scheduled reconciliation. A site that fails is reported in the joined
// error and the others still run; once ctx ends (the job's lease lost,
// shutdown) the sweep stops.
func (s *Service) OfflineSweep(ctx context.Context, since time.Time, fence Fence) ([]OfflineReport, error) {
	rows, err := s.db.Query(ctx, `SELECT site_id, candidate_flow, candidate_version FROM release_rules
		WHERE mode IN ('shadow', 'split') AND candidate_flow IS NOT NULL AND candidate_version IS NOT NULL ORDER BY site_id`)
	if err != nil {
		return nil, fmt.Errorf("sorting: offline sweep: %w", err)
	}
	sites, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OfflineRequest, error) {
		req := OfflineRequest{Since: since, Fence: fence}
		err := r.Scan(&req.SiteID, &req.CandidateFlow, &req.CandidateVersion)
		return req, err
	})
	if err != nil {
		return nil, fmt.Errorf("sorting: offline sweep: %w", err)
	}
	var reports []OfflineReport
	var errs []error
	for _, req := range sites {
		rep, err := s.Offline(ctx, req)
		if err != nil {
			err = fmt.Errorf("site %s, candidate %s v%d: %w", req.SiteID, req.CandidateFlow, req.CandidateVersion, err)
			if ctx.Err() != nil {
				return reports, err
			}
			errs = append(errs, err)
			continue
		}
		reports = append(reports, rep)
	}
	return reports, errors.Join(errs...)
}
