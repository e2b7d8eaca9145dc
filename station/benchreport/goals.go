package main

import (
	_ "embed"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

//go:embed goals.yaml
var goalsYAML []byte

// Ref names one figure of the run: a benchmark (name without "Benchmark"
// and the -P suffix, e.g. "ManualSort/full") and one of its units.
type Ref struct {
	Bench  string `yaml:"bench"`
	Metric string `yaml:"metric"`
}

func (r Ref) String() string { return r.Bench + " " + r.Metric }

// Figure is one row of the goals table.
type Figure struct {
	Section   string `yaml:"section"`
	Name      string `yaml:"figure"`
	Value     Ref    `yaml:"value"`
	Baseline  *Ref   `yaml:"baseline"`   // measured in the same run; the ratio is value/baseline
	Goal      Goal   `yaml:"goal"`       // on the value
	RatioGoal Goal   `yaml:"ratio_goal"` // on value/baseline
}

// Goal is a bound: "< 100", "<= 1.1", ">= 0.6", "700..800" (inclusive), or
// empty (reported, not judged).
type Goal struct {
	Text   string
	lo, hi float64
	loOpen bool // lo is exclusive
	hiOpen bool // hi is exclusive
}

// UnmarshalYAML parses the goal text.
func (g *Goal) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	parsed, err := ParseGoal(s)
	if err != nil {
		return err
	}
	*g = parsed
	return nil
}

// ParseGoal parses a goal's text.
func ParseGoal(s string) (Goal, error) {
	s = strings.TrimSpace(s)
	g := Goal{Text: s, lo: math.Inf(-1), hi: math.Inf(1)}
	if s == "" {
		return g, nil
	}
	num := func(t string) (float64, error) {
		v, err := strconv.ParseFloat(strings.ReplaceAll(strings.TrimSpace(t), ",", ""), 64)
		if err != nil {
			return 0, fmt.Errorf("goal %q: %w", s, err)
		}
		return v, nil
	}
	var err error
	switch {
	case strings.HasPrefix(s, "<="):
		g.hi, err = num(s[2:])
	case strings.HasPrefix(s, ">="):
		g.lo, err = num(s[2:])
	case strings.HasPrefix(s, "<"):
		g.hi, err = num(s[1:])
		g.hiOpen = true
	case strings.HasPrefix(s, ">"):
		g.lo, err = num(s[1:])
		g.loOpen = true
	case strings.Contains(s, ".."):
		a, b, _ := strings.Cut(s, "..")
		if g.lo, err = num(a); err == nil {
			g.hi, err = num(b)
		}
	default:
		err = errors.New("want <, <=, >, >= or lo..hi")
	}
	if err != nil {
		return Goal{}, fmt.Errorf("goal %q: %w", s, err)
	}
	return g, nil
}

// Set reports whether the goal bounds anything.
func (g Goal) Set() bool { return g.Text != "" }

// Met reports whether v meets the goal.
func (g Goal) Met(v float64) bool {
	if math.IsNaN(v) {
		return false
	}
	if v < g.lo || (g.loOpen && v == g.lo) {
		return false
	}
	if v > g.hi || (g.hiOpen && v == g.hi) {
		return false
	}
	return true
}

// LoadFigures reads a goals file.
func LoadFigures(raw []byte) ([]Figure, error) {
	var figs []Figure
	if err := yaml.Unmarshal(raw, &figs); err != nil {
		return nil, fmt.Errorf("goals: %w", err)
	}
	for i, f := range figs {
		if f.Name == "" || f.Value.Bench == "" || f.Value.Metric == "" {
			return nil, fmt.Errorf("goals: row %d needs figure, value.bench and value.metric", i+1)
		}
		if f.RatioGoal.Set() && f.Baseline == nil {
			return nil, fmt.Errorf("goals: %q has a ratio goal but no baseline", f.Name)
		}
	}
	return figs, nil
}
