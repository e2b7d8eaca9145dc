package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/sorting"
)

// TestWhatifCommandReplaysAnUploadAgainstACandidate runs `station whatif`
// over an NDJSON file, with the candidate flow run against the simulator,
// as a table and as CSV.
func TestWhatifCommandReplaysAnUploadAgainstACandidate(t *testing.T) {
	url := dbtest.URL(t)
	s := simtest.Start(t, simtest.WithZeroLatency())
	ctx := context.Background()
	db, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	live := sorting.NumberedChuteMap(s.Fixtures().NextHops("SG-H01"))
	raw, _ := json.Marshal(live)
	if _, err := db.Exec(ctx, `INSERT INTO chute_maps (station_id, version, map, updated_by) VALUES ('SG-H01', 1, $1, 'test')`, raw); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var nd strings.Builder
	for i := range 5 {
		tn := sim.TrackingNo("SG", sim.Normal, i)
		fmt.Fprintf(&nd, `{"kind":"sort","at":"2026-12-07T08:00:0%dZ","tracking_no":%q}`+"\n", i, tn)
	}
	scans := filepath.Join(dir, "scans.ndjson")
	if err := os.WriteFile(scans, []byte(nd.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"whatif", "--station", "SG-H01", "--ndjson", scans, "--flow", "full_v2@1",
		"--database-url", url, "--downstream-addr", s.Addr()}
	var out bytes.Buffer
	if err := run(ctx, args, strings.NewReader(""), &out); err != nil {
		t.Fatalf("whatif: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "5 parcels (0 recorded answers, 5 rerun)") || !strings.Contains(out.String(), "late decisions, flow full_v2@1") {
		t.Fatalf("whatif printed:\n%s", out.String())
	}
	// A fresh database holds no traces of full_v2: no share to predict, only
	// the worst case.
	if !strings.Contains(out.String(), "no recorded traces of this flow") || strings.Contains(out.String(), "predicted late") {
		t.Fatalf("whatif's late line without traces:\n%s", out.String())
	}
	out.Reset()
	if err := run(ctx, append(args, "--csv"), strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), "chute,kind,next_hop,actual_parcels,") {
		t.Fatalf("csv:\n%s", out.String())
	}
	if err := run(ctx, []string{"whatif", "--station", "SG-H01", "--flow", "full", "--database-url", url}, strings.NewReader(""), &out); err == nil ||
		!strings.Contains(err.Error(), "NAME@VERSION") {
		t.Fatalf("a flow without a version: %v", err)
	}
}
