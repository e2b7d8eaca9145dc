package httpapi

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/station/auth"
)

func TestLoginMeLogout(t *testing.T) {
	h := newHarness(t)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	token := h.login("ana")

	var me auth.Operator
	h.do("GET", "/api/v1/me", token, nil, http.StatusOK, &me)
	if me.ID != "ana" || me.StationID != "SG-H01" || me.Role != auth.RoleOperator {
		t.Fatalf("me = %+v", me)
	}
	h.do("POST", "/api/v1/auth/logout", token, nil, http.StatusNoContent, nil)
	h.expectError("GET", "/api/v1/me", token, nil, http.StatusUnauthorized, "unauthenticated")
}

func TestTokenStoredOnlyAsHash(t *testing.T) {
	h := newHarness(t)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	token := h.login("ana")
	var n int
	if err := h.db.QueryRow(context.Background(),
		`SELECT count(*) FROM auth_tokens WHERE position($1::bytea in token_hash) > 0`, []byte(token)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("raw token stored")
	}
}

func TestWrongCredentialsLookAlike(t *testing.T) {
	h := newHarness(t)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	var wrongPassword, unknown apiError
	h.do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "ana", "password": "nope-nope"}, http.StatusUnauthorized, &wrongPassword)
	h.do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "ghost", "password": "nope-nope"}, http.StatusUnauthorized, &unknown)
	if wrongPassword != unknown || wrongPassword.Error.Code != "unauthenticated" {
		t.Fatalf("answers differ: %+v vs %+v", wrongPassword, unknown)
	}
}

func TestExpiredTokenIsRejected(t *testing.T) {
	h := newHarness(t)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	token := h.login("ana")
	h.do("GET", "/api/v1/me", token, nil, http.StatusOK, nil)
	h.now = h.now.Add(2 * time.Hour) // TTL is one hour
	h.expectError("GET", "/api/v1/me", token, nil, http.StatusUnauthorized, "unauthenticated")
}

func TestMissingOrMalformedTokenIsRejected(t *testing.T) {
	h := newHarness(t)
	h.expectError("GET", "/api/v1/me", "", nil, http.StatusUnauthorized, "unauthenticated")
	h.expectError("GET", "/api/v1/me", "not-a-token", nil, http.StatusUnauthorized, "unauthenticated")
	h.expectError("GET", "/api/v1/me", strings.Repeat("x", 500), nil, http.StatusUnauthorized, "unauthenticated")
}

func TestOpsRoutesNeedOpsRole(t *testing.T) {
	h := newHarness(t)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	h.addOperator("chen", "SG-H01", auth.RoleOps)
	h.expectError("GET", "/debug/pprof/", h.login("ana"), nil, http.StatusForbidden, "forbidden")
	h.do("GET", "/debug/pprof/", h.login("chen"), nil, http.StatusOK, nil)
	if h.logs.FilterMessage("refused: role").Len() == 0 {
		t.Fatal("refusal not logged")
	}
}

func TestLoginIsRateLimitedPerOperator(t *testing.T) {
	h := newHarness(t) // 5 attempts a minute
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	for i := 0; i < 5; i++ {
		h.do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "ana", "password": "wrong-password"}, http.StatusUnauthorized, nil)
	}
	resp := h.do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "ana", "password": "password-ana"}, http.StatusTooManyRequests, nil)
	if resp.Header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestLoginIsRateLimitedPerAddress(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < 5; i++ {
		h.do("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "user" + string(rune('a'+i)), "password": "wrong-password"}, http.StatusUnauthorized, nil)
	}
	h.expectError("POST", "/api/v1/auth/login", "", map[string]string{"operator_id": "userz", "password": "wrong-password"}, http.StatusTooManyRequests, "rate_limited")
}

func TestLogsNeverHoldPasswordsOrTokens(t *testing.T) {
	h := newHarness(t)
	h.addOperator("ana", "SG-H01", auth.RoleOperator)
	token := h.login("ana")
	h.do("GET", "/api/v1/me", token, nil, http.StatusOK, nil)
	for _, e := range h.logs.All() {
		line := e.Message
		for k, v := range e.ContextMap() {
			line += " " + k + "=" + strings.TrimSpace(fmtAny(v))
		}
		if strings.Contains(line, token) || strings.Contains(line, "password-ana") {
			t.Fatalf("secret in log: %s", line)
		}
	}
}
