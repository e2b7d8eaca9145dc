package dag_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/expresshub/station/dag"
)

// FuzzCompile feeds arbitrary bytes to ParseConfig and Compile: neither may
// panic, every rejection must carry reasons, and an accepted plan must run.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		sortingFlow,
		"name: f\nversion: \"1\"\nnodes: [{step: fetch_waybill}]",
		"name: f\nversion: \"1\"\ninputs: [tracking_no]\nnodes: [{step: fetch_waybill}, {step: get_route, depends_on: [fetch_waybill], condition: 'waybill.market in [\"BR\"]'}]",
		"name: f\nversion: \"1\"\nnodes: [{step: get_route, depends_on: [get_route]}]",
		"name: f\nversion: \"1\"\nnodes: [{id: a, step: nope, depends_on: [b]}, {id: b, step: persist, depends_on: [a]}]",
		"name: f\nversion: \"1\"\ndeadline: 10ms\nnodes: [{step: check_billing, timeout: 1s, retry: {attempts: 3, backoff: 1ms}, fallback: {billing_ok: maybe}}]",
		`{"name":"f","version":"1","inputs":["tracking_no"],"nodes":[{"step":"fetch_waybill","timeout":"5ms"}]}`,
		"name: f\nversion: \"1\"\nnodes: [{step: fetch_waybill, condition: '((('}]",
		"nodes: &a [*a]",
		"",
	} {
		f.Add([]byte(seed))
	}
	reg := newRegistry(f, sortingSteps()...)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := dag.ParseConfig(data)
		if err != nil {
			if !errors.Is(err, dag.ErrInvalidFlow) || err.Error() == "" {
				t.Fatalf("parse error without a reason: %v", err)
			}
			return
		}
		p, err := dag.Compile(cfg, reg)
		if err != nil {
			var ve *dag.ValidationError
			if p != nil || !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("rejection without reasons: %v", err)
			}
			for _, pr := range ve.Problems {
				if pr.Problem == "" {
					t.Fatalf("empty problem in %v", err)
				}
			}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		res, _ := dag.Run(ctx, p, []dag.Value{keyTrackingNo.Bind("SG1000000009")}, dag.Options{DryRun: true})
		if res == nil || len(res.Trace.Nodes) != len(cfg.Nodes) {
			t.Fatal("run of an accepted plan gave no trace")
		}
	})
}
