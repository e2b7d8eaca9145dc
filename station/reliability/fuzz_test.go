package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/sorting"
)

// Fuzz targets of every request decoder, over HTTP against a whole station.
// Run as normal tests they execute their seeds; `go test -fuzz=FuzzX` runs
// one for longer. The properties, for any input: never a 5xx (a panic is
// recovered as 500, so this covers panics too), an error is JSON with a
// stable code, and a 4xx writes nothing.

// hostileSeeds are bodies every decoder must survive.
var hostileSeeds = []string{
	``,
	`null`,
	`[]`,
	`"text"`,
	`42`,
	`{}`,
	`{`,
	`{"a":1}{"a":1}`,
	`{"scan_id":"x","scan_id":"y"}`,
	`{"tracking_no":123,"scan_id":456}`,
	`{"tracking_no":null,"scan_id":null}`,
	`{"tracking_no":"\u0000\u0000","scan_id":"\ud800"}`,
	"{\"tracking_no\":\"SG1000000001\",\"scan_id\":\"\xff\xfe\"}",
	`{"tracking_no":"SG100000000000000000000000000000000001","scan_id":"long-tn"}`,
	`{"tracking_no":"SG1000000001","scan_id":"` + strings.Repeat("s", 5000) + `"}`,
	`{"tracking_no":"` + strings.Repeat("9", 5000) + `","scan_id":"huge-tn"}`,
	`{"weight_g":1e400,"scan_id":"big"}`,
	`{"weight_g":-1,"scan_id":"neg"}`,
	`{"weight_g":9223372036854775808,"scan_id":"overflow"}`,
	strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000),
	`{"next_hops":{"SG-H02":[1,1]},"exception_chute":0}`,
	`{"next_hops":{"` + strings.Repeat("X", 3000) + `":[1]},"exception_chute":2,"overflow_chute":3,"reject_chute":4}`,
	`{"mode":"split","ratio_bp":-5,"stable_flow":"full","stable_version":1}`,
	`{"mode":"split","ratio_bp":100000000000,"stable_flow":"full","stable_version":1}`,
	// NUL is valid JSON and a valid Go string, and PostgreSQL text refuses it.
	`{"tracking_no":"SG1000000001","scan_id":"nul\u0000"}`,
	`{"next_hop":"\u0000","scan_id":"nul-1"}`,
	`{"bag_id":"\u0000","scan_id":"nul-2"}`,
	`{"type":"lastmile","rider_id":"\u0000","scan_id":"nul-3"}`,
	`{"type":"thirdparty","carrier":"\u0000","scan_id":"nul-4"}`,
	`{"operator_id":"op\u0000","password":"x\u0000"}`,
	`{"site":"\u0000","candidate_flow":"\u0000"}`,
	`{"reason":"\u0000"}`,
	`{"stable_flow":"full\u0000","stable_version":1,"mode":"off","salt":"\u0000"}`,
	`{"next_hops":{"SG-H02\u0000":[1]},"exception_chute":2,"overflow_chute":3,"reject_chute":4}`,
}

// serverOwned are fields only the server may set.
var serverOwned = []string{"station_id", "operator_id", "status", "version", "work_order_id"}

// decoderRoute is one route whose body a fuzz target feeds.
type decoderRoute struct {
	who    string // operator whose token is used
	method string
	path   func(w *world) string
	header func(w *world) []string
	valid  func(w *world) map[string]any // a body the route accepts
	own    []string                      // server-owned names this body legitimately carries
}

// fuzzWorld is a world plus a client that reports instead of failing, for
// use inside fuzz functions (which must not call the *F).
type fuzzWorld struct {
	*world
	c      *client
	tokens map[string]string
	last   map[string]string // the database's fingerprint after the previous input
}

func newFuzzWorld(f *testing.F, objects bool) *fuzzWorld {
	w := newWorld(f, objects)
	return &fuzzWorld{world: w, c: newClient(f, w.URL), tokens: map[string]string{
		"op1": w.op1, "sup1": w.sup1, "ops1": w.ops1, "opB": w.opB, "": "",
	}, last: fingerprint(f, w.App.DB())}
}

