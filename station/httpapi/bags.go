package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"github.com/expresshub/station/packing"
)

// actor is the caller as packing sees them: acting at their own station.
func actor(r *http.Request) packing.Actor {
	p := principal(r)
	return packing.Actor{StationID: p.StationID, OperatorID: p.ID}
}

// packingErr logs an attempt on another station's bag or handover (the
// error table answers it with 403) and passes every error on.
func (s *Server) packingErr(r *http.Request, err error) error {
	if errors.Is(err, packing.ErrOtherStation) {
		p := principal(r)
		s.security.Warn("refused: other station", zap.String("request_id", requestID(r.Context())),
			zap.String("operator", p.ID), zap.String("own_station", p.StationID), zap.String("route", r.Pattern))
	}
	return err
}

// writeReceipt answers a packing write with the body stored in its work
// order: a replay is byte for byte the first answer.
func writeReceipt[T any](w http.ResponseWriter, status int, rc packing.Receipt[T]) {
	w.Header().Set("Idempotent-Replayed", strconv.FormatBool(rc.Replayed))
	writeRawJSON(w, status, rc.Body)
}

type openBagRequest struct {
	NextHop string `json:"next_hop"`
	ScanID  string `json:"scan_id"`
}

func (s *Server) openBag(w http.ResponseWriter, r *http.Request) error {
	var req openBagRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rc, err := s.packing.Open(r.Context(), actor(r), req.NextHop, strings.TrimSpace(req.ScanID))
	if err != nil {
		return s.packingErr(r, err)
	}
	writeReceipt(w, http.StatusCreated, rc)
	return nil
}

func (s *Server) listBags(w http.ResponseWriter, r *http.Request) error {
	status := packing.BagStatus(r.URL.Query().Get("status"))
	bags, err := s.packing.Bags(r.Context(), principal(r).StationID, status)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Bags []packing.Bag `json:"bags"`
	}{bags})
	return nil
}

func (s *Server) getBag(w http.ResponseWriter, r *http.Request) error {
	b, err := s.packing.Bag(r.Context(), principal(r).StationID, r.PathValue("id"))
	if err != nil {
		return s.packingErr(r, err)
	}
	writeJSON(w, http.StatusOK, b)
	return nil
}

type bagItemRequest struct {
	TrackingNo string `json:"tracking_no"`
	ScanID     string `json:"scan_id"`
}

func (s *Server) addBagItem(w http.ResponseWriter, r *http.Request) error {
	var req bagItemRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rc, err := s.packing.AddItem(r.Context(), actor(r), r.PathValue("id"), req.TrackingNo, strings.TrimSpace(req.ScanID))
	if err != nil {
		return s.packingErr(r, err)
	}
	writeReceipt(w, http.StatusOK, rc)
	return nil
}

type scanIDRequest struct {
	ScanID string `json:"scan_id"`
}

// removeBagItem takes the scan id from the query (?scan_id=) or, for
// clients that send a body with DELETE, from {"scan_id"}.
func (s *Server) removeBagItem(w http.ResponseWriter, r *http.Request) error {
	scanID := r.URL.Query().Get("scan_id")
	if scanID == "" && r.ContentLength != 0 {
		var req scanIDRequest
		if err := decodeJSON(r, &req); err != nil {
			return err
		}
		scanID = req.ScanID
	}
	rc, err := s.packing.RemoveItem(r.Context(), actor(r), r.PathValue("id"), r.PathValue("tracking_no"), strings.TrimSpace(scanID))
	if err != nil {
		return s.packingErr(r, err)
	}
	if !rc.Replayed {
		s.refit(r) // a bag under a chute may be below its limit again
	}
	writeReceipt(w, http.StatusOK, rc)
	return nil
}

type sealRequest struct {
	WeightG int    `json:"weight_g"`
	ScanID  string `json:"scan_id"`
}

func (s *Server) sealBag(w http.ResponseWriter, r *http.Request) error {
	var req sealRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rc, err := s.packing.Seal(r.Context(), actor(r), r.PathValue("id"), req.WeightG, strings.TrimSpace(req.ScanID))
	if err != nil {
		return s.packingErr(r, err)
	}
	if s.floor != nil && !rc.Replayed {
		s.floor.Sealed(r.Context(), rc.Value.StationID, rc.Value.ID)
	}
	writeReceipt(w, http.StatusOK, rc)
	return nil
}

// bagLabel serves the label of a sealed bag: ZPL for the thermal printer
// (the default) or a PNG preview.
func (s *Server) bagLabel(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "zpl"
	}
	if format != "zpl" && format != "png" {
		return Errorf(http.StatusBadRequest, "invalid_format", "format must be zpl or png")
	}
	b, err := s.packing.LabelBag(r.Context(), principal(r).StationID, r.PathValue("id"))
	if err != nil {
		return s.packingErr(r, err)
	}
	body, ctype := packing.LabelZPL(b), "application/zpl; charset=utf-8"
	if format == "png" {
		if body, err = packing.LabelPNG(b); err != nil {
			return err
		}
		ctype = "image/png"
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", `inline; filename="bag-`+safeFilename(b.ID)+`.`+format+`"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
	return nil
}

// safeFilename keeps only characters that need no quoting in a header.
func safeFilename(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
