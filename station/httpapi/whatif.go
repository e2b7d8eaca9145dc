package httpapi

import (
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/sorting/whatif"
)

// whatifRequest is the JSON body of POST /api/v1/ops/whatif: a recorded
// window and the candidate. An NDJSON upload (Content-Type
// application/x-ndjson) names the same in the query instead: station,
// flow=NAME@VERSION, chute_map=<the map as JSON>, bag_swap.
type whatifRequest struct {
	Station  string            `json:"station"`
	From     time.Time         `json:"from"`
	To       time.Time         `json:"to"`
	ChuteMap *sorting.ChuteMap `json:"chute_map,omitempty"`
	Flow     *whatif.FlowRef   `json:"flow,omitempty"`
	BagSwap  string            `json:"bag_swap,omitempty"` // a Go duration, e.g. 5m
}

// replayMargin is kept back from the request's deadline, so a replay that
// runs out of time is answered with its own code, before the request's
// deadline turns every answer into a 503.
const replayMargin = 250 * time.Millisecond

// whatif replays a station's recorded window, or uploaded scans, against a
// candidate and answers the report (JSON), or its per-chute CSV with
// ?format=csv or Accept: text/csv. It writes nothing.
func (s *Server) whatif(w http.ResponseWriter, r *http.Request) error {
	if s.whatifs == nil {
		return Errorf(http.StatusNotFound, "not_found", "what-if replay is not available on this instance")
	}
	var req whatifRequest
	var scans []whatif.Scan
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/x-ndjson" {
		q := r.URL.Query()
		req.Station, req.BagSwap = q.Get("station"), q.Get("bag_swap")
		if f := q.Get("flow"); f != "" {
			ref, err := whatif.ParseFlowRef(f)
			if err != nil {
				return err
			}
			req.Flow = &ref
		}
		if m := q.Get("chute_map"); m != "" {
			var cm sorting.ChuteMap
			if err := json.Unmarshal([]byte(m), &cm); err != nil {
				return Errorf(http.StatusBadRequest, "invalid_chute_map", "chute_map must be a chute map as JSON")
			}
			req.ChuteMap = &cm
		}
		var err error
		scans, err = whatif.ParseNDJSON(r.Body, s.whatifs.Config().MaxParcels)
		if err != nil {
			if apiErr := jsonError(err); apiErr.(*Error).Status == http.StatusRequestEntityTooLarge {
				return apiErr
			}
			return err
		}
		if scans == nil {
			scans = []whatif.Scan{}
		}
	} else if err := decodeJSON(r, &req); err != nil {
		return err
	}
	var swap time.Duration
	if req.BagSwap != "" {
		d, err := time.ParseDuration(req.BagSwap)
		if err != nil || d <= 0 {
			return whatif.ErrInvalidBagSwap
		}
		swap = d
	}
	ctx := r.Context()
	if dl, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl.Add(-replayMargin))
		defer cancel()
	}
	rep, err := s.whatifs.Replay(ctx, whatif.Input{Station: strings.ToUpper(strings.TrimSpace(req.Station)),
		From: req.From, To: req.To, Scans: scans, BagSwap: swap},
		whatif.Candidate{ChuteMap: req.ChuteMap, Flow: req.Flow})
	if err != nil {
		return err
	}
	if r.URL.Query().Get("format") == "csv" || strings.Contains(r.Header.Get("Accept"), "text/csv") {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="whatif-`+rep.Station+`.csv"`)
		w.WriteHeader(http.StatusOK)
		return rep.WriteCSV(w)
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