// hostile sends one request and checks the properties. Inputs run one at
// a time per process, so the fingerprint after one input is the one before
// the next.
func (fw *fuzzWorld) hostile(t *testing.T, who, method, path string, body []byte, header ...string) answer {
	t.Helper()
	before := fw.last
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := fw.c.send(ctx, method, path, fw.tokens[who], body, header...)
	if err != nil {
		t.Fatalf("%s %s %q: %v", method, path, body, err)
	}
	if a.Status >= 500 {
		t.Fatalf("%s %s %q: status %d: %s", method, path, body, a.Status, a.Body)
	}
	after := fingerprint(t, fw.App.DB())
	fw.last = after
	if a.Status >= 400 {
		var e struct {
			Error struct {
				Code string `json:"code"`
			} `json:"error"`
		}
		if err := json.Unmarshal(a.Body, &e); err != nil || e.Error.Code == "" {
			t.Errorf("%s %s %q: status %d without a JSON error code: %s", method, path, body, a.Status, a.Body)
		}
		if changed := changedTables(before, after); len(changed) > 0 {
			t.Errorf("%s %s %q: status %d (%s) but wrote to %v", method, path, body, a.Status, e.Error.Code, changed)
		}
	}
	return a
}

func (fw *fuzzWorld) fuzzRoutes(f *testing.F, routes []decoderRoute) {
	for i, r := range routes {
		for _, s := range hostileSeeds {
			f.Add(uint8(i), []byte(s))
		}
		valid, _ := json.Marshal(r.valid(fw.world))
		f.Add(uint8(i), valid)
		for _, field := range serverOwned {
			if !slices.Contains(r.own, field) {
				f.Add(uint8(i), withField(r.valid(fw.world), field))
			}
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		r := routes[int(route)%len(routes)]
		var header []string
		if r.header != nil {
			header = r.header(fw.world)
		}
		fw.hostile(t, r.who, r.method, r.path(fw.world), body, header...)
	})
}

func withField(body map[string]any, field string) []byte {
	body[field] = map[string]any{"station_id": "SG-H02", "operator_id": "ops1", "status": "sealed", "version": 99, "work_order_id": "00000000-0000-0000-0000-000000000001"}[field]
	b, _ := json.Marshal(body)
	return b
}

func scanRoutes() []decoderRoute {
	scan := func(w *world) map[string]any {
		return map[string]any{"tracking_no": w.parcelA2, "scan_id": w.scan()}
	}
	return []decoderRoute{
		{who: "op1", method: "POST", path: fixed("/api/v1/receive"), valid: scan},
		{who: "op1", method: "POST", path: fixed("/api/v1/sort"), valid: scan},
		{who: "op1", method: "POST", path: fixed("/api/v1/sort?trace=1"), valid: scan},
	}
}

func packingRoutes() []decoderRoute {
	return []decoderRoute{
		{who: "op1", method: "POST", path: fixed("/api/v1/bags"),
			valid: func(w *world) map[string]any { return map[string]any{"next_hop": "SG-H02", "scan_id": w.scan()} }},
		{who: "op1", method: "POST", path: func(w *world) string { return "/api/v1/bags/" + w.bagOpenA.ID + "/items" },
			valid: func(w *world) map[string]any { return map[string]any{"tracking_no": w.parcelA2, "scan_id": w.scan()} }},
		{who: "op1", method: "DELETE", path: func(w *world) string { return "/api/v1/bags/" + w.bagOpenA.ID + "/items/" + w.parcelA },
			valid: func(w *world) map[string]any { return map[string]any{"scan_id": w.scan()} }},
		{who: "op1", method: "POST", path: func(w *world) string { return "/api/v1/bags/" + w.bagOpenA.ID + "/seal" },
			valid: func(w *world) map[string]any { return map[string]any{"weight_g": 1500, "scan_id": w.scan()} }},
		{who: "op1", method: "POST", path: fixed("/api/v1/handovers"),
			valid: func(w *world) map[string]any {
				return map[string]any{"type": "lastmile", "rider_id": "R-5", "scan_id": w.scan()}
			}},
		{who: "op1", method: "POST", path: func(w *world) string { return "/api/v1/handovers/" + w.handoverA.ID + "/bags" },
			valid: func(w *world) map[string]any { return map[string]any{"bag_id": w.bagSealedA2.ID, "scan_id": w.scan()} }},
		{who: "op1", method: "POST", path: func(w *world) string { return "/api/v1/handovers/" + w.handoverA.ID + "/close" },
			valid: func(w *world) map[string]any { return map[string]any{"scan_id": w.scan()} }},
	}
}

