package main

import (
	"bufio"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// Metric is one value a benchmark reported: ns/op, B/op, allocs/op or a
// b.ReportMetric unit.
type Metric struct {
	Unit  string
	Value float64
}

// Result is one benchmark line of `go test -bench` output.
type Result struct {
	Pkg     string // import path
	Name    string // without the "Benchmark" prefix and the -GOMAXPROCS suffix
	Procs   int
	N       int
	Metrics []Metric // in the order printed
}

// Metric returns the value of a unit.
func (r Result) Metric(unit string) (float64, bool) {
	for _, m := range r.Metrics {
		if m.Unit == unit {
			return m.Value, true
		}
	}
	return 0, false
}

// Run is what one `go test -bench` run printed.
type Run struct {
	Results []Result
	Failed  []string          // benchmarks (or packages, as "pkg: ...") that failed
	Config  map[string]string // goos, goarch, cpu: the last seen
}

var (
	benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-(\d+))?\s+(\d+)\s+(.*)$`)
	failBench = regexp.MustCompile(`^\s*--- FAIL: Benchmark(\S+?)(?:-\d+)?(?:\s|$)`)
	failPkg   = regexp.MustCompile(`^FAIL\s+(\S+)`)
)

// Parse reads the standard benchmark format
// (https://go.dev/design/14313-benchmark-format): configuration lines
// "key: value", result lines "BenchmarkName-P  N  value unit ...", and
// whatever else a run prints, which it skips.
func Parse(r io.Reader) (Run, error) {
	run := Run{Config: map[string]string{}}
	pkg := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := failBench.FindStringSubmatch(line); m != nil {
			run.Failed = append(run.Failed, m[1])
			continue
		}
		if m := failPkg.FindStringSubmatch(line); m != nil && strings.Contains(m[1], ".") {
			run.Failed = append(run.Failed, "pkg: "+m[1])
			continue
		}
		if m := benchLine.FindStringSubmatch(line); m != nil {
			if res, ok := parseResult(pkg, m); ok {
				run.Results = append(run.Results, res)
			}
			continue
		}
		if k, v, ok := strings.Cut(line, ": "); ok && isConfigKey(k) {
			if k == "pkg" {
				pkg = strings.TrimSpace(v)
			} else {
				run.Config[k] = strings.TrimSpace(v)
			}
		}
	}
	return run, sc.Err()
}

func parseResult(pkg string, m []string) (Result, bool) {
	res := Result{Pkg: pkg, Name: m[1], Procs: 1}
	if m[2] != "" {
		res.Procs, _ = strconv.Atoi(m[2])
	}
	res.N, _ = strconv.Atoi(m[3])
	fields := strings.Fields(m[4])
	if len(fields) == 0 || len(fields)%2 != 0 {
		return Result{}, false // a name line whose results were cut by other output
	}
	for i := 0; i < len(fields); i += 2 {
		v, err := strconv.ParseFloat(fields[i], 64)
		if err != nil {
			return Result{}, false
		}
		res.Metrics = append(res.Metrics, Metric{Unit: fields[i+1], Value: v})
	}
	return res, true
}

// isConfigKey: a lower-case word without spaces, as the format defines
// configuration keys (goos, goarch, pkg, cpu).
func isConfigKey(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
