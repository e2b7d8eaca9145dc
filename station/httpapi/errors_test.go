package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/workorder"
)

// errorEdge serves one route whose handler returns whatever *ret holds,
// through the same adapter as every route.
func errorEdge(t *testing.T) (h *harness, get func() (*http.Response, errorBody), ret *error) {
	h = newHarness(t)
	ret = new(error)
	mux := http.NewServeMux()
	mux.Handle("GET /err", h.srv.handle(public, func(w http.ResponseWriter, r *http.Request) error { return *ret }))
	srv := httptest.NewServer(h.srv.observe(h.srv.recoverPanics(mux)))
	t.Cleanup(srv.Close)
	get = func() (*http.Response, errorBody) {
		t.Helper()
		resp, err := http.Get(srv.URL + "/err")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var body errorBody
		if err := json.Unmarshal(raw, &body); err != nil {
			t.Fatalf("body %s: %v", raw, err)
		}
		return resp, body
	}
	return h, get, ret
}

// A domain error nobody has heard of at the edge is answered by its kind
// and code: adding one never needs an edit here.
func TestANewDomainErrorMapsByItsKind(t *testing.T) {
	_, get, ret := errorEdge(t)

	errXY := fault.New(fault.Conflict, "x_y", "the x is already y")
	*ret = fmt.Errorf("frobnicate SG1000000001: %w", errXY.With(map[string]any{"x": "X1"}, "x X1 is already y"))
	resp, body := get()
	if resp.StatusCode != http.StatusConflict || body.Error.Code != "x_y" ||
		body.Error.Message != "frobnicate SG1000000001: x X1 is already y" || body.Error.Details["x"] != "X1" {
		t.Fatalf("%d %+v", resp.StatusCode, body)
	}

	for kind, status := range map[fault.Kind]int{
		fault.Invalid:         http.StatusBadRequest,
		fault.NotFound:        http.StatusNotFound,
		fault.Conflict:        http.StatusConflict,
		fault.Precondition:    http.StatusPreconditionFailed,
		fault.Forbidden:       http.StatusForbidden,
		fault.Unauthenticated: http.StatusUnauthorized,
		fault.Unavailable:     http.StatusServiceUnavailable,
	} {
		*ret = fault.New(kind, "new_"+kind.String(), "m")
		if resp, body := get(); resp.StatusCode != status || body.Error.Code != "new_"+kind.String() {
			t.Errorf("%v: %d %+v, want %d", kind, resp.StatusCode, body, status)
		}
	}
}

// Unavailable is retryable and says only what its sentinel says: the
// wrapped cause (a downstream's own message) stays in the log.
func TestUnavailableHidesItsCauseAndAsksForARetry(t *testing.T) {
	_, get, ret := errorEdge(t)
	errDown := fault.New(fault.Unavailable, "thing_down", "the thing is unavailable; retry shortly")
	*ret = fmt.Errorf("%w: thing service: %w", errDown, errors.New("dial tcp 10.0.0.7:9191: secret-host refused"))
	resp, body := get()
	if resp.StatusCode != http.StatusServiceUnavailable || body.Error.Code != "thing_down" ||
		body.Error.Message != "the thing is unavailable; retry shortly" || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("%d %v %+v", resp.StatusCode, resp.Header, body)
	}
}

// Anything unclassified, or classified Internal, is 500 "internal" and
// none of its text reaches the client; it is logged instead.
func TestUnclassifiedErrorIs500WithoutItsMessage(t *testing.T) {
	h, get, ret := errorEdge(t)
	for _, err := range []error{
		errors.New("pq: secret column exploded"),
		fmt.Errorf("sort: %w", errors.New("secret invariant broken")),
		fault.New(fault.Internal, "secret_code", "secret internal state"),
	} {
		*ret = err
		resp, body := get()
		if resp.StatusCode != http.StatusInternalServerError || body.Error.Code != "internal" ||
			body.Error.Message != "internal error" || body.Error.Details != nil {
			t.Fatalf("%v: %d %+v", err, resp.StatusCode, body)
		}
	}
	if n := h.logs.FilterMessage("request failed").Len(); n != 3 {
		t.Fatalf("%d internal errors logged, want 3", n)
	}
}

