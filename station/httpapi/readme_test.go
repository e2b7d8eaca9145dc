package httpapi_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// registered matches a route registration in this package's source.
var registered = regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+ /[^"]*)"`)

// documented matches the route cell of a README table row: `GET /x`,
// `GET`/`PUT /x`, with an optional query (`?a=`) or `[?trace=1]` after it.
var documented = regexp.MustCompile("(?m)^\\| `([A-Z]+)(?:`/`([A-Z]+))? (/[^`?\\[ ]*)")

// TestREADMEListsEveryRoute: every route the server registers has a row in
// README.md's API tables, and every row names a route that exists, so an
// operator or an ops engineer reading the README finds what the code
// serves. The pprof sub-pages are covered by their index row.
func TestREADMEListsEveryRoute(t *testing.T) {
	sources, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, f := range sources {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range registered.FindAllStringSubmatch(string(src), -1) {
			if !strings.HasPrefix(m[1], "GET /debug/pprof/") || m[1] == "GET /debug/pprof/" {
				routes = append(routes, m[1])
			}
		}
	}
	if len(routes) < 40 {
		t.Fatalf("found only %d registered routes; has the registration changed shape?", len(routes))
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []string
	for _, m := range documented.FindAllStringSubmatch(string(readme), -1) {
		rows = append(rows, m[1]+" "+m[3])
		if m[2] != "" {
			rows = append(rows, m[2]+" "+m[3])
		}
	}
	for _, r := range routes {
		if !slices.Contains(rows, r) {
			t.Errorf("route %q is served but README.md's API tables have no row for it", r)
		}
	}
	for _, r := range rows {
		if !slices.Contains(routes, r) {
			t.Errorf("README.md documents %q, which the server does not register", r)
		}
	}
}
