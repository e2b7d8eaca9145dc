package ident

import (
	"errors"
	"strings"
	"testing"
)

func TestParseSiteID(t *testing.T) {
	good := map[string]SiteID{"SG-H01": "SG-H01", " sg-l07\r\n": "SG-L07", "br-H1234": "BR-H1234"}
	for in, want := range good {
		if got, err := ParseSiteID(in); err != nil || got != want {
			t.Errorf("ParseSiteID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "SG", "SGH01", "SG-H1", "SG-H12345", "SG-101", "S1-H01", "SG_H01", "SG-H0A", "SG-H01 x", "ÉG-H01"} {
		if _, err := ParseSiteID(in); !errors.Is(err, ErrInvalidSiteID) {
			t.Errorf("ParseSiteID(%q) accepted", in)
		}
	}
	if m := SiteID("SG-H01").Market(); m != "SG" {
		t.Errorf("market %q", m)
	}
}

func TestParseScanID(t *testing.T) {
	for _, in := range []string{"a", "scan-1", strings.Repeat("x", MaxScanID), "op1:2026-12-07T10:00:00Z#3"} {
		if got, err := ParseScanID(in); err != nil || string(got) != in {
			t.Errorf("ParseScanID(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", " a", "a ", strings.Repeat("x", MaxScanID+1), "a\x00b", "a\nb"} {
		if _, err := ParseScanID(in); !errors.Is(err, ErrInvalidScanID) {
			t.Errorf("ParseScanID(%q) accepted", in)
		}
	}
}

func TestParseBagID(t *testing.T) {
	if got, err := ParseBagID(" bgsgh01lx0f5a2000001\n"); err != nil || got != "BGSGH01LX0F5A2000001" {
		t.Errorf("ParseBagID = %q, %v", got, err)
	}
	for _, in := range []string{"", "BG1", "BG 1234", "BG/1234", strings.Repeat("B", 65), "BG_1234"} {
		if _, err := ParseBagID(in); !errors.Is(err, ErrInvalidBagID) {
			t.Errorf("ParseBagID(%q) accepted", in)
		}
	}
}

func TestParseHandoverID(t *testing.T) {
	want := HandoverID("0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
	for _, in := range []string{string(want), " 0193A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B ", "{0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b}"} {
		if got, err := ParseHandoverID(in); err != nil || got != want {
			t.Errorf("ParseHandoverID(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "H-1", "0193a1b2-c3d4-7e5f-8a9b"} {
		if _, err := ParseHandoverID(in); !errors.Is(err, ErrInvalidHandoverID) {
			t.Errorf("ParseHandoverID(%q) accepted", in)
		}
	}
}

// Every accepted id is in normal form: parsing it again gives itself.
func FuzzParseSiteID(f *testing.F) {
	for _, s := range []string{"SG-H01", " sg-l07 ", "BR-H1234", "", "SG-", "SG-H0１"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseSiteID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSiteID) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		again, err := ParseSiteID(string(id))
		if err != nil || again != id {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, id, again, err)
		}
		if strings.ToUpper(string(id)) != string(id) || len(id) < 6 || len(id) > 8 {
			t.Fatalf("not normal: %q", id)
		}
	})
}

// The codes are what clients match on: they never change.
func TestErrorsCarryStableCodes(t *testing.T) {
	for err, code := range map[*Error]string{
		ErrInvalidTrackingNo: "invalid_tracking_no",
		ErrInvalidSiteID:     "invalid_site_id",
		ErrInvalidScanID:     "missing_scan_id",
		ErrInvalidBagID:      "invalid_bag_id",
		ErrInvalidHandoverID: "invalid_handover_id",
	} {
		if err.Code() != code {
			t.Errorf("%v: code %s, want %s", err, err.Code(), code)
		}
	}
	_, err := ParseSiteID("nope")
	var e *Error
	if !errors.As(err, &e) || e.Code() != "invalid_site_id" {
		t.Fatalf("ParseSiteID error %v has no code", err)
	}
}
