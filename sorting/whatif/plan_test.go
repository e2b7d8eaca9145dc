package whatif

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/migrations/dbtest"
)

// TestTheWindowReadOnlyScansItsOwnDays: the scans are read through the
// partitioned parents with the window as the partition bound, so even the
// generic plan of the prepared statement (what pgx may keep) reads only
// the partitions of the window's days, whatever the tables hold.
func TestTheWindowReadOnlyScansItsOwnDays(t *testing.T) {
	ctx := context.Background()
	conn, err := dbtest.Pool(t).Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	now := time.Now().UTC()
	if _, err := conn.Exec(ctx, `SELECT history_partitions(t, ($1::timestamptz AT TIME ZONE 'UTC')::date - 3, ($1::timestamptz AT TIME ZONE 'UTC')::date + 3)
		FROM unnest(ARRAY['sort_results', 'work_orders']) AS t`, now); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SET plan_cache_mode = force_generic_plan"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "PREPARE scans(text, timestamptz, timestamptz, interval, int) AS "+scansSQL); err != nil {
		t.Fatal(err)
	}
	day := now.Truncate(24 * time.Hour)
	rows, err := conn.Query(ctx, fmt.Sprintf("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE scans('SG-H01', '%s', '%s', '1 hour', 1000)",
		day.Add(2*time.Hour).Format(time.RFC3339), day.Add(3*time.Hour).Format(time.RFC3339)))
	if err != nil {
		t.Fatal(err)
	}
	var plan []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, line)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	text := strings.Join(plan, "\n")
	scanned := map[string]bool{}
	for _, m := range regexp.MustCompile(`on (sort_results|work_orders)_p(\d{8}|_old)`).FindAllStringSubmatch(text, -1) {
		scanned[m[1]+"_p"+m[2]] = true
	}
	today := "_p" + day.Format("20060102")
	for p := range scanned {
		if !strings.HasSuffix(p, today) {
			t.Errorf("the window of %s reads partition %s:\n%s", day.Format(time.DateOnly), p, text)
		}
	}
	if !scanned["sort_results"+today] || !scanned["work_orders"+today] {
		t.Fatalf("the window's own partitions are not in the plan:\n%s", text)
	}
}
