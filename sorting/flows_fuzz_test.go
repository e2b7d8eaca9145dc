package sorting

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"path"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/expresshub/station/dag"
)

// shippedFlowSet is a FlowSet with every shipped flow compiled as version 1
// over the real step registry, without a database: what the fuzz targets
// validate against. The steps are never run here, so they need no clients.
func shippedFlowSet(tb testing.TB) (*FlowSet, map[string][]byte) {
	tb.Helper()
	reg, err := steps(Downstream{}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	s := &FlowSet{registry: reg, versions: map[string]map[int]*Flow{}, latest: map[string]*Flow{}}
	files, err := fs.Glob(shippedFlows, "flows/*.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	srcs := map[string][]byte{}
	for _, file := range files {
		if path.Base(file) == "markets.yaml" {
			continue
		}
		src, err := fs.ReadFile(shippedFlows, file)
		if err != nil {
			tb.Fatal(err)
		}
		name := strings.TrimSuffix(path.Base(file), ".yaml")
		f, err := s.compile(name, 1, src)
		if err != nil {
			tb.Fatalf("shipped flow %s: %v", file, err)
		}
		s.versions[name] = map[int]*Flow{1: f}
		s.latest[name] = f
		srcs[name] = src
	}
	if len(srcs) == 0 {
		tb.Fatal("no shipped flows")
	}
	return s, srcs
}

// FuzzFlowConfig feeds arbitrary bytes to the flow loader as a stored flow
// version goes through it (parse, then compile against the real steps). It
// must never panic; an input is either rejected with dag.ErrInvalidFlow, or
// accepted, and then the config it compiled to, written back out as YAML
// (how ops see it) and as JSON, is accepted again and compiles to the same
// config and the same graph.
func FuzzFlowConfig(f *testing.F) {
	set, srcs := shippedFlowSet(f)
	for _, src := range srcs {
		f.Add(src)
	}
	full := string(srcs["full"])
	for _, seed := range []string{
		strings.Replace(full, "depends_on: [fetch_waybill]", "depends_on: [resolve_chute]", 1), // a cycle
		strings.Replace(full, "step: get_route", "step: no_such_step", 1),
		strings.Replace(full, "timeout:", "timout:", 1), // a typo is an unknown field
		full + "\n---\nname: second\n",
		"name: lean\nnodes: [{step: fetch_waybill, condition: 'waybill.cod_amount > '}]",
		"name: lean\ninputs: [tracking_no, station_id]\nnodes: [{step: fetch_waybill, timeout: -5ms}]",
		"name: lean\ninputs: [tracking_no, station_id]\nnodes: [{step: fetch_waybill, retry: {attempts: 1000000000, backoff: 1ns}}]",
		"name: lean\ninputs: [tracking_no]\nnodes: [{step: fetch_waybill, params: {a: .nan, 1: x}}]",
		`{"name":"lean","inputs":["tracking_no","station_id"],"nodes":[{"step":"fetch_waybill","fallback":{"waybill":{}}}]}`,
		"name: !!binary /w==\nnodes: []",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := dag.ParseConfig(data)
		if err != nil {
			if !errors.Is(err, dag.ErrInvalidFlow) {
				t.Fatalf("parse refused without ErrInvalidFlow: %v", err)
			}
			return
		}
		flow, err := set.compile(cfg.Name, 1, data)
		if err != nil {
			if !errors.Is(err, dag.ErrInvalidFlow) || err.Error() == "" {
				t.Fatalf("compile refused without ErrInvalidFlow and a reason: %v", err)
			}
			return
		}
		shown := flow.Plan.Config()
		want := mustYAML(t, shown)
		asYAML := want
		asJSON, err := json.Marshal(shown)
		if err != nil {
			t.Fatalf("an accepted flow cannot be shown as JSON: %v", err)
		}
		for form, out := range map[string][]byte{"YAML": asYAML, "JSON": asJSON} {
			again, err := set.compile(cfg.Name, 1, out)
			if err != nil {
				t.Fatalf("accepted flow, written back as %s, is refused: %v\n%s", form, err, out)
			}
			if got := mustYAML(t, again.Plan.Config()); !bytes.Equal(got, want) {
				t.Fatalf("round trip through %s changed the flow:\n%s\nbecame\n%s", form, want, got)
			}
			if a, b := strings.Join(flow.Plan.Nodes(), ","), strings.Join(again.Plan.Nodes(), ","); a != b {
				t.Fatalf("round trip through %s changed the graph: %s became %s", form, a, b)
			}
		}
	})
}

func mustYAML(t *testing.T, v any) []byte {
	t.Helper()
	out, err := yaml.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	return out
}
