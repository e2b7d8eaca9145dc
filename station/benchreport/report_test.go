package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestGoalsParseAndJudge(t *testing.T) {
	for _, tc := range []struct {
		goal string
		v    float64
		met  bool
	}{
		{"< 100", 99.9, true}, {"< 100", 100, false}, {"<= 1.1", 1.1, true}, {"<= 1.1", 1.11, false},
		{">= 0.6", 0.6, true}, {"> 0.6", 0.6, false}, {">= 20,000", 19999, false}, {"700..800", 700, true},
		{"700..800", 800.1, false}, {"20..30", 19, false},
	} {
		g, err := ParseGoal(tc.goal)
		if err != nil {
			t.Fatal(err)
		}
		if g.Met(tc.v) != tc.met {
			t.Errorf("%q met by %v: %v, want %v", tc.goal, tc.v, !tc.met, tc.met)
		}
	}
	for _, bad := range []string{"about 5", "<", "1..x"} {
		if _, err := ParseGoal(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestShippedGoalsLoad(t *testing.T) {
	figs, err := LoadFigures(goalsYAML)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) < 20 {
		t.Fatalf("%d figures", len(figs))
	}
}

func TestReportJudgesValuesAndRatiosAndListsEveryResult(t *testing.T) {
	figs, err := LoadFigures([]byte(`
- section: S
  figure: engine
  value: {bench: Overhead/engine/n=10, metric: ns/node}
  baseline: {bench: Overhead/errgroup/n=10, metric: ns/node}
  goal: "< 1000"
  ratio_goal: "<= 1.3"
- section: S
  figure: throughput
  value: {bench: SortThroughput, metric: sorts/s}
  baseline: {bench: SortThroughput, metric: bare-inserts/s}
  ratio_goal: ">= 0.6"
- section: T
  figure: missing
  value: {bench: Nope, metric: x}
  goal: "< 1"
- section: T
  figure: informational
  value: {bench: SortThroughput, metric: sorts/s}
`))
	if err != nil {
		t.Fatal(err)
	}
	run, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	rows := Evaluate(figs, run)
	want := []string{"PASS", "MISS", "NOT RUN", ""}
	for i, r := range rows {
		if r.Status != want[i] {
			t.Errorf("%s: %q, want %q", r.Name, r.Status, want[i])
		}
	}
	if rows[1].Why != "ratio" || rows[1].Ratio < 0.126 || rows[1].Ratio > 0.128 {
		t.Fatalf("throughput row %+v", rows[1])
	}
	var buf bytes.Buffer
	m := Machine{CPU: "AMD EPYC", Cores: 2, GoVersion: "go1.26", OSArch: "linux/amd64", Date: time.Unix(0, 0), Command: "go test -bench ."}
	if err := Write(&buf, m, rows, run, "Some finding."); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, s := range []string{"| engine | 600.0 ns/node | 730.7 ns/node | 0.821 | < 1000; ratio <= 1.3 | PASS |",
		"**MISS** (ratio)", "| missing | — | — | — | < 1 | NOT RUN |", "## Findings\n\nSome finding.",
		"| station/e2e | SortThroughput | 1 |", "1 PASS, 1 MISS, 1 NOT RUN"} {
		if !strings.Contains(out, s) {
			t.Errorf("report lacks %q:\n%s", s, out)
		}
	}
}

func TestNumbersKeepAboutFourDigits(t *testing.T) {
	for v, want := range map[float64]string{28602.4: "28,602", 725.49: "725.5", 88.154: "88.15", 1.0061: "1.006", 0.00123: "0.00123", 0: "0.000"} {
		if got := num(v); got != want {
			t.Errorf("num(%v) = %q, want %q", v, got, want)
		}
	}
}
