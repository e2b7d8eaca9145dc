package decisionlog

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/fault"
)

// ErrInvalidWindow is a report window that is empty, reversed or too long.
var ErrInvalidWindow = fault.New(fault.Invalid, "invalid_window", "invalid report window")

// MaxWindow bounds a report's window: the table keeps days, and a report
// reads every decision of its window.
const MaxWindow = 31 * 24 * time.Hour

// recirculationWithin is how long after a late answer the parcel coming
// round again (a re-Resolve, or a Confirm RECIRCULATED) counts as the
// recirculation that late answer caused.
const recirculationWithin = time.Hour

// SorterReport is one sorter's decisions over a window.
type SorterReport struct {
	SorterID  string  `json:"sorter_id"`
	Decisions int64   `json:"decisions"`
	Late      int64   `json:"late"`
	LateRate  float64 `json:"late_rate"`
	// The source mix: counts and shares of the decisions.
	Presorted      int64   `json:"presorted"`
	OnTheFly       int64   `json:"on_the_fly"`
	Fallback       int64   `json:"fallback"`
	PresortedShare float64 `json:"presorted_share"`
	OnTheFlyShare  float64 `json:"on_the_fly_share"`
	FallbackShare  float64 `json:"fallback_share"`
	// RecirculatedAfterLate counts late decisions whose parcel came round
	// again: resolved again, or reported recirculated, within an hour.
	RecirculatedAfterLate int64   `json:"recirculated_after_late"`
	LatencyP50Ms          float64 `json:"latency_p50_ms"`
	LatencyP99Ms          float64 `json:"latency_p99_ms"`
}

// Report is a station's belt decisions per sorter over [From, To).
type Report struct {
	StationID string         `json:"station_id"`
	From      time.Time      `json:"from"`
	To        time.Time      `json:"to"`
	Sorters   []SorterReport `json:"sorters"`
}

// Report reads the per-sorter report of station over [from, to). Decisions
// still in the buffer (at most FlushEvery old) are not in it yet.
func (r *Recorder) Report(ctx context.Context, station string, from, to time.Time) (Report, error) {
	if !from.Before(to) {
		return Report{}, fmt.Errorf("%w: from must be before to", ErrInvalidWindow)
	}
	if to.Sub(from) > MaxWindow {
		return Report{}, fmt.Errorf("%w: at most %d days", ErrInvalidWindow, int(MaxWindow.Hours()/24))
	}
	// recorded_at (the partition key) is at or after decided_at, and a row
	// is written within seconds of its decision: the bounds on it let the
	// planner skip the days outside the window.
	rows, err := r.db.Query(ctx, `
		WITH d AS (
		  SELECT sorter_id, tracking_no, source, late, latency_us, decided_at
		    FROM belt_decisions
		   WHERE station_id = $1 AND decided_at >= $2 AND decided_at < $3
		     AND recorded_at >= $2 AND recorded_at < $3 + $4::interval
		), again AS MATERIALIZED (
		  -- The later decisions of the parcels answered late, in one pass
		  -- over the window and the hour after it (no index per parcel:
		  -- the table takes a row per Resolve and is kept cheap to write).
		  SELECT n.tracking_no, n.decided_at
		    FROM belt_decisions n
		   WHERE n.station_id = $1 AND n.decided_at > $2 AND n.decided_at < $3 + $4::interval
		     AND n.recorded_at >= $2 AND n.recorded_at < $3 + 2 * $4::interval
		     AND n.tracking_no IN (SELECT tracking_no FROM d WHERE late)
		), r AS (
		  SELECT d.*, CASE WHEN NOT d.late THEN false ELSE
		           EXISTS (SELECT 1 FROM again n
		                    WHERE n.tracking_no = d.tracking_no
		                      AND n.decided_at > d.decided_at AND n.decided_at <= d.decided_at + $4::interval)
		        OR EXISTS (SELECT 1 FROM sorter_confirms c
		                    WHERE c.station_id = $1 AND c.tracking_no = d.tracking_no AND c.outcome = 'recirculated'
		                      AND c.created_at >= d.decided_at AND c.created_at <= d.decided_at + $4::interval)
		         END AS recirculated
		    FROM d
		)
		SELECT sorter_id, count(*), count(*) FILTER (WHERE late),
		       count(*) FILTER (WHERE source = 'presorted'), count(*) FILTER (WHERE source = 'on_the_fly'),
		       count(*) FILTER (WHERE source = 'fallback'), count(*) FILTER (WHERE recirculated),
		       percentile_disc(0.5) WITHIN GROUP (ORDER BY latency_us),
		       percentile_disc(0.99) WITHIN GROUP (ORDER BY latency_us)
		  FROM r GROUP BY sorter_id ORDER BY sorter_id`,
		station, from, to, recirculationWithin)
	if err != nil {
		return Report{}, fmt.Errorf("decisionlog: report %s: %w", station, err)
	}
	sorters, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (SorterReport, error) {
		var s SorterReport
		var p50, p99 int64
		err := row.Scan(&s.SorterID, &s.Decisions, &s.Late, &s.Presorted, &s.OnTheFly, &s.Fallback,
			&s.RecirculatedAfterLate, &p50, &p99)
		n := float64(s.Decisions)
		s.LateRate = float64(s.Late) / n
		s.PresortedShare, s.OnTheFlyShare, s.FallbackShare = float64(s.Presorted)/n, float64(s.OnTheFly)/n, float64(s.Fallback)/n
		s.LatencyP50Ms, s.LatencyP99Ms = float64(p50)/1000, float64(p99)/1000
		return s, err
	})
	if err != nil {
		return Report{}, fmt.Errorf("decisionlog: report %s: %w", station, err)
	}
	return Report{StationID: station, From: from, To: to, Sorters: sorters}, nil
}
