package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestFlowPublishRefusesAnEndlessFileWithoutReadingIt: a wrong path (a
// pipe, /dev/zero, a disk image) is refused once it passes the size of a
// flow config, not read until memory runs out (or, for a pipe, forever).
func TestFlowPublishRefusesAnEndlessFileWithoutReadingIt(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "endless")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		defer w.Close()
		// Four times a flow's limit, then the pipe stays open with no end:
		// a reader that waits for the end waits forever. Once the reader
		// closes, a write fails (EPIPE) and this returns.
		chunk := bytes.Repeat([]byte("#"), 64<<10)
		for range 64 {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		<-stop
	}()
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"flow", "publish", fifo, "--database-url", "postgres://nowhere.invalid/x"}, strings.NewReader(""), io.Discard)
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("an endless file: %v", err)
		}
	case <-time.After(time.Minute): // generous: it must end, not merely soon
		t.Fatal("flow publish is still reading an endless file")
	}
}
