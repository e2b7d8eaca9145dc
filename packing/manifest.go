package packing

import (
	"bytes"
	"context"
	"encoding/csv"
	"strconv"
	"strings"
	"time"
)

// Manifest is the list of what left on a handover: every bag with its
// parcels. It is derived from the stored handover, so it reads the same
// however often it is fetched.
type Manifest struct {
	HandoverID  string         `json:"handover_id"`
	StationID   string         `json:"station_id"`
	Type        HandoverType   `json:"type"`
	CarrierRef  string         `json:"carrier_ref"` // trip id, rider id or carrier
	TripStops   []string       `json:"trip_stops,omitempty"`
	Status      HandoverStatus `json:"status"`
	ClosedBy    string         `json:"closed_by,omitempty"`
	ClosedAt    *time.Time     `json:"closed_at,omitempty"`
	BagCount    int            `json:"bag_count"`
	ParcelCount int            `json:"parcel_count"`
	WeightG     int            `json:"weight_g"`
	Bags        []ManifestBag  `json:"bags"`
}

// ManifestBag is one bag of a manifest.
type ManifestBag struct {
	BagID   string   `json:"bag_id"`
	NextHop string   `json:"next_hop"`
	WeightG int      `json:"weight_g"`
	Parcels []string `json:"parcels"`
}

// Manifest returns the manifest of one handover of the station. An open
// handover gives a draft (status "open"); a closed one is final.
func (s *Service) Manifest(ctx context.Context, stationID, handoverID string) (Manifest, error) {
	h, err := s.Handover(ctx, stationID, handoverID)
	if err != nil {
		return Manifest{}, err
	}
	ids := make([]string, len(h.Bags))
	for i, b := range h.Bags {
		ids[i] = b.BagID
	}
	parcels, err := bagParcels(ctx, s.db, ids)
	if err != nil {
		return Manifest{}, err
	}
	return BuildManifest(h, parcels), nil
}

// BuildManifest assembles a manifest from a handover and the parcels of
// each of its bags.
func BuildManifest(h Handover, parcels map[string][]string) Manifest {
	m := Manifest{HandoverID: h.ID, StationID: h.StationID, Type: h.Type, CarrierRef: h.Ref(), TripStops: h.TripStops,
		Status: h.Status, ClosedBy: h.ClosedBy, ClosedAt: h.ClosedAt, BagCount: len(h.Bags), Bags: make([]ManifestBag, 0, len(h.Bags))}
	for _, b := range h.Bags {
		p := parcels[b.BagID]
		if p == nil {
			p = []string{}
		}
		m.Bags = append(m.Bags, ManifestBag{BagID: b.BagID, NextHop: b.NextHop, WeightG: b.WeightG, Parcels: p})
		m.ParcelCount += len(p)
		m.WeightG += b.WeightG
	}
	return m
}

// ManifestCSVHeader names the columns of CSV: one row per parcel.
var ManifestCSVHeader = []string{"handover_id", "station_id", "type", "carrier_ref", "status", "closed_at",
	"bag_id", "next_hop", "bag_weight_g", "tracking_no"}

// CSV renders the manifest one row per parcel, for spreadsheets and the
// carrier's systems (RFC 4180, CRLF line ends).
func (m Manifest) CSV() []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	w.UseCRLF = true
	closed := ""
	if m.ClosedAt != nil {
		closed = m.ClosedAt.UTC().Format(time.RFC3339)
	}
	_ = w.Write(ManifestCSVHeader)
	for _, b := range m.Bags {
		for _, no := range b.Parcels {
			_ = w.Write([]string{m.HandoverID, m.StationID, string(m.Type), csvSafe(m.CarrierRef), string(m.Status), closed,
				b.BagID, b.NextHop, strconv.Itoa(b.WeightG), no})
		}
	}
	w.Flush() // writes to a bytes.Buffer cannot fail
	return buf.Bytes()
}

// csvSafe defuses a client-chosen text that a spreadsheet would run as a
// formula (CSV injection): such a cell is prefixed with a quote.
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
