package main

import (
	"strings"
	"testing"
)

const sample = `goos: linux
goarch: amd64
pkg: github.com/expresshub/station/dag
cpu: Oxide Virtual Turin-like Processor             
BenchmarkOverhead/engine/n=10-2         	  199044	      6000 ns/op	       600.0 ns/node	    2343 B/op	      12 allocs/op
BenchmarkOverhead/errgroup/n=10-2       	  156084	      7307 ns/op	       730.7 ns/node	    2528 B/op	      36 allocs/op
PASS
ok  	github.com/expresshub/station/dag	16.632s
pkg: github.com/expresshub/station/station/e2e
BenchmarkSortThroughput-2            	       1	 402154166 ns/op	       707.1 bare-inserts/s	         0.1269 sorts/bare	        89.72 sorts/s
--- BENCH: BenchmarkSortThroughput-2
    bench_test.go:38: testdbconf: postgres://x
BenchmarkManualSort/full-2   	zz_probe_test.go:25: a line that cut the result
--- FAIL: BenchmarkManualSort/lean
    bench_sort_test.go:70: boom
BenchmarkShort	       1	 100 ns/op
FAIL
FAIL	github.com/expresshub/station/station/e2e	32.6s
`

func TestParseReadsResultsConfigAndFailures(t *testing.T) {
	run, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	if len(run.Results) != 4 {
		t.Fatalf("%d results: %+v", len(run.Results), run.Results)
	}
	r := run.Results[0]
	if r.Pkg != "github.com/expresshub/station/dag" || r.Name != "Overhead/engine/n=10" || r.Procs != 2 || r.N != 199044 {
		t.Fatalf("first result %+v", r)
	}
	if v, ok := r.Metric("ns/node"); !ok || v != 600 {
		t.Fatalf("ns/node = %v %v", v, ok)
	}
	if v, _ := run.Results[2].Metric("sorts/bare"); v != 0.1269 || run.Results[2].Pkg != "github.com/expresshub/station/station/e2e" {
		t.Fatalf("third result %+v", run.Results[2])
	}
	if s := run.Results[3]; s.Name != "Short" || s.Procs != 1 {
		t.Fatalf("a name without -P: %+v", s)
	}
	if got := strings.Join(run.Failed, ","); got != "ManualSort/lean,pkg: github.com/expresshub/station/station/e2e" {
		t.Fatalf("failed = %q", got)
	}
	if run.Config["cpu"] != "Oxide Virtual Turin-like Processor" || run.Config["goos"] != "linux" {
		t.Fatalf("config %v", run.Config)
	}
}
