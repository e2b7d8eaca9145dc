// Command report runs the reliability suite (station/reliability) and
// writes RELIABILITY.md: every test once with the race detector, the fleet
// fault-and-load test in its long form, with the figures each test logs,
// the tests of limits, timeouts and leases that live next to their code,
// then each fuzz target for a fixed time. `make reliability` runs it. It
// exits non-zero when anything failed, after writing the file, so CI shows
// the report either way.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// reportPrefix marks the figure lines the tests log (station/reliability
// main_test.go).
const reportPrefix = "REPORT "

type testResult struct {
	pkg     string // set for the tests next to their code (nextToCode)
	name    string
	action  string // pass, fail, skip
	elapsed float64
	figures []string
	seeds   int
	output  []string // kept for failures
}

type fuzzResult struct {
	pkg    string // set for the domain targets outside the suite
	name   string
	execs  string
	passed bool
	detail string
	// retried: the first run hit Go's fuzztime race (see runFuzz).
	retried bool
}

func main() {
	out := flag.String("out", "RELIABILITY.md", "report file")
	pkg := flag.String("pkg", "./station/reliability", "the suite's package")
	fuzztime := flag.Duration("fuzztime", 10*time.Second, "fuzzing time per target (0: seeds only)")
	race := flag.Bool("race", true, "run the suite with the race detector")
	fleet := flag.Duration("fleet", 150*time.Second, "load time of the fleet fault-and-load test (its short form in `make test` is shorter)")
	flag.Parse()
	if err := run(*out, *pkg, *fuzztime, *fleet, *race); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

// fleetLoadEnv sets the fleet test's load time (station/reliability
// fleet_test.go).
const fleetLoadEnv = "RELIABILITY_FLEET_LOAD"

// jetStreamFleetLoad is the load time of the fleet's JetStream run for a
// fleet load time: a third of it, at least the short form's 24s
// (station/reliability fleet_jetstream_test.go).
func jetStreamFleetLoad(fleet time.Duration) time.Duration {
	return max(24*time.Second, fleet/3)
}

func run(out, pkg string, fuzztime, fleet time.Duration, race bool) error {
	started := time.Now()
	// The commit is the code under test: read before the tests run, not
	// after, when a commit made meanwhile (or a test's file) would be named.
	commit := strings.TrimSpace(cmdOutput("git", "describe", "--always", "--dirty"))
	args := []string{"test", "-count=1", "-json", "-timeout=20m"}
	if race {
		args = append(args, "-race")
	}
	tests, suiteErr := runSuite(append(os.Environ(), fleetLoadEnv+"="+fleet.String()), append(args, pkg))
	for _, n := range nextToCode {
		fmt.Fprintf(os.Stderr, "testing %s (%s)\n", n.pkg, n.run)
		more, err := runSuite(os.Environ(), append(slices.Clone(args), "-run="+n.run, n.pkg))
		for _, t := range more {
			t.pkg = n.pkg
		}
		tests = append(tests, more...)
		suiteErr = errors.Join(suiteErr, err)
	}
	var fuzz []fuzzResult
	if fuzztime > 0 {
		for _, t := range tests {
			if strings.HasPrefix(t.name, "Fuzz") {
				fmt.Fprintf(os.Stderr, "fuzzing %s for %v\n", t.name, fuzztime)
				fuzz = append(fuzz, runFuzz(pkg, t.name, fuzztime))
			}
		}
		for _, d := range domainFuzz {
			fmt.Fprintf(os.Stderr, "fuzzing %s %s for %v\n", d.pkg, d.name, fuzztime)
			r := runFuzz(d.pkg, d.name, fuzztime)
			r.pkg = d.pkg
			fuzz = append(fuzz, r)
		}
	}
	doc := render(commit, tests, fuzz, fuzztime, fleet, race, time.Since(started))
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, out); err != nil {
		return err
	}
	failed := suiteErr != nil
	for _, t := range tests {
		failed = failed || t.action == "fail"
	}
	for _, f := range fuzz {
		failed = failed || !f.passed
	}
	if failed {
		return fmt.Errorf("failures; see %s", out)
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", out)
	return nil
}

type event struct {
	Action  string
	Test    string
	Output  string
	Elapsed float64
}

// runSuite runs go test -json and collects the top-level tests.
func runSuite(env, args []string) ([]*testResult, error) {
	cmd := exec.Command("go", args...)
	cmd.Env = env
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	byName := map[string]*testResult{}
	var order []string
	get := func(name string) *testResult {
		top, _, _ := strings.Cut(name, "/")
		r, ok := byName[top]
		if !ok {
			r = &testResult{name: top}
			byName[top] = r
			order = append(order, top)
		}
		return r
	}
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Test == "" {
			continue
		}
		r := get(e.Test)
		switch e.Action {
		case "output":
			line := strings.TrimRight(e.Output, "\n")
			if _, fig, ok := strings.Cut(line, reportPrefix); ok {
				r.figures = append(r.figures, fig)
			} else if len(r.output) < 200 && !strings.HasPrefix(strings.TrimSpace(line), "===") {
				r.output = append(r.output, line)
			}
		case "pass", "fail", "skip":
			if e.Test == r.name {
				r.action, r.elapsed = e.Action, e.Elapsed
			} else if e.Action == "pass" && strings.Contains(e.Test, "/seed#") {
				r.seeds++
			}
		}
		if strings.HasPrefix(e.Test, r.name+"/") && e.Action == "fail" && r.action == "" {
			r.output = append(r.output, "subtest failed: "+e.Test)
		}
	}
	err = cmd.Wait()
	var out []*testResult
	for _, n := range order {
		out = append(out, byName[n])
	}
	return out, err
}

