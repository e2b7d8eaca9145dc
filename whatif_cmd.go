package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/whatif"
	"github.com/expresshub/station/station/config"
)

// whatifCmd is `station whatif`: a replay of a station's recorded window
// (or an NDJSON file of scans) against a candidate chute map and/or flow
// version, printed as a table (or the per-chute CSV). It writes nothing.
func whatifCmd(run func(cmd *cobra.Command, in whatif.Input, c whatif.Candidate) (whatif.Report, error)) *cobra.Command {
	var station, from, to, chuteMap, flow, ndjson, bagSwap string
	var asCSV bool
	cmd := &cobra.Command{
		Use:   "whatif",
		Short: "Replay a station's recorded scans against a candidate chute map or flow version (a dry run: nothing is written)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := whatif.Input{Station: strings.ToUpper(strings.TrimSpace(station))}
			var c whatif.Candidate
			end := time.Now().UTC()
			in.To, in.From = end, end.Add(-24*time.Hour)
			var err error
			if to != "" {
				if in.To, err = time.Parse(time.RFC3339, to); err != nil {
					return fmt.Errorf("%w: --to: %v", config.ErrInvalid, err)
				}
				in.From = in.To.Add(-24 * time.Hour)
			}
			if from != "" {
				if in.From, err = time.Parse(time.RFC3339, from); err != nil {
					return fmt.Errorf("%w: --from: %v", config.ErrInvalid, err)
				}
			}
			if bagSwap != "" {
				if in.BagSwap, err = time.ParseDuration(bagSwap); err != nil || in.BagSwap <= 0 {
					return whatif.ErrInvalidBagSwap
				}
			}
			if chuteMap != "" {
				raw, err := readFileLimited(chuteMap, maxChuteMapFile)
				if err != nil {
					return err
				}
				var m sorting.ChuteMap
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(&m); err != nil {
					return fmt.Errorf("%w: --chute-map %s: %v", sorting.ErrInvalidChuteMap, chuteMap, err)
				}
				c.ChuteMap = &m
			}
			if flow != "" {
				ref, err := whatif.ParseFlowRef(flow)
				if err != nil {
					return err
				}
				c.Flow = &ref
			}
			if ndjson != "" {
				f, err := os.Open(ndjson)
				if err != nil {
					return err
				}
				in.Scans, err = whatif.ParseNDJSON(f, 200_000)
				_ = f.Close()
				if err != nil {
					return err
				}
				if in.Scans == nil {
					in.Scans = []whatif.Scan{}
				}
			}
			rep, err := run(cmd, in, c)
			if err != nil {
				return err
			}
			if asCSV {
				return rep.WriteCSV(cmd.OutOrStdout())
			}
			return printReport(cmd.OutOrStdout(), rep)
		},
	}
	f := cmd.Flags()
	f.StringVar(&station, "station", "", "the station whose scans are replayed, e.g. SG-H01")
	f.StringVar(&from, "from", "", "start of the recorded window, RFC 3339 (default: 24h before --to)")
	f.StringVar(&to, "to", "", "end of the recorded window, RFC 3339 (default: now)")
	f.StringVar(&chuteMap, "chute-map", "", "candidate chute map: a JSON file, the shape PUT /api/v1/stations/{id}/chutes takes")
	f.StringVar(&flow, "flow", "", "candidate flow version, NAME@VERSION (e.g. full_v2@1)")
	f.StringVar(&ndjson, "ndjson", "", "replay these scans (NDJSON, one scan a line; see README) instead of the recorded window")
	f.StringVar(&bagSwap, "bag-swap", "", "time from a full bag to a new one under the chute (default 5m)")
	f.BoolVar(&asCSV, "csv", false, "print the per-chute CSV instead of the table")
	return cmd
}

// printReport prints the per-chute table, the exceptions, the first
// differences and the late-decision prediction.
func printReport(out io.Writer, rep whatif.Report) error {
	fmt.Fprintf(out, "what-if at %s, %s to %s: %d scans, %d received, %d parcels (%d recorded answers, %d rerun)\n",
		rep.Station, rep.From.Format(time.RFC3339), rep.To.Format(time.RFC3339), rep.Scans, rep.Received, rep.Parcels, rep.Recorded, rep.Rerun)
	fmt.Fprintf(out, "bag limits %d parcels / %.1f kg, bag swap %s\n\n", rep.Limits.MaxParcels, float64(rep.Limits.MaxGrams)/1000,
		time.Duration(rep.BagSwapSeconds*float64(time.Second)))
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CHUTE\tKIND\tNEXT HOP\tPARCELS\tPEAK\tPEAK KG\tBAGS\tFULL AT\tOVERFLOW\t|\tPARCELS\tPEAK\tPEAK KG\tBAGS\tFULL AT\tOVERFLOW")
	side := func(f whatif.ChuteFill) string {
		full := "-"
		if f.FullAt != nil {
			full = f.FullAt.UTC().Format("15:04:05")
		}
		return fmt.Sprintf("%d\t%d\t%.1f\t%d\t%s\t%d", f.Parcels, f.PeakParcels, f.PeakKg, f.Bags, full, f.Overflow)
	}
	for _, c := range rep.Chutes {
		if c.Actual.Parcels == 0 && c.Candidate.Parcels == 0 && c.Actual.Overflow == 0 && c.Candidate.Overflow == 0 {
			continue
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t|\t%s\n", c.Chute, c.Kind, c.NextHop, side(c.Actual), side(c.Candidate))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out, "(actual | candidate)")
	codes := map[string]bool{}
	for k := range rep.Exceptions.Actual {
		codes[k] = true
	}
	for k := range rep.Exceptions.Candidate {
		codes[k] = true
	}
	if len(codes) > 0 {
		keys := make([]string, 0, len(codes))
		for k := range codes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fmt.Fprintln(out, "\nexceptions (actual → candidate):")
		for _, k := range keys {
			fmt.Fprintf(out, "  %-24s %d → %d\n", k, rep.Exceptions.Actual[k], rep.Exceptions.Candidate[k])
		}
	}
	fmt.Fprintf(out, "\n%d parcels would go elsewhere\n", rep.DiffCount)
	for i, d := range rep.Differences {
		if i == 20 {
			fmt.Fprintf(out, "  ... (%d more in the JSON report)\n", rep.DiffCount-20)
			break
		}
		fmt.Fprintf(out, "  %s  %s  %s → %s\n", d.TrackingNo, d.At.UTC().Format("15:04:05"), outcomeText(d.Actual), outcomeText(d.Candidate))
	}
	if l := rep.Late; l != nil {
		fmt.Fprintf(out, "\nlate decisions, flow %s@%d: critical path %.1f ms (%s) against the belt's %.0f ms; ",
			l.Flow.Name, l.Flow.Version, l.CriticalPathMs, strings.Join(l.CriticalPath, " → "), l.DeadlineMs)
		switch {
		case l.Samples > 0:
			fmt.Fprintf(out, "predicted late %.1f%% (over %d recorded traces)\n", 100*l.PredictedLate, l.Samples)
		case l.CriticalPastLine:
			fmt.Fprintln(out, "no recorded traces of this flow; with every step at its timeout it would be late")
		default:
			fmt.Fprintln(out, "no recorded traces of this flow; even with every step at its timeout it would be in time")
		}
	}
	return nil
}

func outcomeText(o whatif.Outcome) string {
	switch {
	case o.Exception != "":
		return fmt.Sprintf("chute %d (%s)", o.Chute, o.Exception)
	default:
		return fmt.Sprintf("chute %d (%s)", o.Chute, o.NextHop)
	}
}
