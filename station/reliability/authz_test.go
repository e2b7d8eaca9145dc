package reliability

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/expresshub/station/sorting"
)

// probe is one request that must be refused.
type probe struct {
	who    string // operator id whose token is used; "" for none
	method string
	path   string
	body   any
	header []string
	want   []int // acceptable refusals
	// scoped marks a listing that answers 200 at the caller's own station;
	// it must not show any of mustNotShow.
	scoped      bool
	mustNotShow []string
}

// authzRow is one route of the matrix.
type authzRow struct {
	access string // who may call it; must equal what routes.go says
	// path fills the pattern with station A's objects; body is a
	// plausible body for it.
	path func(w *world) string
	body func(w *world) any
	// foreign lists station B's attempts on station A's objects (or
	// attempts to name another station); none says why there are none.
	foreign func(w *world) []probe
	none    string
}

func fixed(p string) func(*world) string { return func(*world) string { return p } }

func scanBody(tn string) func(w *world) any {
	return func(w *world) any { return map[string]string{"tracking_no": tn, "scan_id": w.scan()} }
}

var refused = []int{http.StatusForbidden, http.StatusNotFound}

// authzMatrix has one row per route of routes.go; TestAuthorizationMatrix
// fails when a route has no row, or a row no route.
var authzMatrix = map[string]authzRow{
	"GET /healthz":             {access: "public", path: fixed("/healthz"), none: "probe"},
	"GET /readyz":              {access: "public", path: fixed("/readyz"), none: "probe"},
	"GET /metrics":             {access: "raw", path: fixed("/metrics"), none: "metrics hold no station data"},
	"POST /api/v1/auth/login":  {access: "public", path: fixed("/api/v1/auth/login"), none: "login"},
	"POST /api/v1/auth/logout": {access: "any", path: fixed("/api/v1/auth/logout"), none: "revokes the caller's own token"},
	"GET /api/v1/me":           {access: "any", path: fixed("/api/v1/me"), none: "the caller"},
	"GET /api/v1/flows":        {access: "any", path: fixed("/api/v1/flows"), none: "flows are network-wide configuration, read only"},
	"GET /api/v1/exceptions":   {access: "any", path: fixed("/api/v1/exceptions"), none: "the code table is the same for every station"},
	"POST /api/v1/receive":     {access: "any", path: fixed("/api/v1/receive"), body: scanBody("SG1000000001"), foreign: nameStation("/api/v1/receive")},
	"POST /api/v1/sort":        {access: "any", path: fixed("/api/v1/sort"), body: scanBody("SG1000000001"), foreign: nameStation("/api/v1/sort")},
	"GET /api/v1/sort/{tracking_no}": {access: "any", path: func(w *world) string { return "/api/v1/sort/" + w.parcelA }, foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/sort/" + w.parcelA, want: []int{http.StatusNotFound}}}
	}},
	"GET /api/v1/parcels/{tracking_no}": {access: "any", path: func(w *world) string { return "/api/v1/parcels/" + w.parcelA }, foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/parcels/" + w.parcelA, want: []int{http.StatusNotFound}}}
	}},
	"PUT /api/v1/stations/{id}/chutes/{chute}/bag": {access: "any", path: fixed("/api/v1/stations/SG-H01/chutes/1/bag"),
		body: func(w *world) any { return map[string]string{"bag_id": "BGSGH01X0001", "scan_id": w.scan()} },
		foreign: func(w *world) []probe {
			return []probe{{who: "opB", method: "PUT", path: "/api/v1/stations/SG-H01/chutes/1/bag",
				body: map[string]string{"bag_id": "BGSGH01X0001", "scan_id": w.scan()}, want: []int{http.StatusForbidden}}}
		}},
	"DELETE /api/v1/stations/{id}/chutes/{chute}/bag": {access: "any", path: fixed("/api/v1/stations/SG-H01/chutes/1/bag"),
		body: func(w *world) any { return map[string]string{"scan_id": w.scan()} },
		foreign: func(w *world) []probe {
			return []probe{{who: "opB", method: "DELETE", path: "/api/v1/stations/SG-H01/chutes/1/bag",
				body: map[string]string{"scan_id": w.scan()}, want: []int{http.StatusForbidden}}}
		}},
	"PUT /api/v1/stations/{id}/chutes/{chute}/state": {access: "roles:ops,supervisor", path: fixed("/api/v1/stations/SG-H01/chutes/1/state"),
		body: func(w *world) any { return map[string]bool{"disabled": true} },
		foreign: func(w *world) []probe {
			return []probe{{who: "supB", method: "PUT", path: "/api/v1/stations/SG-H01/chutes/1/state",
				body: map[string]bool{"disabled": true}, want: []int{http.StatusForbidden}}}
		}},
	"PUT /api/v1/stations/{id}/bag-limits": {access: "roles:ops,supervisor", path: fixed("/api/v1/stations/SG-H01/bag-limits"),
		body: func(w *world) any { return map[string]int{"max_parcels": 10, "max_grams": 5000} },
		foreign: func(w *world) []probe {
			return []probe{{who: "supB", method: "PUT", path: "/api/v1/stations/SG-H01/bag-limits",
				body: map[string]int{"max_parcels": 10, "max_grams": 5000}, want: []int{http.StatusForbidden}}}
		}},
	"GET /api/v1/stations/{id}/floor": {access: "any", path: fixed("/api/v1/stations/SG-H01/floor"), foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/stations/SG-H01/floor", want: []int{http.StatusForbidden}}}
	}},
	"GET /api/v1/stations/{id}/floor/events": {access: "any", path: fixed("/api/v1/stations/SG-H01/floor/events"), foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/stations/SG-H01/floor/events", want: []int{http.StatusForbidden}}}
	}},
	"GET /api/v1/stations/{id}/sorters/decisions": {access: "roles:ops,supervisor", path: fixed("/api/v1/stations/SG-H01/sorters/decisions"),
		foreign: func(w *world) []probe {
			return []probe{{who: "supB", method: "GET", path: "/api/v1/stations/SG-H01/sorters/decisions", want: []int{http.StatusForbidden}}}
		}},
	"GET /api/v1/stations/{id}/chutes": {access: "any", path: fixed("/api/v1/stations/SG-H01/chutes"), foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/stations/SG-H01/chutes", want: []int{http.StatusForbidden}}}
	}},
	"PUT /api/v1/stations/{id}/chutes": {access: "roles:ops,supervisor", path: fixed("/api/v1/stations/SG-H01/chutes"),
		body: func(w *world) any { return sorting.NumberedChuteMap(w.Sim.Fixtures().NextHops("SG-H01")) },
		foreign: func(w *world) []probe {
			m := sorting.NumberedChuteMap(w.Sim.Fixtures().NextHops("SG-H01"))
			m.ExceptionChute, m.OverflowChute = m.OverflowChute, m.ExceptionChute
			return []probe{{who: "supB", method: "PUT", path: "/api/v1/stations/SG-H01/chutes", body: m,
				header: []string{"If-Match", fmt.Sprintf("%q", fmt.Sprint(w.chuteVersion))}, want: []int{http.StatusForbidden}}}
		}},
	"POST /api/v1/bags": {access: "any", path: fixed("/api/v1/bags"),
		body:    func(w *world) any { return map[string]string{"next_hop": "SG-H02", "scan_id": w.scan()} },
		foreign: nameStation("/api/v1/bags")},
	"GET /api/v1/bags": {access: "any", path: fixed("/api/v1/bags"), foreign: func(w *world) []probe {
		return []probe{
			{who: "opB", method: "GET", path: "/api/v1/bags?status=open", scoped: true, mustNotShow: []string{w.bagOpenA.ID}},
			{who: "opB", method: "GET", path: "/api/v1/bags?status=sealed", scoped: true, mustNotShow: []string{w.bagSealedA.ID, w.bagSealedA2.ID}},
		}
	}},
	"GET /api/v1/bags/{id}": {access: "any", path: func(w *world) string { return "/api/v1/bags/" + w.bagOpenA.ID }, foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/bags/" + w.bagOpenA.ID, want: refused}}
	}},
	"POST /api/v1/bags/{id}/items": {access: "any", path: func(w *world) string { return "/api/v1/bags/" + w.bagOpenA.ID + "/items" },
		body: func(w *world) any { return map[string]string{"tracking_no": w.parcelA2, "scan_id": w.scan()} },
		foreign: func(w *world) []probe {
			return []probe{{who: "opB", method: "POST", path: "/api/v1/bags/" + w.bagOpenA.ID + "/items",
				body: map[string]string{"tracking_no": w.parcelA2, "scan_id": w.scan()}, want: refused}}
		}},
	"DELETE /api/v1/bags/{id}/items/{tracking_no}": {access: "any",
		path: func(w *world) string {
			return "/api/v1/bags/" + w.bagOpenA.ID + "/items/" + w.parcelA + "?scan_id=" + w.scan()
		},
		foreign: func(w *world) []probe {
			return []probe{{who: "opB", method: "DELETE", path: "/api/v1/bags/" + w.bagOpenA.ID + "/items/" + w.parcelA + "?scan_id=" + w.scan(), want: refused}}
		}},
	"POST /api/v1/bags/{id}/seal": {access: "any", path: func(w *world) string { return "/api/v1/bags/" + w.bagOpenA.ID + "/seal" },
		body: func(w *world) any { return map[string]any{"weight_g": 1000, "scan_id": w.scan()} },
		foreign: func(w *world) []probe {
			return []probe{{who: "opB", method: "POST", path: "/api/v1/bags/" + w.bagOpenA.ID + "/seal",
				body: map[string]any{"weight_g": 1000, "scan_id": w.scan()}, want: refused}}
		}},
	"GET /api/v1/bags/{id}/label": {access: "any", path: func(w *world) string { return "/api/v1/bags/" + w.bagSealedA.ID + "/label" }, foreign: func(w *world) []probe {
		return []probe{
			{who: "opB", method: "GET", path: "/api/v1/bags/" + w.bagSealedA.ID + "/label", want: refused},
			{who: "opB", method: "GET", path: "/api/v1/bags/" + w.bagSealedA.ID + "/label?format=png", want: refused},
		}
	}},
	"POST /api/v1/handovers": {access: "any", path: fixed("/api/v1/handovers"),
		body: func(w *world) any {
			return map[string]string{"type": "lastmile", "rider_id": "R-9", "scan_id": w.scan()}
		},
		foreign: nameStation("/api/v1/handovers")},
	"GET /api/v1/handovers": {access: "any", path: fixed("/api/v1/handovers"), foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/handovers?status=open", scoped: true, mustNotShow: []string{w.handoverA.ID}}}
	}},
	"GET /api/v1/handovers/{id}": {access: "any", path: func(w *world) string { return "/api/v1/handovers/" + w.handoverA.ID }, foreign: func(w *world) []probe {
		return []probe{{who: "opB", method: "GET", path: "/api/v1/handovers/" + w.handoverA.ID, want: refused}}
	}},
	"POST /api/v1/handovers/{id}/bags": {access: "any", path: func(w *world) string { return "/api/v1/handovers/" + w.handoverA.ID + "/bags" },
		body: func(w *world) any { return map[string]string{"bag_id": w.bagSealedA2.ID, "scan_id": w.scan()} },
		foreign: func(w *world) []probe {
			return []probe{
				// B's operator puts B's bag on A's handover.
				{who: "opB", method: "POST", path: "/api/v1/handovers/" + w.handoverA.ID + "/bags",
					body: map[string]string{"bag_id": w.bagSealedB.ID, "scan_id": w.scan()}, want: refused},
				// B's operator puts A's bag on B's handover.
				{who: "opB", method: "POST", path: "/api/v1/handovers/" + w.handoverB.ID + "/bags",
					body: map[string]string{"bag_id": w.bagSealedA2.ID, "scan_id": w.scan()}, want: refused},
				// A's operator puts B's bag on A's handover.
				{who: "op1", method: "POST", path: "/api/v1/handovers/" + w.handoverA.ID + "/bags",
					body: map[string]string{"bag_id": w.bagSealedB.ID, "scan_id": w.scan()}, want: refused},
			}
		}},
	"POST /api/v1/handovers/{id}/close": {access: "any", path: func(w *world) string { return "/api/v1/handovers/" + w.handoverA.ID + "/close" },
		body: func(w *world) any { return map[string]string{"scan_id": w.scan()} },
		foreign: func(w *world) []probe {
			return []probe{{who: "opB", method: "POST", path: "/api/v1/handovers/" + w.handoverA.ID + "/close",
				body: map[string]string{"scan_id": w.scan()}, want: refused}}
		}},
	"GET /api/v1/handovers/{id}/manifest": {access: "any", path: func(w *world) string { return "/api/v1/handovers/" + w.handoverA.ID + "/manifest" }, foreign: func(w *world) []probe {
		return []probe{
			{who: "opB", method: "GET", path: "/api/v1/handovers/" + w.handoverA.ID + "/manifest", want: refused},
			{who: "opB", method: "GET", path: "/api/v1/handovers/" + w.handoverA.ID + "/manifest?format=csv", want: refused},
		}
	}},

	"GET /api/v1/ops/sites/{id}/release": {access: "roles:ops", path: fixed("/api/v1/ops/sites/SG-H01/release"), none: "ops act network-wide"},
	"PUT /api/v1/ops/sites/{id}/release": {access: "roles:ops", path: fixed("/api/v1/ops/sites/SG-H01/release"), none: "ops act network-wide",
		body: func(*world) any {
			return map[string]any{"stable_flow": "full", "stable_version": 1, "candidate_flow": "full", "candidate_version": 1, "mode": "shadow", "ratio_bp": 0}
		}},
	"POST /api/v1/ops/sites/{id}/release/kill": {access: "roles:ops", path: fixed("/api/v1/ops/sites/SG-H01/release/kill"), none: "ops act network-wide",
		body: func(*world) any { return map[string]string{"reason": "authz probe"} }},
	"GET /api/v1/ops/sites/{id}/ramp": {access: "roles:ops", path: fixed("/api/v1/ops/sites/SG-H01/ramp"), none: "ops act network-wide"},
	"GET /api/v1/ops/releases":        {access: "roles:ops", path: fixed("/api/v1/ops/releases"), none: "ops act network-wide"},
	"PUT /api/v1/ops/flows/{name}": {access: "roles:ops", path: fixed("/api/v1/ops/flows/full"), none: "flows are network-wide configuration",
		body: func(*world) any { return "name: full\n" }},
	"GET /api/v1/ops/flows/{name}": {access: "roles:ops", path: fixed("/api/v1/ops/flows/full"), none: "flows are network-wide configuration"},
	"GET /api/v1/ops/markets":      {access: "roles:ops", path: fixed("/api/v1/ops/markets"), none: "markets are network-wide configuration"},
	"PUT /api/v1/ops/markets/{market}/flow": {access: "roles:ops", path: fixed("/api/v1/ops/markets/SG/flow"), none: "markets are network-wide configuration",
		body: func(*world) any { return map[string]any{"flow": "full", "version": 0, "reason": "authz probe"} }},
	"GET /api/v1/ops/flow-audit":              {access: "roles:ops", path: fixed("/api/v1/ops/flow-audit"), none: "ops act network-wide"},
	"GET /api/v1/ops/audit":                   {access: "roles:ops", path: fixed("/api/v1/ops/audit"), none: "ops act network-wide"},
	"GET /api/v1/ops/reconciliation":          {access: "roles:ops", path: fixed("/api/v1/ops/reconciliation"), none: "ops act network-wide"},
	"GET /api/v1/ops/reconciliation/{id}":     {access: "roles:ops", path: fixed("/api/v1/ops/reconciliation/1"), none: "ops act network-wide"},
	"POST /api/v1/ops/reconciliation/offline": {access: "roles:ops", path: fixed("/api/v1/ops/reconciliation/offline"), none: "ops act network-wide", body: func(*world) any { return map[string]any{"site": "SG-H01"} }},
	"POST /api/v1/ops/whatif": {access: "roles:ops", path: fixed("/api/v1/ops/whatif"), none: "ops act network-wide",
		body: func(*world) any {
			return map[string]any{"station": "SG-H01", "flow": map[string]any{"name": "full", "version": 1}}
		}},
	"GET /debug/pprof/":                       {access: "roles:ops", path: fixed("/debug/pprof/"), none: "process internals"},
	"GET /debug/pprof/cmdline":                {access: "roles:ops", path: fixed("/debug/pprof/cmdline"), none: "process internals"},
	"GET /debug/pprof/profile":                {access: "roles:ops", path: fixed("/debug/pprof/profile?seconds=1"), none: "process internals"},
	"GET /debug/pprof/symbol":                 {access: "roles:ops", path: fixed("/debug/pprof/symbol"), none: "process internals"},
	"GET /debug/pprof/trace":                  {access: "roles:ops", path: fixed("/debug/pprof/trace?seconds=1"), none: "process internals"},
	"GET /api/v1/ops/outbox":                  {access: "roles:ops", path: fixed("/api/v1/ops/outbox"), none: "ops act network-wide"},
	"GET /api/v1/ops/outbox/dead":             {access: "roles:ops", path: fixed("/api/v1/ops/outbox/dead"), none: "ops act network-wide"},
	"POST /api/v1/ops/outbox/dead/{id}/retry": {access: "roles:ops", path: fixed("/api/v1/ops/outbox/dead/1/retry"), none: "ops act network-wide"},
	"POST /api/v1/ops/outbox/dead/retry":      {access: "roles:ops", path: fixed("/api/v1/ops/outbox/dead/retry"), none: "ops act network-wide"},
	"GET /api/v1/ops/outbox/pending":          {access: "roles:ops", path: fixed("/api/v1/ops/outbox/pending"), none: "ops act network-wide"},
	"POST /api/v1/ops/outbox/pending/retry":   {access: "roles:ops", path: fixed("/api/v1/ops/outbox/pending/retry"), none: "ops act network-wide"},
	"GET /api/v1/ops/outbox/audit":            {access: "roles:ops", path: fixed("/api/v1/ops/outbox/audit"), none: "ops act network-wide"},
	"/api/":                                   {access: "public", path: fixed("/api/v1/no-such-endpoint"), none: "answers 404 to everyone"},
	"/":                                       {access: "raw", path: fixed("/"), none: "static web UI assets; data comes through the API"},
}