var execsLine = regexp.MustCompile(`fuzz: elapsed: [^,]+, execs: (\d+)`)

// runFuzz fuzzes one target (without the race detector: it is about
// inputs, and executions per second matter). A run that ends in a bare
// "context deadline exceeded" with no failing input written is Go's own
// fuzz coordinator racing its -fuzztime deadline (go.dev/issue/75804,
// fixed in Go 1.27, seen here on go1.26.8 under load); it is run once more
// and the retry is noted. Any other failure stands.
func runFuzz(pkg, name string, d time.Duration) fuzzResult {
	r, out := fuzzOnce(pkg, name, d)
	if !r.passed && coordinatorRace(out) {
		r, _ = fuzzOnce(pkg, name, d)
		r.retried = true
	}
	return r
}

// coordinatorRace tells go.dev/issue/75804 from a finding: the fuzzer
// writes every failing input it finds, and a test failure names its line.
func coordinatorRace(out string) bool {
	return strings.Contains(out, "context deadline exceeded") &&
		!strings.Contains(out, "Failing input written") && !strings.Contains(out, "_test.go:")
}

// verdict is the fuzz run's cell; ok is the cell when fuzzing passed (for
// the HTTP targets, what their seeds' run said).
func (f fuzzResult) verdict(ok string) string {
	switch {
	case !f.passed:
		return "FAIL: " + f.detail
	case f.retried:
		return ok + " (run again once: Go's fuzztime race, go.dev/issue/75804)"
	}
	return ok
}

func fuzzOnce(pkg, name string, d time.Duration) (fuzzResult, string) {
	// Minimizing each new interesting input (60 s by default) would eat a
	// short fuzz time whole, above all for the flow targets, whose seeds are
	// whole flow files; a crasher is still written, only less minimized.
	cmd := exec.Command("go", "test", "-count=1", "-run=^$", "-fuzz=^"+name+"$", "-fuzztime="+d.String(), "-fuzzminimizetime=2s", pkg)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	r := fuzzResult{name: name, passed: err == nil, execs: "?"}
	for _, m := range execsLine.FindAllStringSubmatch(buf.String(), -1) {
		r.execs = m[1]
	}
	if err != nil {
		var lines []string
		for _, l := range strings.Split(buf.String(), "\n") {
			if strings.Contains(l, "_test.go:") || strings.Contains(l, "Failing input") || strings.Contains(l, "testdata/fuzz") {
				lines = append(lines, strings.TrimSpace(l))
			}
		}
		if len(lines) == 0 {
			// Not a failing input (the fuzzer names one) but the run itself:
			// a worker that died, the build. Its last words say which.
			lines = tail(nonEmpty(strings.Split(buf.String(), "\n")), 3)
		}
		r.detail = strings.Join(lines[:min(len(lines), 5)], "; ")
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			r.detail = err.Error()
		}
	}
	return r, buf.String()
}

