package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/expresshub/station/packing"
	"github.com/expresshub/station/sorting"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/floor"
	"github.com/expresshub/station/workorder"
	"go.uber.org/zap"
)

type chuteBagRequest struct {
	BagID  string `json:"bag_id"`
	ScanID string `json:"scan_id"`
}

// chuteOf reads the station and chute of a floor route, refusing another
// station's.
func (s *Server) chuteOf(r *http.Request) (string, int, error) {
	station, err := s.pathStation(r)
	if err != nil {
		return "", 0, err
	}
	chute, err := strconv.Atoi(r.PathValue("chute"))
	if err != nil || chute < 1 || chute > sorting.MaxChute {
		return "", 0, Errorf(http.StatusBadRequest, "invalid_chute", fmt.Sprintf("chute must be a number from 1 to %d", sorting.MaxChute))
	}
	return station, chute, nil
}

// chuteBag hangs a bag under a chute (PUT) or takes it down (DELETE).
func (s *Server) chuteBag(bind bool) HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		_, chute, err := s.chuteOf(r)
		if err != nil {
			return err
		}
		var req chuteBagRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		var rc workorder.Receipt[packing.ChuteBinding]
		if bind {
			rc, err = s.floor.Bind(r.Context(), actor(r), chute, req.BagID, req.ScanID)
		} else {
			rc, err = s.floor.Unbind(r.Context(), actor(r), chute, req.ScanID)
		}
		if err != nil {
			return s.packingErr(r, err)
		}
		writeReceipt(w, http.StatusOK, rc)
		return nil
	}
}

// setChuteState enables or disables a chute (supervisors).
func (s *Server) setChuteState(w http.ResponseWriter, r *http.Request) error {
	_, chute, err := s.chuteOf(r)
	if err != nil {
		return err
	}
	var req struct {
		Disabled *bool `json:"disabled"`
	}
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.Disabled == nil {
		return Errorf(http.StatusBadRequest, "invalid_body", `send {"disabled": true} or {"disabled": false}`)
	}
	if err := s.floor.SetDisabled(r.Context(), actor(r), chute, *req.Disabled); err != nil {
		return err
	}
	s.security.Info("chute state changed", zap.String("request_id", requestID(r.Context())), zap.String("operator", principal(r).ID),
		zap.String("station", principal(r).StationID), zap.Int("chute", chute), zap.Bool("disabled", *req.Disabled))
	writeJSON(w, http.StatusOK, map[string]any{"chute": chute, "disabled": *req.Disabled})
	return nil
}

// putBagLimits sets the station's bag limits (supervisors).
func (s *Server) putBagLimits(w http.ResponseWriter, r *http.Request) error {
	if _, err := s.pathStation(r); err != nil {
		return err
	}
	var req packing.BagLimits
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	l, err := s.packing.SetLimits(r.Context(), actor(r), req)
	if err != nil {
		return err
	}
	s.refit(r)
	s.floor.Hub().Changed(principal(r).StationID)
	writeJSON(w, http.StatusOK, l)
	return nil
}

// refit lets the station's chutes follow their bags after the limits or a
// bag's contents changed. The change itself is done; a chute left as it was
// is what the floor already showed, so a failure is logged, not answered.
func (s *Server) refit(r *http.Request) {
	if s.floor == nil {
		return
	}
	if err := s.floor.Refit(r.Context(), principal(r).StationID); err != nil {
		s.log.Warn("floor refit", zap.String("request_id", requestID(r.Context())), zap.Error(err))
	}
}

// getFloor is the station's floor as JSON.
func (s *Server) getFloor(w http.ResponseWriter, r *http.Request) error {
	station, err := s.pathStation(r)
	if err != nil {
		return err
	}
	v, err := s.floor.View(r.Context(), station)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

// floorEvents streams the station's floor as server-sent events: the
// whole floor at once, then again within a second of every change
// anywhere in the deployment (and at least every floor.Resync), until the
// client goes. A browser reads it with fetch (EventSource cannot send the
// bearer token).
func (s *Server) floorEvents(w http.ResponseWriter, r *http.Request) error {
	station, err := s.pathStation(r)
	if err != nil {
		return err
	}
	v, err := s.floor.View(r.Context(), station)
	if err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	changes, cancel := s.floor.Hub().Subscribe(station)
	defer cancel()
	send := func(v floor.View) error {
		// A stream outlives the server's write timeout: each event gets
		// its own.
		_ = rc.SetWriteDeadline(time.Now().Add(10 * time.Second))
		body, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "event: floor\ndata: %s\n\n", strings.ReplaceAll(string(body), "\n", "")); err != nil {
			return err
		}
		return rc.Flush()
	}
	if err := send(v); err != nil {
		return nil // the client went
	}
	resync := time.NewTicker(floor.Resync)
	defer resync.Stop()
	token, _ := bearerToken(r)
	checked := time.Now()
	for {
		read := s.floor.Live
		select {
		case <-r.Context().Done():
			return nil
		case <-changes:
			// Changes close together go out as one.
			time.Sleep(50 * time.Millisecond)
		case <-resync.C:
			// The resync is for a signal that never came: read afresh.
			read = s.floor.View
		}
		// A stream outlives the check at its start: a session logged out,
		// expired or of an operator made inactive stops getting the floor
		// within a resync. One check per resync, not per change, so live
		// floors still share one read per change.
		if time.Since(checked) >= floor.Resync {
			checked = time.Now()
			// The stream has no request deadline; the check gets its own.
			actx, cancel := context.WithTimeout(r.Context(), floor.Resync)
			_, err := s.auth.Authenticate(actx, token)
			cancel()
			if errors.Is(err, auth.ErrUnauthenticated) {
				s.security.Warn("floor stream ended: session no longer valid", zap.String("request_id", requestID(r.Context())),
					zap.String("operator", principal(r).ID), zap.String("station", station))
				return nil
			}
		}
		v, err := read(r.Context(), station)
		if err != nil {
			if r.Context().Err() != nil {
				return nil
			}
			s.log.Warn("floor view", zap.String("request_id", requestID(r.Context())), zap.Error(err))
			continue
		}
		if err := send(v); err != nil {
			return nil
		}
	}
}