// The codes clients saw when one table listed every sentinel: they must
// not change now that the errors carry them.
func TestDomainErrorsKeepTheirStatusAndCode(t *testing.T) {
	_, get, ret := errorEdge(t)
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{auth.ErrUnauthenticated, http.StatusUnauthorized, "unauthenticated"},
		{auth.ErrForbidden, http.StatusForbidden, "forbidden"},
		{auth.ErrInvalidOperator, http.StatusBadRequest, "invalid_operator"},
		{auth.ErrOperatorExists, http.StatusConflict, "operator_exists"},
		{auth.ErrInvalidTerminal, http.StatusBadRequest, "invalid_terminal_id"},
		{workorder.ErrScanIDReused, http.StatusConflict, "scan_id_reused"},
		{ident.ErrInvalidTrackingNo, http.StatusBadRequest, "invalid_tracking_no"},
		{ident.ErrInvalidSiteID, http.StatusBadRequest, "invalid_site_id"},
		{ident.ErrInvalidScanID, http.StatusBadRequest, "missing_scan_id"},
		{ident.ErrInvalidBagID, http.StatusBadRequest, "invalid_bag_id"},
		{ident.ErrInvalidHandoverID, http.StatusBadRequest, "invalid_handover_id"},
		{sorting.ErrMissingScanID, http.StatusBadRequest, "missing_scan_id"},
		{sorting.ErrNoChuteMap, http.StatusConflict, "no_chute_map"},
		{sorting.ErrInvalidChuteMap, http.StatusBadRequest, "invalid_chute_map"},
		{&sorting.ChuteMapError{Problems: []string{"p"}}, http.StatusBadRequest, "invalid_chute_map"},
		{sorting.ErrVersionConflict, http.StatusPreconditionFailed, "version_conflict"},
		{sorting.ErrNoFlow, http.StatusConflict, "no_flow"},
		{sorting.ErrNotFound, http.StatusNotFound, "not_found"},
		{sorting.ErrInvalidRule, http.StatusBadRequest, "invalid_release_rule"},
		{&sorting.RuleError{Problems: []string{"p"}}, http.StatusBadRequest, "invalid_release_rule"},
		{sorting.ErrRuleConflict, http.StatusPreconditionFailed, "version_conflict"},
		{sorting.ErrMatchRateTooLow, http.StatusConflict, "match_rate_too_low"},
		{&sorting.GuardError{MatchRate: 0.9}, http.StatusConflict, "match_rate_too_low"},
		{sorting.ErrReasonRequired, http.StatusBadRequest, "reason_required"},
		{sorting.ErrMismatchNotFound, http.StatusNotFound, "not_found"},
		{packing.ErrOtherStation, http.StatusForbidden, "forbidden"},
		{packing.ErrMissingScanID, http.StatusBadRequest, "missing_scan_id"},
		{packing.ErrInvalidNextHop, http.StatusBadRequest, "invalid_next_hop"},
		{packing.ErrUnknownNextHop, http.StatusBadRequest, "unknown_next_hop"},
		{packing.ErrWeightOutOfBounds, http.StatusBadRequest, "invalid_weight"},
		{packing.ErrInvalidBagStatus, http.StatusBadRequest, "invalid_status"},
		{packing.ErrInvalidHandover, http.StatusBadRequest, "invalid_handover"},
		{packing.ErrUnknownTrip, http.StatusBadRequest, "unknown_trip"},
		{packing.ErrBagNotFound, http.StatusNotFound, "bag_not_found"},
		{packing.ErrNotInBag, http.StatusNotFound, "not_in_bag"},
		{packing.ErrHandoverNotFound, http.StatusNotFound, "handover_not_found"},
		{packing.ErrNotSorted, http.StatusConflict, "not_sorted"},
		{packing.ErrWrongNextHop, http.StatusConflict, "wrong_next_hop"},
		{packing.ErrAlreadyBagged, http.StatusConflict, "already_bagged"},
		{packing.ErrBagSealed, http.StatusConflict, "bag_sealed"},
		{packing.ErrBagEmpty, http.StatusConflict, "bag_empty"},
		{packing.ErrBagNotSealed, http.StatusConflict, "bag_not_sealed"},
		{packing.ErrTripOtherStation, http.StatusConflict, "trip_other_station"},
		{packing.ErrHandoverClosed, http.StatusConflict, "handover_closed"},
		{packing.ErrHandoverEmpty, http.StatusConflict, "handover_empty"},
		{packing.ErrBagOnHandover, http.StatusConflict, "bag_on_handover"},
		{packing.ErrNotOnTrip, http.StatusConflict, "next_hop_not_on_trip"},
		{packing.ErrDependencyUnavailable, http.StatusServiceUnavailable, "dependency_unavailable"},
		{workorder.ErrEventNotFound, http.StatusNotFound, "event_not_found"},
	}
	for _, c := range cases {
		*ret = fmt.Errorf("op: %w", c.err)
		resp, body := get()
		if resp.StatusCode != c.status || body.Error.Code != c.code {
			t.Errorf("%v: %d %s, want %d %s", c.err, resp.StatusCode, body.Error.Code, c.status, c.code)
		}
		if c.status < 500 && !strings.HasPrefix(body.Error.Message, "op: ") {
			t.Errorf("%v: message %q lost the wrapped detail", c.err, body.Error.Message)
		}
	}
	// The typed refusals bring their facts along.
	*ret = &sorting.RuleError{Problems: []string{"ratio is above 1"}}
	if _, body := get(); fmt.Sprint(body.Error.Details["problems"]) != "[ratio is above 1]" {
		t.Errorf("rule details %v", body.Error.Details)
	}
	*ret = &sorting.GuardError{MatchRate: 0.5, Comparisons: 10, MinMatchRate: 0.999, MinComparisons: 1000}
	if _, body := get(); body.Error.Details["comparisons"] != float64(10) || body.Error.Details["min_match_rate"] != 0.999 {
		t.Errorf("guard details %v", body.Error.Details)
	}
}

// TestAnAnswerThatCannotBeEncodedIsA500NotAnEmpty200: a value JSON cannot
// carry (here a time past year 9999, as a what-if report's window end once
// was) must not go out as 200 with an empty body, which a client takes for
// an answer.
func TestAnAnswerThatCannotBeEncodedIsA500NotAnEmpty200(t *testing.T) {
	rec := httptest.NewRecorder()
	writeJSON(rec, http.StatusOK, map[string]any{"to": time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})
	var body errorBody
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusInternalServerError || body.Error.Code != "internal" {
		t.Fatalf("%d %q: %v", rec.Code, rec.Body.String(), err)
	}
}
