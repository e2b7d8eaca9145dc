package httpapi

import (
	"net/http"
	"slices"
	"testing"

	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
)

// TestExceptionsAPIReturnsTheReasonCodeTable: GET /api/v1/exceptions is
// sorting.ReasonCodes, the list README.md shows too.
func TestExceptionsAPIReturnsTheReasonCodeTable(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.addOperator("op-1", "SG-H01", auth.RoleOperator)
	h.expectError("GET", "/api/v1/exceptions", "", nil, http.StatusUnauthorized, "unauthenticated")
	var got struct {
		Codes []sorting.ReasonCode `json:"codes"`
	}
	h.do("GET", "/api/v1/exceptions", h.login("op-1"), nil, http.StatusOK, &got)
	if want := sorting.ReasonCodes(); !slices.Equal(got.Codes, want) {
		t.Fatalf("GET /api/v1/exceptions:\n%+v\nwant\n%+v", got.Codes, want)
	}
}
