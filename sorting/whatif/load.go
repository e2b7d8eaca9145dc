package whatif

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// slack widens the partition bound of a joined table: a work order and its
// sort result are written in one statement, a moment apart at most.
const slack = time.Hour

// scansSQL reads a window's scans: $1 station, $2 from, $3 to, $4 the
// slack of the joined work orders' bound, $5 the row limit.
const scansSQL = `
		SELECT kind, at, tracking_no, coalesce(next_hop, ''), chute, coalesce(exception_code, ''), flow, flow_version, weight_g
		  FROM (
		SELECT CASE WHEN r.source = 'sorter' THEN 'confirm' ELSE 'sort' END AS kind, r.created_at AS at, r.tracking_no,
		       r.next_hop, r.chute, r.exception_code, r.flow, r.flow_version,
		       coalesce((SELECT (convert_from(w.response, 'UTF8')::jsonb->>'weight_g')::int
		                   FROM work_orders w
		                  WHERE w.id = r.work_order_id AND r.source = 'manual'
		                    AND w.created_at >= $2::timestamptz - $4::interval AND w.created_at < $3::timestamptz + $4::interval), 0) AS weight_g
		  FROM sort_results r
		 WHERE r.station_id = $1 AND r.recorded_at >= $2 AND r.recorded_at < $3
		UNION ALL
		SELECT 'receive', w.created_at, w.tracking_no, NULL, 0, CASE WHEN w.outcome = 'ok' THEN NULL ELSE w.outcome END, '', 0, 0
		  FROM work_orders w
		 WHERE w.station_id = $1 AND w.type = 'receive' AND w.created_at >= $2 AND w.created_at < $3 AND w.tracking_no IS NOT NULL
		) s ORDER BY at LIMIT $5`

// load reads the station's recorded scans in [from, to): sorts (terminal
// and pre-sort) and belt confirms from sort_results, receives from
// work_orders. Both tables are read through their partitioned parents
// with the partition key bounded, so only the window's days are scanned.
// A sort's weight is its answer's (the work order's stored response).
func (r *Replayer) load(ctx context.Context, station string, from, to time.Time) ([]Scan, error) {
	limit := r.cfg.MaxParcels + 1
	rows, err := r.db.Query(ctx, scansSQL, station, from, to, slack, limit)
	if err != nil {
		return nil, fmt.Errorf("whatif: read scans of %s: %w", station, err)
	}
	scans, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Scan, error) {
		var s Scan
		var kind string
		err := row.Scan(&kind, &s.At, &s.TrackingNo, &s.NextHop, &s.Chute, &s.Exception, &s.Flow, &s.FlowVersion, &s.WeightG)
		s.Kind = Kind(kind)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("whatif: read scans of %s: %w", station, err)
	}
	if len(scans) > r.cfg.MaxParcels {
		return nil, ErrTooManyParcels.With(map[string]any{"max": r.cfg.MaxParcels},
			"the window holds more than %d scans; replay a shorter one", r.cfg.MaxParcels)
	}
	return scans, nil
}
