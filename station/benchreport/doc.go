// Command benchreport runs every benchmark of the project and writes
// BENCHMARKS.md: the machine, the exact command, every figure with the
// baseline measured in the same run, their ratio, the goal and PASS or MISS.
//
//	go run ./station/benchreport -out BENCHMARKS.md          # make bench
//	go run ./station/benchreport -out /tmp/b.md -short       # make bench-smoke (CI)
//
// It owns the report, not the measurements: the benchmarks are ordinary
// `func BenchmarkXxx(b *testing.B)` in their packages, found with `go list`,
// so a new one appears in the report's full table without a change here.
// Goals are data (goals.yaml, embedded): a row names a benchmark, the metric
// it reports with b.ReportMetric, optionally a baseline benchmark and metric
// of the same run, and the goal on the value or on value/baseline. Findings
// about misses (profiles, causes) are kept in findings.md and copied in, so
// regenerating the report never loses them.
//
// Absolute times on the shared 2-core machine are noisy; ratios to a
// baseline measured in the same run are what the goals compare. The
// benchmarks run one package at a time (-p 1) so packages do not compete for
// the cores. It must never be part of `make test`: it measures, it does not
// assert.
package main
