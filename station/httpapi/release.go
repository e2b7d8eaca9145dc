package httpapi

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
)

// Gray release is network-wide ops work: the ops role manages every site's
// rule, not only its own station's.

func (s *Server) siteID(r *http.Request) (string, error) {
	id, err := ident.ParseSiteID(r.PathValue("id"))
	return string(id), err
}

func (s *Server) getRelease(w http.ResponseWriter, r *http.Request) error {
	site, err := s.siteID(r)
	if err != nil {
		return err
	}
	rule, err := s.releases.Get(site)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(rule.Version)))
	writeJSON(w, http.StatusOK, rule)
	return nil
}

type releaseRequest struct {
	StableFlow       string        `json:"stable_flow"`
	StableVersion    int           `json:"stable_version"`
	CandidateFlow    string        `json:"candidate_flow"`
	CandidateVersion int           `json:"candidate_version"`
	Mode             string        `json:"mode"`
	RatioBP          int           `json:"ratio_bp"`
	Salt             string        `json:"salt"`
	Force            bool          `json:"force"`
	Reason           string        `json:"reason"`
	Ramp             *sorting.Ramp `json:"ramp"` // a schedule: the ratio steps up by itself while the guards hold
}

// putRelease changes a site's rule. If-Match carries the version read (0
// for a site without a rule yet); raising the candidate's share is guarded by
// the shadow match rate unless forced with a reason.
func (s *Server) putRelease(w http.ResponseWriter, r *http.Request) error {
	site, err := s.siteID(r)
	if err != nil {
		return err
	}
	var req releaseRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	im := r.Header.Get("If-Match")
	if im == "" {
		return Errorf(http.StatusPreconditionRequired, "precondition_required", `send If-Match with the version from GET ("0" for a site without a rule)`)
	}
	expect, err := parseIfMatch(im, 0)
	if err != nil {
		return err
	}
	rule, err := s.releases.Put(r.Context(), sorting.RuleChange{
		Rule: sorting.Rule{SiteID: site, StableFlow: req.StableFlow, StableVersion: req.StableVersion,
			CandidateFlow: req.CandidateFlow, CandidateVersion: req.CandidateVersion, Mode: req.Mode, RatioBP: req.RatioBP, Salt: req.Salt,
			Ramp: req.Ramp},
		ExpectVersion: expect, Actor: principal(r).ID, Force: req.Force, Reason: strings.TrimSpace(req.Reason),
	})
	if err != nil {
		return err
	}
	s.security.Info("release rule changed", zap.String("request_id", requestID(r.Context())), zap.String("operator", principal(r).ID),
		zap.String("site", site), zap.Int("version", rule.Version), zap.String("mode", rule.Mode), zap.Int("ratio_bp", rule.RatioBP),
		zap.Bool("forced", req.Force))
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(rule.Version)))
	writeJSON(w, http.StatusOK, rule)
	return nil
}

type killRequest struct {
	Reason string `json:"reason"`
}

func (s *Server) killRelease(w http.ResponseWriter, r *http.Request) error {
	site, err := s.siteID(r)
	if err != nil {
		return err
	}
	var req killRequest
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
	}
	rule, err := s.releases.Kill(r.Context(), site, principal(r).ID, orDefault(strings.TrimSpace(req.Reason), "kill switch"))
	if err != nil {
		return err
	}
	s.security.Info("release rule killed", zap.String("request_id", requestID(r.Context())), zap.String("operator", principal(r).ID),
		zap.String("site", site), zap.Int("version", rule.Version))
	writeJSON(w, http.StatusOK, rule)
	return nil
}

// getRamp is the site's ramp: schedule, step, each guard against its
// threshold and the progress toward the next step.
func (s *Server) getRamp(w http.ResponseWriter, r *http.Request) error {
	site, err := s.siteID(r)
	if err != nil {
		return err
	}
	st, err := s.releases.RampStatus(r.Context(), site)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// releaseOverview is one row per site: mode, step, match rate, last change.
func (s *Server) releaseOverview(w http.ResponseWriter, r *http.Request) error {
	rows, err := s.releases.Overview(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sites": rows})
	return nil
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) error {
	site := strings.ToUpper(strings.TrimSpace(r.URL.Query().Get("site")))
	entries, err := s.releases.Audit(r.Context(), site, 200)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": entries})
	return nil
}

func (s *Server) reconciliation(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	site, err := ident.ParseSiteID(q.Get("site"))
	if err != nil {
		return err
	}
	since, err := parseSince(q.Get("since"))
	if err != nil {
		return err
	}
	rep, err := s.sorting.Reconciliation(r.Context(), string(site), since)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// parseSince reads an RFC 3339 time or a duration back from now ("1h");
// the default is the last 24 hours.
func parseSince(v string) (time.Time, error) {
	if v == "" {
		return time.Now().Add(-24 * time.Hour), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, Errorf(http.StatusBadRequest, "invalid_since", "since must be RFC 3339 or a duration like 1h")
	}
	return t, nil
}

func (s *Server) mismatch(w http.ResponseWriter, r *http.Request) error {
	m, err := s.sorting.Mismatch(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

type offlineRequest struct {
	Site             string `json:"site"`
	CandidateFlow    string `json:"candidate_flow"`
	CandidateVersion int    `json:"candidate_version"`
	Since            string `json:"since"`
	Limit            int    `json:"limit"`
}

func (s *Server) offlineReconciliation(w http.ResponseWriter, r *http.Request) error {
	var req offlineRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	site, err := ident.ParseSiteID(req.Site)
	if err != nil {
		return err
	}
	since, err := parseSince(req.Since)
	if err != nil {
		return err
	}
	rep, err := s.sorting.Offline(r.Context(), sorting.OfflineRequest{SiteID: string(site), CandidateFlow: req.CandidateFlow,
		CandidateVersion: req.CandidateVersion, Since: since, Limit: req.Limit})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