// nameStation is B's operator trying to act at A by naming A's station in
// the body: the station comes from the token, and a client-sent station_id
// is refused (400), never used.
func nameStation(path string) func(w *world) []probe {
	return func(w *world) []probe {
		var body map[string]any
		switch path {
		case "/api/v1/bags":
			body = map[string]any{"next_hop": "VN-H02", "scan_id": w.scan(), "station_id": "SG-H01"}
		case "/api/v1/handovers":
			body = map[string]any{"type": "lastmile", "rider_id": "R-9", "scan_id": w.scan(), "station_id": "SG-H01"}
		default:
			body = map[string]any{"tracking_no": w.parcelA2, "scan_id": w.scan(), "station_id": "SG-H01"}
		}
		return []probe{{who: "opB", method: "POST", path: path, body: body, want: []int{http.StatusBadRequest}}}
	}
}

// TestAuthorizationMatrix: for every route of routes.go, a caller without a
// token, an operator on supervisor and ops routes, a supervisor on ops
// routes, and station B's operators on station A's bags, handovers, chutes
// and sort results are all refused; nothing is written anywhere; and each
// refusal is in the log under its request id.
func TestAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	routes := declaredRoutes(t)
	var declared []string
	for _, r := range routes {
		declared = append(declared, r.Pattern)
		row, ok := authzMatrix[r.Pattern]
		if !ok {
			t.Errorf("route %q (access %s) has no row in authzMatrix: add one", r.Pattern, r.Access)
			continue
		}
		if row.access != r.Access {
			t.Errorf("route %q: routes.go lets %s call it, the matrix expects %s", r.Pattern, r.Access, row.access)
		}
		if row.foreign == nil && row.none == "" {
			t.Errorf("route %q: the row must list station B's attempts or say why there are none", r.Pattern)
		}
	}
	for p := range authzMatrix {
		if !slices.Contains(declared, p) {
			t.Errorf("matrix row %q names no route of routes.go", p)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	w := newWorld(t, true)
	tokens := map[string]string{"op1": w.op1, "sup1": w.sup1, "ops1": w.ops1, "opB": w.opB, "supB": w.supB}
	counts := map[string]int{}
	for _, r := range routes {
		row := authzMatrix[r.Pattern]
		method, _, found := strings.Cut(r.Pattern, " ")
		if !found {
			method = "GET"
		}
		body := func() any {
			if row.body == nil {
				return nil
			}
			return row.body(w)
		}
		var probes []probe
		if r.Access != "public" && r.Access != "raw" {
			probes = append(probes, probe{method: method, path: row.path(w), body: body(), want: []int{http.StatusUnauthorized}})
			counts["no token"]++
		}
		if roles, ok := strings.CutPrefix(r.Access, "roles:"); ok {
			for _, who := range []string{"op1", "sup1"} {
				role := map[string]string{"op1": "operator", "sup1": "supervisor"}[who]
				if !slices.Contains(strings.Split(roles, ","), role) {
					probes = append(probes, probe{who: who, method: method, path: row.path(w), body: body(), want: []int{http.StatusForbidden}})
					counts[role+" on "+roles]++
				}
			}
		}
		if row.foreign != nil {
			for _, p := range row.foreign(w) {
				probes = append(probes, p)
				counts["station B on A's objects"]++
			}
		}
		for i, p := range probes {
			t.Run(fmt.Sprintf("%s/%d-%s", r.Pattern, i, or(p.who, "anonymous")), func(t *testing.T) {
				w.refusal(t, tokens[p.who], p)
			})
		}
	}
	report(t, "authorization matrix: %d routes; refusals checked: %v", len(routes), counts)
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// refusal sends p and checks that it was refused, wrote nothing and was
// logged.
func (w *world) refusal(t *testing.T, token string, p probe) {
	before := fingerprint(t, w.App.DB())
	rid := fmt.Sprintf("authz-%d", w.seq.Add(1))
	r := w.Send(p.method, p.path, token, p.body, append([]string{"X-Request-Id", rid}, p.header...)...)
	if p.scoped {
		if r.Status != http.StatusOK {
			t.Fatalf("%s %s: status %d: %s", p.method, p.path, r.Status, r.Body)
		}
		for _, id := range p.mustNotShow {
			if strings.Contains(string(r.Body), id) {
				t.Errorf("%s %s shows another station's %s: %s", p.method, p.path, id, r.Body)
			}
		}
	} else if !slices.Contains(p.want, r.Status) {
		t.Fatalf("%s %s as %q: status %d, want one of %v: %s", p.method, p.path, p.who, r.Status, p.want, r.Body)
	}
	if changed := changedTables(before, fingerprint(t, w.App.DB())); len(changed) > 0 {
		t.Errorf("%s %s (status %d) wrote to %v", p.method, p.path, r.Status, changed)
	}
	if p.scoped {
		return
	}
	// Every refusal is in the access log with its status, error code and
	// caller; a 403 also has a "refused: ..." warning naming the caller.
	var access, warned bool
	for _, e := range w.Logs.All() {
		f := e.ContextMap()
		if f["request_id"] != rid {
			continue
		}
		if e.Message == "http request" && f["status"] == int64(r.Status) && f["error_code"] != nil && f["operator"] == p.who {
			access = true
		}
		if strings.HasPrefix(e.Message, "refused:") && f["operator"] == p.who {
			warned = true
		}
	}
	if !access {
		t.Errorf("%s %s: refusal %d not in the access log with its error code and caller", p.method, p.path, r.Status)
	}
	if r.Status == http.StatusForbidden && !warned {
		t.Errorf("%s %s: 403 without a \"refused:\" warning naming %s", p.method, p.path, p.who)
	}
}
