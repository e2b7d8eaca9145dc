package main

import "testing"

// TestCoordinatorRaceIsToldFromAFinding: only a bare deadline at the
// fuzztime boundary is run again; a failing input, a failed property or any
// other failure stands.
func TestCoordinatorRaceIsToldFromAFinding(t *testing.T) {
	for _, c := range []struct {
		name, out string
		race      bool
	}{
		{"the coordinator's race", "fuzz: elapsed: 10s, execs: 248210 (0/sec)\n--- FAIL: FuzzParseTrackingNo (10.02s)\n    context deadline exceeded\nFAIL\nexit status 1\n", true},
		{"a failing input", "--- FAIL: FuzzParseTrackingNo (3.1s)\n    --- FAIL: FuzzParseTrackingNo (0.00s)\n        trackingno_test.go:40: round trip\n    Failing input written to testdata/fuzz/FuzzParseTrackingNo/0a1b\n", false},
		{"a property that timed out", "--- FAIL: FuzzScanBody (10.0s)\n        fuzz_test.go:88: POST /api/v1/sort: context deadline exceeded\n", false},
		{"a build failure", "# github.com/expresshub/station/ident\nident/ident.go:3:1: syntax error\nFAIL\n", false},
	} {
		if got := coordinatorRace(c.out); got != c.race {
			t.Errorf("%s: coordinatorRace = %v, want %v", c.name, got, c.race)
		}
	}
}
