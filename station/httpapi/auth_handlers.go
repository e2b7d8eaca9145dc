package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/ratelimit"
)

type loginRequest struct {
	OperatorID string `json:"operator_id"`
	Password   string `json:"password"`
	// TerminalID names the device (optional); the session is bound to it
	// and its requests share that terminal's rate limit.
	TerminalID string `json:"terminal_id"`
}

// login is rate limited per operator id and per client address before any
// password is checked, so guessing is slow whichever axis an attacker varies.
func (s *Server) login(w http.ResponseWriter, r *http.Request) error {
	var req loginRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	req.OperatorID = strings.TrimSpace(req.OperatorID)
	if req.OperatorID == "" || req.Password == "" {
		return Errorf(http.StatusBadRequest, "invalid_request", "operator_id and password are required")
	}
	if req.TerminalID != "" && !auth.ValidTerminalID(req.TerminalID) {
		return Errorf(http.StatusBadRequest, "invalid_terminal_id", "terminal_id must be 1-64 letters, digits, dot, dash or underscore")
	}
	limit := ratelimit.PerMinute(s.cfg.LoginPerMinute)
	for _, key := range []string{"login:op:" + strings.ToLower(req.OperatorID), "login:ip:" + clientIP(r)} {
		if d := s.limiter.Allow(r.Context(), key, limit); !d.Allowed {
			s.security.Warn("login refused: rate limited", zap.String("request_id", requestID(r.Context())),
				zap.String("operator", req.OperatorID), zap.String("client", clientIP(r)), zap.String("limit", strings.SplitN(key, ":", 3)[1]))
			return &Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message: "too many login attempts; wait and retry", RetryAfter: d.RetryAfter}
		}
	}
	sess, err := s.auth.LoginAt(r.Context(), req.OperatorID, req.Password, req.TerminalID)
	if err != nil {
		if errors.Is(err, auth.ErrUnauthenticated) {
			s.security.Warn("login failed", zap.String("request_id", requestID(r.Context())),
				zap.String("operator", req.OperatorID), zap.String("client", clientIP(r)))
		}
		return err
	}
	s.security.Info("login", zap.String("request_id", requestID(r.Context())), zap.String("operator", sess.Operator.ID),
		zap.String("station", sess.Operator.StationID), zap.String("terminal", sess.TerminalID), zap.String("client", clientIP(r)))
	setPrincipal(r.Context(), sess.Operator.ID)
	writeJSON(w, http.StatusOK, sess)
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) error {
	token, _ := bearerToken(r)
	if err := s.auth.Logout(r.Context(), token); err != nil {
		return err
	}
	s.security.Info("logout", zap.String("request_id", requestID(r.Context())), zap.String("operator", principal(r).ID))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) me(w http.ResponseWriter, r *http.Request) error {
	p := principal(r)
	writeJSON(w, http.StatusOK, auth.Operator{ID: p.ID, Name: p.Name, StationID: p.StationID, Role: p.Role})
	return nil
}
