package belt

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/expresshub/station/dag"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
	"golang.org/x/sync/errgroup"
)

// InvalidBatchError lists the malformed tracking numbers of a pre-sort
// batch by their index; the whole batch is refused and nothing stored.
type InvalidBatchError struct {
	Problems map[int]string // index in the batch -> why
}

func (e *InvalidBatchError) Error() string {
	idx := e.Indexes()
	parts := make([]string, 0, min(len(idx), 5))
	for _, i := range idx[:min(len(idx), 5)] {
		parts = append(parts, fmt.Sprintf("[%d] %s", i, e.Problems[i]))
	}
	return fmt.Sprintf("%d malformed tracking number(s): %s", len(idx), strings.Join(parts, "; "))
}

func (e *InvalidBatchError) Unwrap() error { return ident.ErrInvalidTrackingNo }

// Indexes are the bad indexes in ascending order.
func (e *InvalidBatchError) Indexes() []int {
	idx := make([]int, 0, len(e.Problems))
	for i := range e.Problems {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return idx
}

// maxReportedProblems bounds an InvalidBatchError: a batch of garbage says
// enough in its first hundred entries.
const maxReportedProblems = 100

// PreSort sorts a batch ahead of time through each parcel's normal flow,
// with bounded parallelism, and stores the answers for Resolve. It returns
// one decision per tracking number, in order, and when the answers expire.
// A parcel whose sort could not reach a dependency is answered with the
// reject chute and not stored (Resolve sorts it again). A batch with a
// malformed tracking number is refused whole (*InvalidBatchError).
func (b *Service) PreSort(ctx context.Context, station string, raw []string) ([]Decision, time.Time, error) {
	switch {
	case len(raw) == 0:
		return nil, time.Time{}, ErrEmptyBatch
	case len(raw) > b.cfg.MaxBatch:
		return nil, time.Time{}, fmt.Errorf("%w: %d tracking numbers, at most %d", ErrBatchTooLarge, len(raw), b.cfg.MaxBatch)
	}
	tns := make([]ident.TrackingNo, len(raw))
	var bad *InvalidBatchError
	for i, s := range raw {
		tn, err := ident.ParseTrackingNo(s)
		if err != nil {
			if bad == nil {
				bad = &InvalidBatchError{Problems: map[int]string{}}
			}
			if len(bad.Problems) < maxReportedProblems {
				bad.Problems[i] = err.Error()
			}
			continue
		}
		tns[i] = tn
	}
	if bad != nil {
		return nil, time.Time{}, bad
	}
	m, err := b.router.Chutes().Get(ctx, station)
	if err != nil {
		return nil, time.Time{}, err
	}
	if _, err := b.router.Flows().ForStation(station); err != nil {
		return nil, time.Time{}, err
	}

	unique := make([]ident.TrackingNo, 0, len(tns))
	seen := make(map[ident.TrackingNo]int, len(tns))
	for _, tn := range tns {
		if _, ok := seen[tn]; !ok {
			seen[tn] = len(unique)
			unique = append(unique, tn)
		}
	}
	start := b.now().Truncate(time.Millisecond)
	results := make([]sorting.Result, len(unique))
	todo := make([]int, len(unique))
	for i := range todo {
		todo[i] = i
	}
	// Pre-sorting is ahead of time: a parcel whose sort met a transient
	// failure gets one more try, at the end, before it is left to the belt.
	for attempt := 0; attempt < 2 && len(todo) > 0 && ctx.Err() == nil; attempt++ {
		var g errgroup.Group
		g.SetLimit(b.cfg.Parallelism)
		for _, i := range todo {
			tn := unique[i]
			g.Go(func() error {
				flow, err := b.flowFor(station, tn)
				if err != nil {
					results[i] = sorting.Result{TrackingNo: string(tn), Exception: &sorting.Exception{Code: sorting.CodeDownstreamUnavailable, Reason: "no flow"}}
					return nil
				}
				results[i], _ = b.router.Run(ctx, flow, station, tn, dag.Options{Sequential: flow.Sequential})
				return nil
			})
		}
		_ = g.Wait() // the goroutines never fail: every parcel gets a result
		var again []int
		for _, i := range todo {
			if !storable(results[i]) {
				again = append(again, i)
			}
		}
		todo = again
	}

	entries := make([]entry, len(unique))
	keep := make([]keyedEntry, 0, len(unique))
	for i, r := range results {
		entries[i] = entryOf(r, sourcePresort, start, b.cfg.TTL)
		if storable(r) {
			keep = append(keep, keyedEntry{tn: unique[i], e: entries[i]})
		}
	}
	if _, err := b.store(ctx, station, keep); err != nil {
		return nil, time.Time{}, err
	}
	full, _ := b.fullChutesOrNone(ctx, station)
	out := make([]Decision, len(tns))
	for i, tn := range tns {
		j := seen[tn]
		if r := results[j]; !storable(r) {
			out[i] = reject(tn, m.ChuteMap, r.Exception.Code, r.Exception.Reason)
			continue
		}
		out[i] = decide(tn, m.ChuteMap, full, entries[j], FromPresort)
	}
	return out, start.Add(b.cfg.TTL), nil
}
