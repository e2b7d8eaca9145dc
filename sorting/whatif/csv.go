package whatif

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// CSVHeader is the per-chute CSV's header: one row per chute, actual
// beside candidate.
var CSVHeader = []string{"chute", "kind", "next_hop",
	"actual_parcels", "actual_peak_parcels", "actual_peak_kg", "actual_bags", "actual_full_at", "actual_overflow",
	"candidate_parcels", "candidate_peak_parcels", "candidate_peak_kg", "candidate_bags", "candidate_full_at", "candidate_overflow"}

// WriteCSV writes the report's chutes as CSV.
func (rep Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	side := func(f ChuteFill) []string {
		full := ""
		if f.FullAt != nil {
			full = f.FullAt.UTC().Format(time.RFC3339)
		}
		return []string{strconv.Itoa(f.Parcels), strconv.Itoa(f.PeakParcels), strconv.FormatFloat(f.PeakKg, 'f', 3, 64),
			strconv.Itoa(f.Bags), full, strconv.Itoa(f.Overflow)}
	}
	for _, c := range rep.Chutes {
		row := append([]string{strconv.Itoa(c.Chute), string(c.Kind), c.NextHop}, side(c.Actual)...)
		if err := cw.Write(append(row, side(c.Candidate)...)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
