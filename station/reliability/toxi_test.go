package reliability

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
)

var (
	toxiBuildOnce sync.Once
	toxiBuildErr  error
)

// toxiproxyBinary builds Shopify's toxiproxy server once per run, at the
// version go.mod pins with its tool directive.
func toxiproxyBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(binDir, "toxiproxy-server")
	toxiBuildOnce.Do(func() {
		cmd := exec.Command("go", "build", "-o", bin, "github.com/Shopify/toxiproxy/v2/cmd/server")
		if out, err := cmd.CombinedOutput(); err != nil {
			toxiBuildErr = fmt.Errorf("go build toxiproxy: %v\n%s", err, out)
		}
	})
	if toxiBuildErr != nil {
		t.Fatal(toxiBuildErr)
	}
	return bin
}

// startToxiproxy runs a toxiproxy server on a free loopback port and
// returns a client of its API. The server and its proxies end with the test.
func startToxiproxy(t testing.TB) *toxiproxy.Client {
	t.Helper()
	bin := toxiproxyBinary(t)
	addr := freeAddr(t)
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "toxiproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "-host", host, "-port", port)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "LOG_LEVEL=warn"}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start toxiproxy: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		// The client package talks through http.DefaultClient: its idle
		// connections would outlive the test.
		http.DefaultClient.CloseIdleConnections()
	})
	c := toxiproxy.NewClient(addr)
	for i := 0; ; i++ {
		if _, err = c.Proxies(); err == nil {
			return c
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("toxiproxy exited during start-up:\n%s", tail(string(b), 20))
		default:
		}
		if i == 200 {
			t.Fatalf("toxiproxy API on %s not answering within 10s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// toxiLink is one proxied link (station to PostgreSQL, Redis or the order
// center) that faults are injected into.
type toxiLink struct {
	name  string
	proxy *toxiproxy.Proxy
}

// newToxiLink proxies a free loopback port to upstream.
func newToxiLink(t testing.TB, c *toxiproxy.Client, name, upstream string) *toxiLink {
	t.Helper()
	p, err := c.CreateProxy(name, "127.0.0.1:0", upstream)
	if err != nil {
		t.Fatalf("toxiproxy: create %s proxy: %v", name, err)
	}
	return &toxiLink{name: name, proxy: p}
}

// Addr is where the stations connect instead of upstream.
func (l *toxiLink) Addr() string { return l.proxy.Listen }

// toxic adds a toxic to what the upstream server sends back (toxiproxy's
// downstream stream, where a client feels latency, resets and stalls); the
// returned func removes it again.
func (l *toxiLink) toxic(typ string, attrs toxiproxy.Attributes) (undo func() error, err error) {
	name := typ + "_downstream"
	if _, err := l.proxy.AddToxic(name, typ, "downstream", 1, attrs); err != nil {
		return nil, fmt.Errorf("toxiproxy: add %s to %s: %w", typ, l.name, err)
	}
	return func() error {
		if err := l.proxy.RemoveToxic(name); err != nil {
			return fmt.Errorf("toxiproxy: remove %s from %s: %w", typ, l.name, err)
		}
		return nil
	}, nil
}

// disable closes the listener and every open connection of the link, like
// a cable pulled out; the returned func plugs it back in.
func (l *toxiLink) disable() (undo func() error, err error) {
	if err := l.proxy.Disable(); err != nil {
		return nil, fmt.Errorf("toxiproxy: disable %s: %w", l.name, err)
	}
	return l.proxy.Enable, nil
}
