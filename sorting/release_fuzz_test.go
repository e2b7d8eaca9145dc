package sorting

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/expresshub/station/ident"
)

// FuzzReleaseRule feeds arbitrary bytes to the release-rule decoder and
// validator, against the shipped flows: it must never panic; a rule is
// either refused with a *RuleError that lists its problems, or accepted, and
// then it survives a JSON round trip unchanged and still validates, and its
// decisions are total and consistent with its mode and ratio: only split
// serves the candidate, only to buckets below the ratio, and raising the
// ratio to the next ramp step never moves a parcel back to the stable flow.
func FuzzReleaseRule(f *testing.F) {
	set, _ := shippedFlowSet(f)
	for _, seed := range []string{
		`{"site_id":"SG-H01","stable_flow":"full","stable_version":1,"candidate_flow":"full_v2","candidate_version":1,"mode":"split","ratio_bp":2500,"salt":"3f2a9c1d7e5b4a60"}`,
		`{"site_id":"SG-H01","stable_flow":"full","stable_version":1,"candidate_flow":"full_v2","candidate_version":1,"mode":"shadow","ratio_bp":0,"salt":"s"}`,
		`{"site_id":"VN-H01","stable_flow":"lean","stable_version":1,"mode":"off","ratio_bp":0}`,
		`{"site_id":"BR-H01","stable_flow":"br","stable_version":1,"candidate_flow":"full","candidate_version":1,"mode":"split","ratio_bp":10000}`,
		`{"stable_flow":"full","stable_version":1,"candidate_flow":"full","candidate_version":1,"mode":"split","ratio_bp":100}`,
		`{"stable_flow":"full","stable_version":2,"mode":"ramp","ratio_bp":-1}`,
		`{"stable_flow":"full","stable_version":1,"mode":"split","ratio_bp":10001}`,
		`{"stable_flow":"full","stable_version":1,"mode":"off","salt":"` + string(bytes.Repeat([]byte("x"), 65)) + `"}`,
		`{"stable_flow":"full","stable_version":1,"mode":"split","ratio_bp":9223372036854775807,"candidate_flow":"lean","candidate_version":1}`,
		`{"stable_flow":"full\u0000","stable_version":1,"mode":"off","salt":"\ud800"}`,
		`{"version":7,"updated_by":"x","updated_at":"2026-01-02T03:04:05Z","stable_flow":"full","stable_version":1,"mode":"off"}`,
		`null`, `{}`, `[]`, ``,
	} {
		f.Add([]byte(seed))
	}
	parcels := []ident.TrackingNo{"SG1000000001", "SG1000000002", "VN123456789012", "BR999999999999999999"}
	for i := range 60 {
		parcels = append(parcels, ident.TrackingNo(fmt.Sprintf("SG1%09d", i*7919)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Rule
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			return // not a rule at all: the decoder said so
		}
		if err := r.validate(set); err != nil {
			var re *RuleError
			if !errors.As(err, &re) || !errors.Is(err, ErrInvalidRule) || len(re.Problems) == 0 {
				t.Fatalf("refusal without the listed problems: %v", err)
			}
			for _, p := range re.Problems {
				if p == "" {
					t.Fatalf("empty problem in %v", err)
				}
			}
			return
		}
		out, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("an accepted rule cannot be written as JSON: %v", err)
		}
		var back Rule
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("an accepted rule does not read back: %v\n%s", err, out)
		}
		if again, _ := json.Marshal(back); !bytes.Equal(again, out) {
			t.Fatalf("JSON round trip changed the rule:\n%s\n%s", out, again)
		}
		if err := back.validate(set); err != nil {
			t.Fatalf("an accepted rule, read back, is refused: %v", err)
		}
		raised := r
		raised.RatioBP = NextRampStep(r.RatioBP)
		for _, tn := range parcels {
			d := r.Decide(tn)
			switch {
			case r.Mode == ModeOff || r.CandidateFlow == "":
				if d != (Decision{}) {
					t.Fatalf("mode %s without a live candidate decided %+v", r.Mode, d)
				}
				continue
			case d.Bucket < 0 || d.Bucket >= Buckets:
				t.Fatalf("bucket %d out of range", d.Bucket)
			case d.ServeCandidate && (r.Mode != ModeSplit || d.Bucket >= r.RatioBP):
				t.Fatalf("mode %s ratio %d served the candidate to bucket %d", r.Mode, r.RatioBP, d.Bucket)
			case d.ServeCandidate && d.Shadow:
				t.Fatalf("a parcel both served and shadowed by the candidate: %+v", d)
			}
			if r.Mode == ModeSplit && d.ServeCandidate && !raised.Decide(tn).ServeCandidate {
				t.Fatalf("raising ratio %d to %d moved %s back to the stable flow", r.RatioBP, raised.RatioBP, tn)
			}
		}
	})
}