func chuteRoutes() []decoderRoute {
	return []decoderRoute{{who: "sup1", method: "PUT", path: fixed("/api/v1/stations/SG-H01/chutes"),
		header: func(w *world) []string { return []string{"If-Match", currentChuteETag(w)} },
		valid: func(w *world) map[string]any {
			m := sorting.NumberedChuteMap(w.Sim.Fixtures().NextHops("SG-H01"))
			return map[string]any{"next_hops": m.NextHops, "exception_chute": m.ExceptionChute, "overflow_chute": m.OverflowChute, "reject_chute": m.RejectChute}
		}}}
}

// currentChuteETag reads the chute map's version, so a fuzzed map reaches
// the validator instead of stopping at the version check.
func currentChuteETag(w *world) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m, err := w.App.Sorting().Chutes().Get(ctx, "SG-H01")
	if err != nil {
		return `"1"`
	}
	return fmt.Sprintf(`"%d"`, m.Version)
}

func releaseRoutes() []decoderRoute {
	return []decoderRoute{
		{who: "ops1", method: "PUT", path: fixed("/api/v1/ops/sites/SG-H02/release"),
			header: func(w *world) []string { return []string{"If-Match", currentRuleETag(w, "SG-H02")} },
			valid: func(*world) map[string]any {
				return map[string]any{"stable_flow": "full", "stable_version": 1, "candidate_flow": "full_v2", "candidate_version": 1, "mode": "shadow", "ratio_bp": 100}
			}},
		{who: "ops1", method: "POST", path: fixed("/api/v1/ops/sites/SG-H02/release/kill"),
			valid: func(*world) map[string]any { return map[string]any{"reason": "fuzz"} }},
		{who: "ops1", method: "POST", path: fixed("/api/v1/ops/reconciliation/offline"),
			valid: func(*world) map[string]any {
				return map[string]any{"site": "SG-H02", "candidate_flow": "full_v2", "candidate_version": 1, "limit": 5}
			}},
		{who: "ops1", method: "POST", path: fixed("/api/v1/ops/whatif"),
			valid: func(*world) map[string]any {
				return map[string]any{"station": "SG-H02", "from": "2026-12-07T00:00:00Z", "to": "2026-12-07T01:00:00Z",
					"flow": map[string]any{"name": "full_v2", "version": 1}, "bag_swap": "5m"}
			}},
	}
}

func currentRuleETag(w *world, site string) string {
	r, err := w.App.Releases().Get(site)
	if err != nil {
		return `"0"`
	}
	return fmt.Sprintf(`"%d"`, r.Version)
}

func loginRoutes() []decoderRoute {
	return []decoderRoute{{who: "", method: "POST", path: fixed("/api/v1/auth/login"), own: []string{"operator_id"},
		valid: func(*world) map[string]any { return map[string]any{"operator_id": "op1", "password": "password-test"} }}}
}

func FuzzScanBody(f *testing.F)    { newFuzzWorld(f, true).fuzzRoutes(f, scanRoutes()) }
func FuzzPackingBody(f *testing.F) { newFuzzWorld(f, true).fuzzRoutes(f, packingRoutes()) }
func FuzzChuteMap(f *testing.F)    { newFuzzWorld(f, false).fuzzRoutes(f, chuteRoutes()) }
func FuzzReleaseRule(f *testing.F) { newFuzzWorld(f, false).fuzzRoutes(f, releaseRoutes()) }
func FuzzLoginBody(f *testing.F)   { newFuzzWorld(f, false).fuzzRoutes(f, loginRoutes()) }

