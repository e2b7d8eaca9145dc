package sorting

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// declaredCodes reads this package's sources for the string constants
// named Code* (exception codes) and Reason* (belt reasons): a code added
// there without a row in ReasonCodes fails the test below.
func declaredCodes(t *testing.T) []string {
	t.Helper()
	pkgs, err := parser.ParseDir(token.NewFileSet(), ".", func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.CONST {
					continue
				}
				for _, spec := range g.Specs {
					vs := spec.(*ast.ValueSpec)
					for i, name := range vs.Names {
						n := name.Name
						if !(strings.HasPrefix(n, "Code") || strings.HasPrefix(n, "Reason")) || i >= len(vs.Values) {
							continue
						}
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							v, _ := strconv.Unquote(lit.Value)
							out = append(out, v)
						}
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestReasonCodesCoverEveryConstant(t *testing.T) {
	var listed []string
	for _, r := range ReasonCodes() {
		if r.Meaning == "" || r.Chute == "" || (r.Kind != "exception" && r.Kind != "belt") {
			t.Errorf("%s: incomplete row %+v", r.Code, r)
		}
		listed = append(listed, r.Code)
	}
	slices.Sort(listed)
	if declared := declaredCodes(t); !slices.Equal(listed, declared) {
		t.Fatalf("ReasonCodes lists %v, the constants are %v", listed, declared)
	}
}

// TestREADMEListsEveryReasonCode: the README's table is ReasonCodes, row
// for row, so a terminal's author reads what the code answers.
func TestREADMEListsEveryReasonCode(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(raw), "<!-- reason codes:")
	table, _, ok2 := strings.Cut(rest, "<!-- end of reason codes -->")
	if !ok || !ok2 {
		t.Fatal("README.md has no reason code table between its markers")
	}
	var rows []string
	for _, line := range strings.Split(table, "\n") {
		if strings.HasPrefix(line, "| `") {
			rows = append(rows, line)
		}
	}
	var want []string
	for _, r := range ReasonCodes() {
		want = append(want, fmt.Sprintf("| `%s` | %s | %s | %s |", r.Code, r.Kind, r.Chute, r.Meaning))
	}
	if !slices.Equal(rows, want) {
		t.Fatalf("README.md's reason codes differ from sorting.ReasonCodes; the rows should be:\n%s", strings.Join(want, "\n"))
	}
}
