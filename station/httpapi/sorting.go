package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/expresshub/station/ident"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/workorder"
)

type scanRequest struct {
	TrackingNo string `json:"tracking_no"`
	ScanID     string `json:"scan_id"`
}

func (s *Server) scanFrom(r *http.Request) (sorting.Scan, error) {
	var req scanRequest
	if err := decodeJSON(r, &req); err != nil {
		return sorting.Scan{}, err
	}
	p := principal(r)
	return sorting.Scan{
		StationID:  p.StationID,
		TrackingNo: req.TrackingNo,
		ScanID:     strings.TrimSpace(req.ScanID),
		Actor:      workorder.Actor{Kind: workorder.ActorOperator, ID: p.ID},
	}, nil
}

// sort answers where a scanned parcel goes. A business exception is a 200
// with the exception chute; only a client's mistake is a 4xx.
func (s *Server) sort(w http.ResponseWriter, r *http.Request) error {
	scan, err := s.scanFrom(r)
	if err != nil {
		return err
	}
	out, err := s.sorting.Sort(r.Context(), scan, sorting.SortOptions{Trace: r.URL.Query().Get("trace") == "1"})
	if err != nil {
		return err
	}
	if out.Replayed || out.Value.Trace == nil {
		w.Header().Set("Idempotent-Replayed", strconv.FormatBool(out.Replayed))
		writeRawJSON(w, http.StatusOK, out.Body)
		return nil
	}
	writeJSON(w, http.StatusOK, out.Value)
	return nil
}

func (s *Server) latestSort(w http.ResponseWriter, r *http.Request) error {
	tn, err := ident.ParseTrackingNo(r.PathValue("tracking_no"))
	if err != nil {
		return err
	}
	p := principal(r)
	res, err := s.sorting.Latest(r.Context(), p.StationID, tn)
	if err != nil {
		return err
	}
	if r.URL.Query().Get("trace") == "1" {
		raw, err := s.sorting.Trace(r.Context(), p.StationID, res.WorkOrderID)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, struct {
			sorting.Result
			Trace rawJSON `json:"trace"`
		}{res, rawJSON(raw)})
		return nil
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request) error {
	scan, err := s.scanFrom(r)
	if err != nil {
		return err
	}
	out, err := s.sorting.Receive(r.Context(), scan)
	if err != nil {
		return err
	}
	w.Header().Set("Idempotent-Replayed", strconv.FormatBool(out.Replayed))
	writeRawJSON(w, http.StatusOK, out.Body)
	return nil
}

func (s *Server) getChutes(w http.ResponseWriter, r *http.Request) error {
	station, err := s.pathStation(r)
	if err != nil {
		return err
	}
	m, err := s.sorting.Chutes().Get(r.Context(), station)
	if err != nil {
		return err
	}
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(m.Version)))
	writeJSON(w, http.StatusOK, m)
	return nil
}

// putChutes replaces a station's chute map. The writer names the version it
// read in If-Match; a map changed meanwhile is refused, not overwritten.
func (s *Server) putChutes(w http.ResponseWriter, r *http.Request) error {
	station, err := s.pathStation(r)
	if err != nil {
		return err
	}
	var m sorting.ChuteMap
	if err := decodeJSON(r, &m); err != nil {
		return err
	}
	expect := 0
	if im := r.Header.Get("If-Match"); im != "" {
		v, err := parseIfMatch(im, 1)
		if err != nil {
			return err
		}
		expect = v
	} else if _, err := s.sorting.Chutes().Get(r.Context(), station); err == nil {
		return Errorf(http.StatusPreconditionRequired, "precondition_required",
			"this station has a chute map: send If-Match with the version you read")
	} else if !errors.Is(err, sorting.ErrNoChuteMap) {
		return err
	}
	stored, err := s.sorting.Chutes().Put(r.Context(), station, m, expect, principal(r).ID)
	if err != nil {
		return err
	}
	s.security.Info("chute map changed", zap.String("request_id", requestID(r.Context())), zap.String("operator", principal(r).ID),
		zap.String("station", station), zap.Int("version", stored.Version))
	w.Header().Set("ETag", strconv.Quote(strconv.Itoa(stored.Version)))
	writeJSON(w, http.StatusOK, stored)
	return nil
}

// listReasonCodes is the table of exception codes and belt reasons, for
// terminals and integrators: the same list README.md shows.
func (s *Server) listReasonCodes(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"codes": sorting.ReasonCodes()})
	return nil
}

func (s *Server) listFlows(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, map[string]any{"flows": s.sorting.Flows().List()})
	return nil
}

// rawJSON embeds stored JSON as is.
type rawJSON []byte

func (j rawJSON) MarshalJSON() ([]byte, error) {
	if len(j) == 0 {
		return []byte("null"), nil
	}
	return j, nil
}

// parcel is the parcel's state at the caller's station and its work orders
// there.
func (s *Server) parcel(w http.ResponseWriter, r *http.Request) error {
	tn, err := ident.ParseTrackingNo(r.PathValue("tracking_no"))
	if err != nil {
		return err
	}
	v, err := s.sorting.Parcel(r.Context(), principal(r).StationID, tn)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// chuteMapDetails lists a refused map's problems and, when some next hops
// cannot be, each of them with its reason.
