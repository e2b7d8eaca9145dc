package httpapi

import (
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Flows are network-wide configuration: the ops role publishes versions and
// assigns them to markets; every instance picks them up.

// publishFlow stores the YAML body as the next version of the flow named in
// the path. The optional ?reason= goes into the audit.
func (s *Server) publishFlow(w http.ResponseWriter, r *http.Request) error {
	src, err := io.ReadAll(r.Body)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return jsonError(err)
		}
		return Errorf(http.StatusBadRequest, "invalid_body", "the flow config could not be read")
	}
	pub, err := s.sorting.Flows().Publish(r.Context(), r.PathValue("name"), src, principal(r).ID,
		strings.TrimSpace(r.URL.Query().Get("reason")))
	if err != nil {
		return err
	}
	status := http.StatusCreated
	if pub.Unchanged {
		status = http.StatusOK
	}
	writeJSON(w, status, pub)
	return nil
}

// getFlow is one stored version (?version=, default the newest) with who
// published it, when, and its diff against the version before.
func (s *Server) getFlow(w http.ResponseWriter, r *http.Request) error {
	version := 0
	if v := r.URL.Query().Get("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return Errorf(http.StatusBadRequest, "invalid_version", "version must be a positive number")
		}
		version = n
	}
	fv, err := s.sorting.Flows().FlowVersion(r.Context(), r.PathValue("name"), version)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, fv)
	return nil
}

func (s *Server) listMarkets(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"markets": s.sorting.Flows().Markets()})
	return nil
}

type assignRequest struct {
	Flow    string `json:"flow"`
	Version int    `json:"version"` // 0: follow the newest version
	Reason  string `json:"reason"`
}

// assignMarket changes which flow a market sorts with, audited.
func (s *Server) assignMarket(w http.ResponseWriter, r *http.Request) error {
	var req assignRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	a, err := s.sorting.Flows().Assign(r.Context(), strings.ToUpper(r.PathValue("market")), req.Flow, req.Version,
		principal(r).ID, strings.TrimSpace(req.Reason))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, a)
	return nil
}

func (s *Server) flowAudit(w http.ResponseWriter, r *http.Request) error {
	entries, err := s.sorting.Flows().FlowAudit(r.Context(), strings.TrimSpace(r.URL.Query().Get("subject")), 200)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
	return nil
}
