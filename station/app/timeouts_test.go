package app_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/expresshub/station/station/config"
)

// Server timeouts against hostile clients, on a station started the way
// main starts it. In each test only the timeout under test is short; the
// others are a minute, longer than the test waits, so the connection closing
// is the work of that one timeout. The waits are bounds on an event, not
// measurements: a client keeps trickling until the server hangs up or a
// bound far past the timeout is reached.

// long is every timeout a test is not about.
const long = time.Minute

func longTimeouts(c *config.Config) {
	c.HTTP.ReadHeaderTimeout, c.HTTP.ReadTimeout, c.HTTP.WriteTimeout, c.HTTP.IdleTimeout = long, long, long, long
	c.GRPC.ConnectionTimeout = long
}

// rawConn is a client connection whose reads run in the background, so the
// test sees the moment the server closes it while it keeps writing.
type rawConn struct {
	net.Conn
	closed chan struct{} // closed when a read fails: the server hung up
	mu     sync.Mutex
	got    bytes.Buffer // everything the server sent
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c := &rawConn{Conn: conn, closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			c.mu.Lock()
			c.got.Write(buf[:n])
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = conn.Close()
		<-c.closed
	})
	return c
}

func (c *rawConn) received() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got.String()
}

// trickle writes data one byte per interval until the server closes the
// connection (true) or the data runs out (false).
func (c *rawConn) trickle(data string, interval time.Duration) bool {
	for i := 0; i < len(data); i++ {
		select {
		case <-c.closed:
			return true
		case <-time.After(interval):
		}
		if _, err := c.Write([]byte{data[i]}); err != nil {
			return true // the server is gone
		}
	}
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// waitClosed waits for the server to close the connection, at most bound.
func (c *rawConn) waitClosed(bound time.Duration) bool {
	select {
	case <-c.closed:
		return true
	case <-time.After(bound):
		return false
	}
}

func hostPort(t *testing.T, rawURL string) string {
	t.Helper()
	return strings.TrimPrefix(rawURL, "http://")
}

func TestSlowHeadersAreCutAtReadHeaderTimeout(t *testing.T) {
	t.Parallel()
	r := start(t, func(c *config.Config) {
		longTimeouts(c)
		c.HTTP.ReadHeaderTimeout = 300 * time.Millisecond
	})
	c := dialRaw(t, hostPort(t, r.httpURL))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: station\r\nX-Slow: "); err != nil {
		t.Fatal(err)
	}
	// 200 header bytes at one per 100 ms is 20 s, far past the timeout and
	// well short of every other timeout.
	if !c.trickle(strings.Repeat("a", 200), 100*time.Millisecond) {
		t.Fatal("a client sending one header byte per 100 ms was still connected after 20 s")
	}
	if got := c.received(); strings.Contains(got, " 200 ") {
		t.Fatalf("the slow request was served: %q", got)
	}
}

func TestSlowBodyIsCutAtReadTimeout(t *testing.T) {
	t.Parallel()
	r := start(t, func(c *config.Config) {
		longTimeouts(c)
		c.HTTP.ReadTimeout = time.Second
	})
	body := `{"operator_id":"nobody","password":"` + strings.Repeat("p", 160) + `"}`
	c := dialRaw(t, hostPort(t, r.httpURL))
	if _, err := io.WriteString(c, "POST /api/v1/auth/login HTTP/1.1\r\nHost: station\r\nContent-Type: application/json\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if !c.trickle(body, 100*time.Millisecond) {
		t.Fatalf("a client sending its body one byte per 100 ms was still connected after %d bytes", len(body))
	}
	// The handler was reading the body when the deadline passed: it answers
	// 408 before the connection goes, or the connection just goes.
	if got := c.received(); got != "" {
		resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(got)), nil)
		if err != nil || resp.StatusCode != http.StatusRequestTimeout {
			t.Fatalf("answer to a body slower than read_timeout: %q, want 408 or nothing", got)
		}
		_ = resp.Body.Close()
	}
}

func TestIdleKeepAliveConnectionIsClosedAtIdleTimeout(t *testing.T) {
	t.Parallel()
	r := start(t, func(c *config.Config) {
		longTimeouts(c)
		c.HTTP.IdleTimeout = 500 * time.Millisecond
	})
	c := dialRaw(t, hostPort(t, r.httpURL))
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: station\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	// The request is answered and the connection kept alive...
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(c.received(), "\r\n\r\n") {
		if time.Now().After(deadline) {
			t.Fatalf("no answer to GET /healthz: %q", c.received())
		}
		time.Sleep(10 * time.Millisecond)
	}
	resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(c.received())), nil)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("answer %q: want 200 on a kept-alive connection", c.received())
	}
	_ = resp.Body.Close()
	// ...until it has been idle for idle_timeout.
	if !c.waitClosed(20 * time.Second) {
		t.Fatal("an idle keep-alive connection was still open after 20 s")
	}
}

func TestGRPCConnectionWithoutPrefaceIsDropped(t *testing.T) {
	t.Parallel()
	r := start(t, func(c *config.Config) {
		longTimeouts(c)
		c.GRPC.ConnectionTimeout = 500 * time.Millisecond
	})
	// Half a preface, then silence.
	c := dialRaw(t, r.grpcAddr)
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n"); err != nil {
		t.Fatal(err)
	}
	if !c.waitClosed(20 * time.Second) {
		t.Fatal("a connection that never finished the HTTP/2 preface was still open after 20 s")
	}
	// A real client connects and keeps its connection past the timeout.
	conn, err := grpc.NewClient(r.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	hc := healthpb.NewHealthClient(conn)
	for range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health over a proper connection: %v %v", res, err)
		}
		time.Sleep(time.Second) // past connection_timeout: the deadline ends with the handshake
	}
}
