package main

import (
	"bytes"
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"time"
)

//go:embed findings.md
var findingsMD string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

// errBenchFailed: the report was written, but go test said a benchmark or
// package failed.
var errBenchFailed = errors.New("benchmarks failed; see the report")

func run(ctx context.Context, args []string, progress io.Writer) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	out := fs.String("out", "BENCHMARKS.md", "the report to write")
	short := fs.Bool("short", false, "smoke run: -short -benchtime=1x (every benchmark once, small sample counts)")
	pkgs := fs.String("pkgs", "", "comma-separated packages to run (default: every package with a benchmark)")
	bench := fs.String("bench", ".", "the -bench pattern")
	timeout := fs.Duration("timeout", 30*time.Minute, "go test -timeout per package")
	if err := fs.Parse(args); err != nil {
		return err
	}
	figs, err := LoadFigures(goalsYAML)
	if err != nil {
		return err
	}

	var list []string
	if *pkgs != "" {
		list = strings.Split(*pkgs, ",")
	} else if list, err = benchPackages(ctx); err != nil {
		return err
	}
	if len(list) == 0 {
		return errors.New("no package has a benchmark")
	}

	// -p 1: one package at a time, so packages do not compete for the
	// cores; -run '^$': no tests, only benchmarks.
	testArgs := []string{"test", "-p", "1", "-run", "^$", "-bench", *bench, "-benchmem", "-count", "1", "-timeout", timeout.String()}
	if *short {
		testArgs = append(testArgs, "-short", "-benchtime", "1x")
	}
	testArgs = append(testArgs, list...)

	m := Machine{CPU: cpuModel(), Cores: runtime.GOMAXPROCS(0), GoVersion: goEnv(ctx, "GOVERSION"),
		OSArch: goEnv(ctx, "GOOS") + "/" + goEnv(ctx, "GOARCH"), Commit: gitDescribe(ctx), Date: time.Now(),
		LoadStart: loadAvg(), Command: "go " + shellQuote(testArgs), Short: *short}
	fmt.Fprintf(progress, "benchreport: %s\n", m.Command)

	var raw bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", testArgs...)
	cmd.Stdout = io.MultiWriter(&raw, progress)
	cmd.Stderr = io.MultiWriter(&raw, progress)
	start := time.Now()
	testErr := cmd.Run()
	m.Duration, m.LoadEnd = time.Since(start), loadAvg()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	parsed, err := Parse(&raw)
	if err != nil {
		return err
	}
	if c := parsed.Config["cpu"]; c != "" {
		m.CPUGo = c
	}
	if testErr != nil && len(parsed.Failed) == 0 {
		parsed.Failed = append(parsed.Failed, "go test: "+testErr.Error())
	}
	rows := Evaluate(figs, parsed)
	if err := writeFile(*out, func(w io.Writer) error { return Write(w, m, rows, parsed, findingsMD) }); err != nil {
		return err
	}
	fmt.Fprintf(progress, "benchreport: wrote %s (%d results, %s)\n", *out, len(parsed.Results), m.Duration.Round(time.Second))
	if testErr != nil {
		return fmt.Errorf("%w: %v", errBenchFailed, testErr)
	}
	return nil
}

var benchFunc = regexp.MustCompile(`(?m)^func Benchmark\w*\(\w+ \*testing\.B\)`)

// benchPackages lists the module's packages whose test files define a
// benchmark.
func benchPackages(ctx context.Context) ([]string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-e", "-f",
		`{{.ImportPath}}{{"\t"}}{{.Dir}}{{"\t"}}{{join .TestGoFiles " "}} {{join .XTestGoFiles " "}}`, "./...").Output()
	if err != nil {
		return nil, fmt.Errorf("go list: %w", err)
	}
	var pkgs []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.SplitN(line, "\t", 3)
		if len(parts) != 3 {
			continue
		}
		for _, f := range strings.Fields(parts[2]) {
			src, err := os.ReadFile(filepath.Join(parts[1], f))
			if err != nil {
				return nil, err
			}
			if benchFunc.Match(src) {
				pkgs = append(pkgs, parts[0])
				break
			}
		}
	}
	return pkgs, nil
}

// writeFile replaces path at once: a failed run never leaves half a report.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".benchreport-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}

func loadAvg() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func goEnv(ctx context.Context, key string) string {
	out, err := exec.CommandContext(ctx, "go", "env", key).Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}

func gitDescribe(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// shellQuote joins args so the line can be pasted into a shell.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " '\"$^*?[]\\|&;<>(){}!#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
