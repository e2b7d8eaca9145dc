package httpapi

import (
	"net/http"
	"strings"

	"github.com/expresshub/station/packing"
)

type openHandoverRequest struct {
	Type    string `json:"type"`
	TripID  string `json:"trip_id"`
	RiderID string `json:"rider_id"`
	Carrier string `json:"carrier"`
	ScanID  string `json:"scan_id"`
}

func (s *Server) openHandover(w http.ResponseWriter, r *http.Request) error {
	var req openHandoverRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rc, err := s.packing.OpenHandover(r.Context(), actor(r), packing.HandoverRequest{
		Type: packing.HandoverType(req.Type), TripID: req.TripID, RiderID: req.RiderID, Carrier: req.Carrier,
	}, strings.TrimSpace(req.ScanID))
	if err != nil {
		return s.packingErr(r, err)
	}
	writeReceipt(w, http.StatusCreated, rc)
	return nil
}

// listHandovers lists the station's handovers, newest first; ?status=open
// is what a terminal resumes from.
func (s *Server) listHandovers(w http.ResponseWriter, r *http.Request) error {
	status := packing.HandoverStatus(r.URL.Query().Get("status"))
	list, err := s.packing.Handovers(r.Context(), principal(r).StationID, status)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		Handovers []packing.HandoverSummary `json:"handovers"`
	}{list})
	return nil
}

func (s *Server) getHandover(w http.ResponseWriter, r *http.Request) error {
	h, err := s.packing.Handover(r.Context(), principal(r).StationID, r.PathValue("id"))
	if err != nil {
		return s.packingErr(r, err)
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

type handoverBagRequest struct {
	BagID  string `json:"bag_id"`
	ScanID string `json:"scan_id"`
}

func (s *Server) addHandoverBag(w http.ResponseWriter, r *http.Request) error {
	var req handoverBagRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rc, err := s.packing.AddBagToHandover(r.Context(), actor(r), r.PathValue("id"), req.BagID, strings.TrimSpace(req.ScanID))
	if err != nil {
		return s.packingErr(r, err)
	}
	writeReceipt(w, http.StatusOK, rc)
	return nil
}

func (s *Server) closeHandover(w http.ResponseWriter, r *http.Request) error {
	var req scanIDRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	rc, err := s.packing.CloseHandover(r.Context(), actor(r), r.PathValue("id"), strings.TrimSpace(req.ScanID))
	if err != nil {
		return s.packingErr(r, err)
	}
	writeReceipt(w, http.StatusOK, rc)
	return nil
}

// handoverManifest serves the manifest as JSON (the default) or CSV, one
// row per parcel.
func (s *Server) handoverManifest(w http.ResponseWriter, r *http.Request) error {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		return Errorf(http.StatusBadRequest, "invalid_format", "format must be json or csv")
	}
	m, err := s.packing.Manifest(r.Context(), principal(r).StationID, r.PathValue("id"))
	if err != nil {
		return s.packingErr(r, err)
	}
	if format == "json" {
		writeJSON(w, http.StatusOK, m)
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="manifest-`+safeFilename(m.HandoverID)+`.csv"`)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(m.CSV())
	return nil
}