func render(commit string, tests []*testResult, fuzz []fuzzResult, fuzztime, fleet time.Duration, race bool, took time.Duration) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("# Reliability\n\n")
	w("Generated by `make reliability` (station/reliability/report) on %s: commit %s, %s, %s/%s, %d CPUs; %v in all.\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), orUnknown(commit), runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), took.Round(time.Second))
	w("Every test of station/reliability once")
	if race {
		w(" with the race detector")
	}
	w(", the fleet test (TestFleetFaultsAndLoad) with %v of load under faults and its JetStream run (TestFleetJetStreamFaultsAndLoad: relay.sink jetstream, a nats-server of its own, NATS link faults and restarts) with %v, then each fuzz target for %v. Real PostgreSQL and Redis, the downstream simulator over gRPC, real `station serve` processes where a test says so, link faults through Shopify's toxiproxy. The pass line for delivery is lost = 0 and duplicated = 0.\n\n", fleet, jetStreamFleetLoad(fleet), fuzztime)

	w("## Checks\n\n| test | result | time | figures |\n| --- | --- | --- | --- |\n")
	for _, t := range tests {
		if strings.HasPrefix(t.name, "Fuzz") || t.pkg != "" {
			continue
		}
		w("| %s | %s | %.1fs | %s |\n", t.name, verdict(t.action), t.elapsed, cell(strings.Join(t.figures, "<br>")))
	}
	w("\n## Degradation and state (issues 17, 19 and 21)\n\nEach promise and the test that holds it, with its figures; a promise whose test did not run is marked missing.\n\n")
	w("| promise | test | result | figures |\n| --- | --- | --- | --- |\n")
	for _, p := range promised {
		res, figs := "**missing**", ""
		for _, t := range tests {
			if t.name == p.test && t.pkg == p.pkg {
				res, figs = verdict(t.action), strings.Join(t.figures, "<br>")
			}
		}
		w("| %s | %s | %s | %s |\n", p.what, strings.TrimSpace(p.pkg+" "+p.test), res, cell(figs))
	}
	w("\n## Overload, timeouts, singleton jobs and the terminal's offline queue (tests next to their code)\n\nThe same run, with the race detector: HTTP rate limits per operator and per terminal under concurrent load (Redis GCRA and the local fallback), gRPC per-sorter and global concurrency limits under load, the pool's acquire timeout, server timeouts (slow headers, slow body, idle keep-alive, a gRPC connection without its preface), the leases of singleton jobs (renewal, takeover, fencing, an unreachable database), the web terminal's offline queue across a logout (in headless Chromium: a scan queued by one operator is never sent as the next one), and degradation next to its code (the chute map while PostgreSQL is out, readiness with Redis unreachable, the probes while serve waits for its database).\n\n")
	w("| package | test | result | time | figures |\n| --- | --- | --- | --- | --- |\n")
	for _, t := range tests {
		if t.pkg != "" {
			w("| %s | %s | %s | %.1fs | %s |\n", t.pkg, t.name, verdict(t.action), t.elapsed, cell(strings.Join(t.figures, "<br>")))
		}
	}
	w("\n## Hostile input (fuzzing over HTTP)\n\nProperties for every input: never a 5xx or a panic, errors are JSON with a stable code, a 4xx writes nothing (every table fingerprinted before and after).\n\n")
	w("| target | seeds | executions in %v | result |\n| --- | --- | --- | --- |\n", fuzztime)
	for _, t := range tests {
		if !strings.HasPrefix(t.name, "Fuzz") || t.pkg != "" {
			continue
		}
		execs, res := "-", verdict(t.action)
		for _, f := range fuzz {
			if f.pkg == "" && f.name == t.name {
				execs = f.execs
				res = f.verdict(res)
			}
		}
		w("| %s | %d | %s | %s |\n", t.name, t.seeds, execs, cell(res))
	}
	w("\n## Hostile input (flow configs, release rules and tracking numbers, fuzzed directly)\n\nProperties: never a panic; an input is refused with an error that gives reasons, or accepted, and then it round-trips (written back as YAML or JSON and read again unchanged) and compiles or validates again.\n\n")
	w("| package | target | executions in %v | result |\n| --- | --- | --- | --- |\n", fuzztime)
	for _, f := range fuzz {
		if f.pkg == "" {
			continue
		}
		w("| %s | %s | %s | %s |\n", f.pkg, f.name, f.execs, cell(f.verdict("pass")))
	}
	var failed []*testResult
	for _, t := range tests {
		if t.action == "fail" {
			failed = append(failed, t)
		}
	}
	if len(failed) > 0 {
		w("\n## Failures\n\n")
		for _, t := range failed {
			w("### %s\n\n```\n%s\n```\n\n", strings.TrimSpace(t.pkg+" "+t.name), strings.Join(tail(t.output, 40), "\n"))
		}
	}
	if len(notYet) > 0 {
		w("\n## Not covered yet (issue 10)\n\n")
		for _, s := range notYet {
			w("- %s\n", s)
		}
	}
	return b.String()
}

