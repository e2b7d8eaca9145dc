package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expresshub/station/fault"
	"github.com/expresshub/station/migrations/dbtest"
)

func TestFlowPublishStoresAVersionAndRefusesAnInvalidOne(t *testing.T) {
	url := dbtest.URL(t)
	_, prefix := dbtest.Redis(t)
	t.Setenv("STATION_REDIS_PREFIX", prefix)
	dir := t.TempDir()
	flow := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	args := func(file string) []string {
		return []string{"flow", "publish", file, "--database-url", url, "--redis-addr", dbtest.RedisAddr(), "--as", "cli-test", "--reason", "test"}
	}
	good := flow("mini.yaml", "name: mini\ninputs: [tracking_no, station_id]\nnodes:\n  - step: fetch_waybill\n  - step: get_route\n    depends_on: [fetch_waybill]\n")
	var out bytes.Buffer
	if err := run(context.Background(), args(good), strings.NewReader(""), &out); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if !strings.Contains(out.String(), "flow mini version 1 published") {
		t.Fatalf("publish said %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), args(good), strings.NewReader(""), &out); err != nil || !strings.Contains(out.String(), "unchanged") {
		t.Fatalf("the same file again: %v %q", err, out.String())
	}
	bad := flow("bad.yaml", "name: bad\ninputs: [tracking_no, station_id]\nnodes:\n  - step: no_such_step\n  - step: resolve_chute\n")
	err := run(context.Background(), args(bad), strings.NewReader(""), &out)
	f, ok := fault.As(err)
	if !ok || f.Code != "invalid_flow" || !strings.Contains(err.Error(), "no_such_step") {
		t.Fatalf("invalid flow: %v", err)
	}
}
