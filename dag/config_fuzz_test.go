package dag_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/expresshub/station/dag"
)

// FuzzConfigRoundTrip: a flow config ParseConfig accepts is data that can
// be written back and read again unchanged (ops are shown what runs), and
// the written-back config gets the same verdict from Compile. Seeded with
// the flows Station ships.
func FuzzConfigRoundTrip(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "sorting", "flows", "*.yaml"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no shipped flows to seed from: %v", err)
	}
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte("name: f\nversion: \"1\"\nnodes: [{step: fetch_waybill, params: {n: .nan}}]"))
	f.Add([]byte("name: f\nversion: \"1\"\nnodes: [{step: fetch_waybill, params: {m: {1: x}}}]"))
	reg := newRegistry(f, sortingSteps()...)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := dag.ParseConfig(data)
		if err != nil {
			if !errors.Is(err, dag.ErrInvalidFlow) {
				t.Fatalf("refused without ErrInvalidFlow: %v", err)
			}
			return
		}
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatalf("an accepted config cannot be written back: %v", err)
		}
		back, err := dag.ParseConfig(out)
		if err != nil {
			t.Fatalf("an accepted config, written back, is refused: %v\n%s", err, out)
		}
		again, err := yaml.Marshal(back)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("round trip changed the config (%v):\n%s\n%s", err, out, again)
		}
		_, err1 := dag.Compile(cfg, reg)
		_, err2 := dag.Compile(back, reg)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("Compile accepts one of a config and its round trip: %v / %v", err1, err2)
		}
	})
}