// FuzzPathValues feeds path values: tracking numbers, bag, handover and
// site ids, and the query strings beside them.
func FuzzPathValues(f *testing.F) {
	fw := newFuzzWorld(f, true)
	paths := []struct{ who, method, pattern string }{
		{"op1", "GET", "/api/v1/sort/%s"},
		{"op1", "GET", "/api/v1/sort/%s?trace=1"},
		{"op1", "GET", "/api/v1/bags/%s"},
		{"op1", "GET", "/api/v1/bags/%s/label?format=png"},
		{"op1", "GET", "/api/v1/bags?status=%s"},
		{"op1", "DELETE", "/api/v1/bags/" + fw.bagOpenA.ID + "/items/%s?scan_id=p"},
		{"op1", "GET", "/api/v1/handovers/%s/manifest?format=csv"},
		{"op1", "GET", "/api/v1/stations/%s/chutes"},
		{"ops1", "GET", "/api/v1/ops/sites/%s/release"},
		{"ops1", "GET", "/api/v1/ops/reconciliation/%s"},
		{"ops1", "POST", "/api/v1/ops/outbox/dead/%s/retry"},
		{"ops1", "GET", "/api/v1/ops/audit?site=%s"},
		{"ops1", "GET", "/api/v1/ops/reconciliation?site=%s"},
	}
	for i := range paths {
		for _, s := range []string{"SG1000000001", fw.parcelA, fw.bagSealedA.ID, "open", "SG-H01", "1", "-1",
			"99999999999999999999999", "%00", "..", " sg1000000001 ", strings.Repeat("A", 3000), "\u00e9\u00e8", "%2F%2E%2E",
			"\x00", "\x8d", "SG1000000001\x00"} {
			f.Add(uint8(i), s)
		}
	}
	f.Fuzz(func(t *testing.T, i uint8, value string) {
		p := paths[int(i)%len(paths)]
		fw.hostile(t, p.who, p.method, fmt.Sprintf(p.pattern, url.PathEscape(value)), nil)
	})
}

// TestServerOwnedFieldsAreRefused: for every write route, a body that
// carries a field the server owns (station, operator, status, version, work
// order) is refused with 400 and writes nothing, while the same body
// without it is accepted: the 400 is for the field, nothing else.
func TestServerOwnedFieldsAreRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, true)
	c := newClient(t, w.URL)
	tokens := map[string]string{"op1": w.op1, "sup1": w.sup1, "ops1": w.ops1, "": ""}
	var routes []decoderRoute
	for _, rs := range [][]decoderRoute{scanRoutes(), packingRoutes(), chuteRoutes(), releaseRoutes(), loginRoutes()} {
		routes = append(routes, rs...)
	}
	n := 0
	for _, r := range routes {
		path := r.path(w)
		for _, field := range serverOwned {
			if slices.Contains(r.own, field) {
				continue
			}
			var header []string
			if r.header != nil {
				header = r.header(w)
			}
			before := fingerprint(t, w.App.DB())
			a := c.must(t, r.method, path, tokens[r.who], withField(r.valid(w), field), http.StatusBadRequest, nil, header...)
			if !strings.Contains(string(a.Body), field) {
				t.Errorf("%s %s with %s: the error does not name the field: %s", r.method, path, field, a.Body)
			}
			if changed := changedTables(before, fingerprint(t, w.App.DB())); len(changed) > 0 {
				t.Errorf("%s %s with %s: wrote to %v", r.method, path, field, changed)
			}
			n++
		}
		// Without the field the body is accepted.
		var header []string
		if r.header != nil {
			header = r.header(w)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		a, err := c.send(ctx, r.method, path, tokens[r.who], r.valid(w), header...)
		cancel()
		if err != nil || a.Status >= 300 {
			t.Errorf("%s %s: the valid body was not accepted: %v %d %s", r.method, path, err, a.Status, a.Body)
		}
	}
	report(t, "server-owned fields: %d bodies refused with 400 across %d write routes", n, len(routes))
}
