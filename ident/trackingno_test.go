package ident

import (
	"errors"
	"strings"
	"testing"
	"unicode"
)

func TestParseTrackingNo(t *testing.T) {
	good := map[string]TrackingNo{
		"SG1000000001":         "SG1000000001",
		"  sg1000000001\r\n":   "SG1000000001",
		"Br123456789012345678": "BR123456789012345678",
		"\tMY0000000000\t":     "MY0000000000",
	}
	for in, want := range good {
		got, err := ParseTrackingNo(in)
		if err != nil || got != want {
			t.Errorf("ParseTrackingNo(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", "SG", "SG123456789", "SG1234567890123456789", "S1000000001X", "1G1000000001",
		"SG 1000000001", "SG10000000O1", "ÉG1000000001", "SG1000000001\x00", "SG-1000000001"}
	for _, in := range bad {
		if _, err := ParseTrackingNo(in); !errors.Is(err, ErrInvalidTrackingNo) {
			t.Errorf("ParseTrackingNo(%q) accepted", in)
		}
	}
}

func FuzzParseTrackingNo(f *testing.F) {
	for _, s := range []string{"SG1000000001", " sg1000000001 ", "BR123456789012345678", "", "SG", "ÿÿ0000000000", "SG１０００００００００"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tn, err := ParseTrackingNo(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidTrackingNo) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		// Accepted numbers are normal form: idempotent, 12-20 chars, two
		// upper-case letters then digits.
		again, err := ParseTrackingNo(string(tn))
		if err != nil || again != tn {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", s, tn, again, err)
		}
		if len(tn) < 12 || len(tn) > 20 {
			t.Fatalf("length %d", len(tn))
		}
		for i, r := range string(tn) {
			if (i < 2 && !unicode.IsUpper(r)) || (i >= 2 && !unicode.IsDigit(r)) || r > unicode.MaxASCII {
				t.Fatalf("bad char %q in %q", r, tn)
			}
		}
		if strings.TrimSpace(s) != s && strings.TrimSpace(s) == "" {
			t.Fatal("blank accepted")
		}
	})
}