// domainFuzz are fuzz targets outside the suite, next to the code they
// feed: flow configs, release rules and tracking numbers.
var domainFuzz = []struct{ pkg, name string }{
	{"./sorting", "FuzzFlowConfig"},
	{"./sorting", "FuzzReleaseRule"},
	{"./ident", "FuzzParseTrackingNo"},
	{"./ident", "FuzzParseSiteID"},
	{"./dag", "FuzzCompile"},
	{"./dag", "FuzzConfigRoundTrip"},
}

// promised are the rows issues 17, 19 and 21 ask of this report: each promise, the
// test that holds it (pkg empty: the suite's own) and its figures.
var promised = []struct{ what, pkg, test string }{
	{"the belt with PostgreSQL cut: pre-sorted resolves answered with their chute against resolves asked, Unavailable = 0", "", "TestBeltServesPresortedChutesWithPostgresCut"},
	{"the belt with PostgreSQL frozen (hung, not refused): the same", "", "TestBeltServesPresortedChutesWithPostgresFrozen"},
	{"a hung database: the slowest answer, 503s against requests", "", "TestHungDatabaseAnswers503WithinTheRequestDeadline"},
	{"readiness with Redis down: ready, degraded in the body and the gauge", "", "TestReadinessWithRedisDownIsDegradedNotUnready"},
	{"while serve waits for its database: /healthz 200, /readyz 503", "./station/app", "TestServeAnswersProbesWhileItWaitsForTheDatabase"},
	{"the chute map: the last good one while PostgreSQL is out, never a wait once read", "./sorting", "TestChuteStoreNeverWaitsForAHungDatabase"},
	{"offline replay across a logout: a scan queued offline by one operator is never sent as the next one; it waits and lands once, as its own operator's, when that operator logs in again (headless Chromium)", "./station/webui", "TestOfflineReplayAcrossALogout"},
	{"the parcel-state matrix under concurrent operators: two terminals acting on one parcel at once, hundreds of times; no 5xx, every visit a way the matrix allows with no step skipped, every state agreeing with the bags", "", "TestParcelStateUnderConcurrentOperators"},
	{"the fleet with relay.sink jetstream, NATS links faulted and nats-server killed and restarted: lost 0, duplicated 0, each parcel's order kept in the stream and at the order center, the NATS faults listed", "", "TestFleetJetStreamFaultsAndLoad"},
}

// nextToCode are the tests of issue 10's (and 17's) promises that live next
// to the code they hold to account; the report runs them too (-run selects
// them).
var nextToCode = []struct{ pkg, run string }{
	{"./station/httpapi", "Terminal|Budget"},
	{"./station/ratelimit", "."},
	{"./station/sorterapi", "Limit|Overload|Slots|Revoked"},
	{"./station/app", "Timeout|Preface|Idle|Acquire|HistoryJob|Scheduled|Serve|Readiness|Degraded"},
	{"./sorting", "ChuteStore"},
	{"./station/lease", "."},
	{"./station/history", "Retention|Detach|Partitioning"},
	{"./station/auth", "."},
	// The web terminal's offline queue across a logout (issue 17), in
	// headless Chromium.
	{"./station/webui", "OfflineReplayAcrossALogout"},
}

// notYet is what issue 10 asks for that this report does not show yet:
// nothing now; the list stays for what a later promise adds.
var notYet []string

func verdict(action string) string {
	switch action {
	case "pass":
		return "pass"
	case "fail":
		return "**FAIL**"
	case "skip":
		return "skipped"
	}
	return "did not finish"
}

func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func tail(lines []string, n int) []string {
	return lines[max(len(lines)-n, 0):]
}

func cmdOutput(name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Stderr = io.Discard
	out, _ := cmd.Output()
	return string(out)
}

func nonEmpty(lines []string) []string {
	var out []string
	for _, l := range lines {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}
