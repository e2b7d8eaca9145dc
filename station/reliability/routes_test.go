package reliability

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// routesFile is the one file that lists every HTTP route (STYLE habit 3).
const routesFile = "../httpapi/routes.go"

// route is one mux.Handle call of routes.go: its pattern and who may call
// it, as the code says.
type route struct {
	Pattern string
	Access  string // "public", "raw" (no s.handle), "any" or "roles:a,b" (sorted)
}

// declaredRoutes reads routes.go and returns every mux.Handle pattern with
// its access, resolving local variables such as `ops := roles(auth.RoleOps)`.
// Reading the source keeps the matrix honest: a new route, or a changed
// guard, is seen without anyone remembering to register it.
func declaredRoutes(t testing.TB) []route {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, routesFile, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	var out []route
	var accessOf func(e ast.Expr) string
	accessOf = func(e ast.Expr) string {
		switch x := e.(type) {
		case *ast.Ident:
			switch x.Name {
			case "public":
				return "public"
			case "anyOperator":
				return "any"
			}
			if v, ok := vars[x.Name]; ok {
				return v
			}
		case *ast.CallExpr:
			if id, ok := x.Fun.(*ast.Ident); ok && id.Name == "roles" {
				var rs []string
				for _, a := range x.Args {
					sel, ok := a.(*ast.SelectorExpr)
					if !ok {
						return "?"
					}
					rs = append(rs, strings.ToLower(strings.TrimPrefix(sel.Sel.Name, "Role")))
				}
				slices.Sort(rs)
				return "roles:" + strings.Join(rs, ",")
			}
		}
		return "?"
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch x := n.(type) {
		case *ast.AssignStmt:
			if len(x.Lhs) == 1 && len(x.Rhs) == 1 {
				if id, ok := x.Lhs[0].(*ast.Ident); ok {
					vars[id.Name] = accessOf(x.Rhs[0])
				}
			}
		case *ast.CallExpr:
			sel, ok := x.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Handle" || len(x.Args) != 2 {
				return true
			}
			if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "mux" {
				return true
			}
			lit, ok := x.Args[0].(*ast.BasicLit)
			if !ok {
				t.Fatalf("%s: a route pattern that is not a literal", fset.Position(x.Pos()))
			}
			pattern, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			access := "raw"
			if call, ok := x.Args[1].(*ast.CallExpr); ok {
				if hs, ok := call.Fun.(*ast.SelectorExpr); ok && hs.Sel.Name == "handle" && len(call.Args) == 2 {
					access = accessOf(call.Args[0])
				}
			}
			if access == "?" {
				t.Fatalf("%s: cannot tell who may call %s", fset.Position(x.Pos()), pattern)
			}
			out = append(out, route{Pattern: pattern, Access: access})
		}
		return true
	})
	if len(out) == 0 {
		t.Fatal("no routes found in " + routesFile)
	}
	return out
}

// countHandleCalls counts `mux.Handle(` in the source text: a cross-check
// that the AST walk saw every call.
func TestRouteWalkSeesEveryHandleCall(t *testing.T) {
	t.Parallel()
	routes := declaredRoutes(t)
	f, err := parser.ParseFile(token.NewFileSet(), routesFile, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		if c, ok := node.(*ast.CallExpr); ok {
			if s, ok := c.Fun.(*ast.SelectorExpr); ok && (s.Sel.Name == "Handle" || s.Sel.Name == "HandleFunc") {
				n++
			}
		}
		return true
	})
	if n != len(routes) {
		t.Fatalf("routes.go has %d Handle calls, the walk understood %d", n, len(routes))
	}
}
