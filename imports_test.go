package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The import direction of the layout (README, "Layout"), checked over
// `go list -json ./...`; `make lint` runs it. A part of the module is its
// top-level directory (station, sorting, packing, ...); the module root is
// the command, which may import anything.

const module = "github.com/expresshub/station"

// mayImport lists, for each part of the module, the other parts its
// packages may import. A part imports its own packages freely. A part that
// is not listed is refused until it is placed here.
var mayImport = map[string][]string{
	// The edge: front doors and station-wide concerns. Nothing outside it
	// imports it, but the command.
	"station": {"sorting", "packing", "workorder", "ident", "fault", "dag", "clients", "proto", "migrations"},
	// The domain. sorting and packing do not import each other.
	"sorting": {"workorder", "ident", "fault", "dag", "clients"},
	"packing": {"workorder", "ident", "fault", "dag", "clients"},
	// The recorded operation.
	"workorder": {"ident", "fault"},
	// Downstream clients and their simulator.
	"clients": {"proto", "fault", "ident"},
	// Leaves: they import nothing of ours.
	"dag":        nil,
	"ident":      nil,
	"fault":      nil,
	"proto":      nil,
	"migrations": nil,
}

// testSupport are the packages any package's tests may import besides what
// the package itself may: a migrated database per test and the downstream
// simulator. Nothing else is special for tests: a test outside station
// imports no part of station (whole-station tests live in station/e2e and
// station/reliability).
var testSupport = []string{module + "/migrations/dbtest", module + "/clients/sim", module + "/clients/sim/simtest"}

// listedPackage is the part of `go list -json` the check reads.
type listedPackage struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
}

// violation is one import against the rules.
type violation struct {
	From, To string
	Test     bool // the import is in the package's tests
	Why      string
}

func (v violation) String() string {
	if v.To == "" {
		return strings.TrimPrefix(v.From, module+"/") + ": " + v.Why
	}
	where := ""
	if v.Test {
		where = " (in its tests)"
	}
	return fmt.Sprintf("%s imports %s%s: %s", strings.TrimPrefix(v.From, module+"/"), strings.TrimPrefix(v.To, module+"/"), where, v.Why)
}

// part is the top-level directory of a package of ours ("" for the module
// root), and false for a package that is not ours.
func part(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rest, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return "", false
	}
	p, _, _ := strings.Cut(rest, "/")
	return p, true
}

// checkImports returns every import of pkgs that breaks the rules, sorted.
func checkImports(pkgs []listedPackage) []violation {
	var out []violation
	for _, pkg := range pkgs {
		from, ours := part(pkg.ImportPath)
		if !ours {
			continue
		}
		allowed, placed := mayImport[from]
		if !placed && from != "" {
			out = append(out, violation{From: pkg.ImportPath, Why: fmt.Sprintf("%s/ is in no layer: add it to mayImport in imports_test.go and to the README's Layout", from)})
			continue
		}
		check := func(imports []string, test bool) {
			for _, imp := range imports {
				to, ours := part(imp)
				switch {
				case !ours || from == "" || to == from:
				case test && slices.Contains(testSupport, imp):
				case to == "":
					out = append(out, violation{pkg.ImportPath, imp, test, "nothing imports the command"})
				case slices.Contains(allowed, to):
				case to == "station":
					out = append(out, violation{pkg.ImportPath, imp, test, "nothing outside station/ imports station"})
				case len(allowed) == 0:
					out = append(out, violation{pkg.ImportPath, imp, test, from + " imports nothing of ours"})
				default:
					out = append(out, violation{pkg.ImportPath, imp, test, fmt.Sprintf("%s may import only %s", from, strings.Join(allowed, ", "))})
				}
			}
		}
		check(pkg.Imports, false)
		check(pkg.TestImports, true)
		check(pkg.XTestImports, true)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// listPackages runs go list over the whole module.
func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestImportsPointOneWay enforces the layout on the module as it is.
func TestImportsPointOneWay(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 10 || !slices.ContainsFunc(pkgs, func(p listedPackage) bool { return p.ImportPath == module+"/sorting" }) {
		t.Fatalf("go list found %d packages and no sorting: not run from the module root?", len(pkgs))
	}
	for _, v := range checkImports(pkgs) {
		t.Error(v)
	}
}

// TestImportCheckReportsAWrongImport feeds the check imports that break
// each rule, next to ones that keep them.
func TestImportCheckReportsAWrongImport(t *testing.T) {
	m := func(p string) string { return module + "/" + p }
	pkgs := []listedPackage{
		{ImportPath: module, Imports: []string{m("station/app"), m("migrations"), "fmt"}},
		{ImportPath: m("dag"), Imports: []string{"context", m("sorting")}},
		{ImportPath: m("ident"), Imports: []string{"github.com/google/uuid"}, XTestImports: []string{m("ident")}},
		{ImportPath: m("packing"), Imports: []string{m("workorder"), m("sorting"), m("ident")},
			XTestImports: []string{m("packing"), m("migrations/dbtest"), m("clients/sim")}},
		{ImportPath: m("sorting"), Imports: []string{m("dag"), m("clients"), m("fault")},
			XTestImports: []string{m("station/stationtest")}},
		{ImportPath: m("sorting/flows"), Imports: []string{m("sorting")}},
		{ImportPath: m("workorder"), Imports: []string{m("ident"), m("clients")}},
		{ImportPath: m("station/httpapi"), Imports: []string{m("sorting"), m("packing"), m("station/auth"), m("fault")}},
		{ImportPath: m("belt"), Imports: []string{m("sorting")}},
		{ImportPath: "example.com/other", Imports: []string{m("station/app")}},
	}
	var got []string
	for _, v := range checkImports(pkgs) {
		got = append(got, v.String())
	}
	want := []string{
		"belt: belt/ is in no layer: add it to mayImport in imports_test.go and to the README's Layout",
		"dag imports sorting: dag imports nothing of ours",
		"packing imports sorting: packing may import only workorder, ident, fault, dag, clients",
		"sorting imports station/stationtest (in its tests): nothing outside station/ imports station",
		"workorder imports clients: workorder may import only ident, fault",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("violations:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
