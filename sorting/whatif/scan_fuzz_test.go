package whatif

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/expresshub/station/fault"
)

func TestParseNDJSONReadsTheDocumentedLineFormat(t *testing.T) {
	in := `{"kind":"receive","at":"2026-12-07T08:00:00Z","tracking_no":" sg1000000001 "}

{"kind":"sort","at":"2026-12-07T08:00:01Z","tracking_no":"SG1000000001","next_hop":"SG-L01","weight_g":900,"flow":"full","flow_version":2}
{"kind":"confirm","at":"2026-12-07T08:00:05.5Z","tracking_no":"SG1000000001","chute":4}
`
	scans, err := ParseNDJSON(strings.NewReader(in), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(scans) != 3 || scans[0].TrackingNo != "SG1000000001" || scans[1].NextHop != "SG-L01" || scans[1].WeightG != 900 ||
		scans[2].Chute != 4 || scans[2].Kind != KindConfirm {
		t.Fatalf("%+v", scans)
	}
}

func TestParseNDJSONRefusesABadLineWithItsNumber(t *testing.T) {
	for name, in := range map[string]string{
		"kind":      `{"kind":"bag","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001"}`,
		"no time":   `{"kind":"sort","tracking_no":"SG1000000001"}`,
		"tn":        `{"kind":"sort","at":"2026-12-07T08:00:00Z","tracking_no":"nope"}`,
		"hop":       `{"kind":"sort","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001","next_hop":"x"}`,
		"unknown":   `{"kind":"sort","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001","chut":3}`,
		"confirm":   `{"kind":"confirm","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001"}`,
		"two":       `{"kind":"sort","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001"} {}`,
		"not json":  `kind=sort`,
		"year 9999": `{"kind":"sort","at":"9999-12-31T23:59:59Z","tracking_no":"SG1000000001"}`,
		"year 1":    `{"kind":"sort","at":"0001-01-01T00:00:01Z","tracking_no":"SG1000000001"}`,
		"long line": `{"kind":"sort","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001","flow":"` + strings.Repeat("x", 5000) + `"}`,
	} {
		_, err := ParseNDJSON(strings.NewReader("\n"+in+"\n"), 10)
		var fe *fault.Error
		if !errors.As(err, &fe) || fe.Code != "invalid_scans" || fe.Details["line"] != 2 {
			t.Errorf("%s: %v", name, err)
		}
	}
	many := strings.Repeat(`{"kind":"receive","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001"}`+"\n", 3)
	if _, err := ParseNDJSON(strings.NewReader(many), 2); !errors.Is(err, ErrTooManyScans) {
		t.Fatalf("over the limit: %v", err)
	}
}

// FuzzParseNDJSON: any input is refused or gives valid scans, never a
// panic, and what it gives parses again to the same scans.
func FuzzParseNDJSON(f *testing.F) {
	f.Add([]byte(`{"kind":"sort","at":"2026-12-07T08:00:00Z","tracking_no":"SG1000000001","next_hop":"SG-L01","weight_g":900}`))
	f.Add([]byte("{\"kind\":\"confirm\",\"at\":\"2026-12-07T08:00:00Z\",\"tracking_no\":\"SG1000000001\",\"chute\":3}\n\n{}"))
	f.Add([]byte(`{"kind":"receive","at":"2026-12-07T08:00:00+08:00","tracking_no":"my100000000000"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		scans, err := ParseNDJSON(bytes.NewReader(data), 100)
		if err != nil {
			if _, ok := fault.As(err); !ok {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		var buf bytes.Buffer
		for _, s := range scans {
			if s.Kind != KindReceive && s.Kind != KindSort && s.Kind != KindConfirm || s.At.IsZero() || s.TrackingNo == "" {
				t.Fatalf("invalid scan accepted: %+v", s)
			}
			line, _ := json.Marshal(s)
			buf.Write(line)
			buf.WriteByte('\n')
		}
		again, err := ParseNDJSON(&buf, 100)
		if err != nil || len(again) != len(scans) {
			t.Fatalf("round trip: %v (%d of %d)", err, len(again), len(scans))
		}
		for i := range scans {
			if !again[i].At.Equal(scans[i].At) || again[i].TrackingNo != scans[i].TrackingNo || again[i].Chute != scans[i].Chute {
				t.Fatalf("round trip changed %+v into %+v", scans[i], again[i])
			}
		}
	})
}
