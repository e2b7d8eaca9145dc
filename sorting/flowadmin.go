package sorting

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/expresshub/station/fault"
)

// ErrFlowVersionNotFound: no such stored flow version.
var ErrFlowVersionNotFound = fault.New(fault.NotFound, "flow_not_found", "no such flow version")

// FlowVersion is one stored version with who published it and when, and its
// difference to the version before it: what the ops page shows.
type FlowVersion struct {
	Name      string     `json:"name"`
	Version   int        `json:"version"`
	Config    string     `json:"config"`
	CreatedBy string     `json:"created_by"`
	CreatedAt time.Time  `json:"created_at"`
	Previous  int        `json:"previous,omitempty"` // 0: the first version
	Diff      []DiffLine `json:"diff"`
	Versions  []int      `json:"versions"` // every stored version of the flow
}

// DiffLine is one line of a line diff: Op is " " (kept), "-" (only in the
// previous version) or "+" (only in this one).
type DiffLine struct {
	Op   string `json:"op"`
	Line string `json:"line"`
}

// FlowVersion reads a stored version (0: the newest) and diffs it against
// the one before.
func (s *FlowSet) FlowVersion(ctx context.Context, name string, version int) (FlowVersion, error) {
	rows, err := s.db.Query(ctx, `SELECT version, config, created_by, created_at FROM sorting_flows WHERE name = $1 ORDER BY version`, name)
	if err != nil {
		return FlowVersion{}, fmt.Errorf("sorting: flow versions: %w", err)
	}
	type stored struct {
		version   int
		config    string
		createdBy string
		createdAt time.Time
	}
	all, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (stored, error) {
		var st stored
		err := r.Scan(&st.version, &st.config, &st.createdBy, &st.createdAt)
		return st, err
	})
	if err != nil {
		return FlowVersion{}, fmt.Errorf("sorting: flow versions: %w", err)
	}
	if len(all) == 0 {
		return FlowVersion{}, ErrFlowVersionNotFound.With(nil, "flow %q has no stored version", name)
	}
	if version == 0 {
		version = all[len(all)-1].version
	}
	out := FlowVersion{Name: name, Version: version}
	prev := ""
	found := false
	for _, st := range all {
		out.Versions = append(out.Versions, st.version)
		if st.version < version {
			prev, out.Previous = st.config, st.version
		}
		if st.version == version {
			out.Config, out.CreatedBy, out.CreatedAt, found = st.config, st.createdBy, st.createdAt, true
		}
	}
	if !found {
		return FlowVersion{}, ErrFlowVersionNotFound.With(nil, "flow %q has no version %d", name, version)
	}
	out.Diff = diffLines(prev, out.Config)
	return out, nil
}

// diffLines is a line diff by longest common subsequence: flows are a page
// of YAML, so the quadratic table is small.
func diffLines(a, b string) []DiffLine {
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	}
	x, y := split(a), split(b)
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	out := []DiffLine{}
	i, j := 0, 0
	for i < len(x) && j < len(y) {
		switch {
		case x[i] == y[j]:
			out = append(out, DiffLine{" ", x[i]})
			i, j = i+1, j+1
		case lcs[i+1][j] >= lcs[i][j+1]:
			out = append(out, DiffLine{"-", x[i]})
			i++
		default:
			out = append(out, DiffLine{"+", y[j]})
			j++
		}
	}
	for ; i < len(x); i++ {
		out = append(out, DiffLine{"-", x[i]})
	}
	for ; j < len(y); j++ {
		out = append(out, DiffLine{"+", y[j]})
	}
	return out
}

// FlowAuditEntry is one publication or market assignment.
type FlowAuditEntry struct {
	ID        int64           `json:"id"`
	Subject   string          `json:"subject"`
	Action    string          `json:"action"`
	Actor     string          `json:"actor"`
	Reason    string          `json:"reason"`
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	CreatedAt time.Time       `json:"created_at"`
}

// FlowAudit lists publications and assignments, newest first; subject ""
// means all.
func (s *FlowSet) FlowAudit(ctx context.Context, subject string, limit int) ([]FlowAuditEntry, error) {
	rows, err := s.db.Query(ctx, `SELECT id, subject, action, actor, reason, coalesce(before, 'null'::jsonb), after, created_at
		FROM flow_audit WHERE $1 = '' OR subject = $1 ORDER BY id DESC LIMIT $2`, subject, limit)
	if err != nil {
		return nil, fmt.Errorf("sorting: flow audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowToStructByPos[FlowAuditEntry])
	if errors.Is(err, pgx.ErrNoRows) {
		return []FlowAuditEntry{}, nil
	}
	return out, err
}
