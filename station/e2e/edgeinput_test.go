package e2e

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/stationtest"
)

// TestJunkIfMatchIsRefusedNot500 sends If-Match values no GET ever gave,
// among them versions past PostgreSQL's integer range, to both writers that
// take one: each is a client's mistake (400 invalid_if_match), never a 500,
// and nothing is written.
func TestJunkIfMatchIsRefusedNot500(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	sup, ops := st.Login("sup1"), st.Login("ops1")
	var m sorting.StoredChuteMap
	st.Do("GET", "/api/v1/stations/SG-H01/chutes", sup, nil, http.StatusOK, &m)
	rule := map[string]any{"stable_flow": "full", "stable_version": 1, "mode": "off"}
	junk := []string{
		`"2147483648"`, `"9223372036854775808"`, `"99999999999999999999999"`, `2147483648`,
		`"-1"`, `"+1"`, `"1.0"`, `"1e3"`, `"0x1"`, `" 1"`, `"abc"`, `*`, `W/"1"`, `"1", "2"`, `""`, `"`, `"1`,
	}
	for _, im := range junk {
		for _, w := range []struct {
			path, token string
			body        any
		}{
			{"/api/v1/stations/SG-H01/chutes", sup, m.ChuteMap},
			{"/api/v1/ops/sites/SG-H01/release", ops, rule},
		} {
			r := st.Send("PUT", w.path, w.token, w.body, "If-Match", im)
			var e stationtest.APIError
			if r.Status != http.StatusBadRequest || json.Unmarshal(r.Body, &e) != nil || e.Error.Code != "invalid_if_match" {
				t.Errorf("PUT %s If-Match %s: %d %s, want 400 invalid_if_match", w.path, im, r.Status, r.Body)
			}
		}
	}
	var after sorting.StoredChuteMap
	st.Do("GET", "/api/v1/stations/SG-H01/chutes", sup, nil, http.StatusOK, &after)
	if after.Version != m.Version {
		t.Fatalf("chute map version %d after refused writes, want %d", after.Version, m.Version)
	}
	if n := st.Count(`SELECT count(*) FROM release_rules WHERE site_id = 'SG-H01'`); n != 0 {
		t.Fatalf("%d release rules written by refused writes", n)
	}
}

// TestChuteMapRefusesNextHopsThatCannotBe: a site the basic service does
// not know, the station itself and another market's site are each named in
// the refusal, and the working map stays.
func TestChuteMapRefusesNextHopsThatCannotBe(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	sup := st.Login("sup1")
	var m sorting.StoredChuteMap
	st.Do("GET", "/api/v1/stations/SG-H01/chutes", sup, nil, http.StatusOK, &m)
	for _, hop := range []string{"SG-Z999", "SG-H01", "VN-H01"} {
		next := m.ChuteMap
		next.NextHops = map[string][]int{hop: {500}}
		for h, cs := range m.NextHops {
			next.NextHops[h] = cs
		}
		r := st.Send("PUT", "/api/v1/stations/SG-H01/chutes", sup, next, "If-Match", `"1"`)
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Details struct {
					NextHops []sorting.BadNextHop `json:"next_hops"`
				} `json:"details"`
			} `json:"error"`
		}
		if r.Status != http.StatusBadRequest || json.Unmarshal(r.Body, &e) != nil || e.Error.Code != "invalid_chute_map" {
			t.Fatalf("next hop %s: %d %s, want 400 invalid_chute_map", hop, r.Status, r.Body)
		}
		if len(e.Error.Details.NextHops) != 1 || e.Error.Details.NextHops[0].NextHop != hop {
			t.Fatalf("next hop %s: details %s do not name it", hop, r.Body)
		}
	}
	var after sorting.StoredChuteMap
	st.Do("GET", "/api/v1/stations/SG-H01/chutes", sup, nil, http.StatusOK, &after)
	if after.Version != 1 {
		t.Fatalf("chute map version %d after refused maps, want 1", after.Version)
	}
}

// TestStationIDInAPathIsCanonical: a station id typed in lower case is the
// operator's own station, not another station (it used to be refused 403
// and logged as a cross-station attempt); one that is no station id at all
// is a client's mistake; another station's stays refused.
func TestStationIDInAPathIsCanonical(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	sup := st.Login("sup1")
	var upper, lower sorting.StoredChuteMap
	st.Do("GET", "/api/v1/stations/SG-H01/chutes", sup, nil, http.StatusOK, &upper)
	st.Do("GET", "/api/v1/stations/sg-h01/chutes", sup, nil, http.StatusOK, &lower)
	if lower.StationID != "SG-H01" || lower.Version != upper.Version {
		t.Fatalf("sg-h01 read %+v, want SG-H01's map v%d", lower, upper.Version)
	}
	for _, c := range []struct {
		path   string
		status int
		code   string
	}{
		{"/api/v1/stations/sg-h01/floor", http.StatusOK, ""},
		{"/api/v1/stations/H01/floor", http.StatusBadRequest, "invalid_site_id"},
		{"/api/v1/stations/SG-H01x/chutes", http.StatusBadRequest, "invalid_site_id"},
		{"/api/v1/stations/sg-h02/chutes", http.StatusForbidden, "forbidden"},
	} {
		r := st.Send("GET", c.path, sup, nil)
		var e stationtest.APIError
		if r.Status != c.status || (c.code != "" && (json.Unmarshal(r.Body, &e) != nil || e.Error.Code != c.code)) {
			t.Errorf("GET %s: %d %s, want %d %s", c.path, r.Status, r.Body, c.status, c.code)
		}
	}
}
