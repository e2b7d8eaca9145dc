package reliability

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// serveProc is one `station serve --migrate` process. Its ports stay the
// same across restarts, so clients find it again where they left it.
type serveProc struct {
	t        testing.TB
	bin      string
	env      []string
	URL      string // http://127.0.0.1:port
	GRPCAddr string
	child
}

// serveEnv is what a station process is pointed at.
type serveEnv struct {
	DatabaseURL    string
	RedisAddr      string
	Prefix         string // Redis key prefix and order-center token key prefix
	DownstreamAddr string
	Extra          []string // more KEY=VALUE pairs
}

// baseEnv is the environment every station process of these tests gets:
// nothing from the caller's STATION_* variables leaks in.
func (e serveEnv) vars() []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.Getenv("HOME"),
		"STATION_DATABASE_URL=" + e.DatabaseURL,
		"STATION_REDIS_ADDR=" + e.RedisAddr,
		"STATION_REDIS_PREFIX=" + e.Prefix,
		"STATION_DOWNSTREAM_ADDR=" + e.DownstreamAddr,
		"STATION_DOWNSTREAM_TOKEN_KEY_PREFIX=" + e.Prefix,
		"STATION_AUTH_BCRYPT_COST=4",
		"STATION_AUTH_LOGIN_PER_MINUTE=1000",
		"STATION_AUTH_REQUESTS_PER_SECOND=100000",
		"STATION_SHUTDOWN_GRACE=3s",
		"STATION_RELAY_INTERVAL=50ms",
		"STATION_LOG_FORMAT=json",
	}
	return append(env, e.Extra...)
}

// newServe prepares a station process on two free loopback ports; start
// runs it. Whatever is still running at the end of the test is killed.
func newServe(t testing.TB, e serveEnv) *serveProc {
	t.Helper()
	httpAddr, grpcAddr := freeAddr(t), freeAddr(t)
	p := &serveProc{
		t:        t,
		bin:      stationBinary(t),
		env:      append(e.vars(), "STATION_HTTP_ADDR="+httpAddr, "STATION_GRPC_ADDR="+grpcAddr),
		URL:      "http://" + httpAddr,
		GRPCAddr: grpcAddr,
		child:    child{logPath: filepath.Join(t.TempDir(), "station.log")},
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("station log (tail):\n%s", tail(p.logs(), 40))
		}
	})
	return p
}

// start runs `station serve --migrate` and waits until /readyz answers 200.
func (p *serveProc) start() {
	p.t.Helper()
	if err := p.startErr(); err != nil {
		p.t.Fatal(err)
	}
}

// startErr is start for goroutines other than the test's.
func (p *serveProc) startErr() error {
	cmd := exec.Command(p.bin, "serve", "--migrate")
	cmd.Env = p.env
	exited, err := p.launch(cmd)
	if err != nil {
		return err
	}

	hc := &http.Client{Timeout: time.Second}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("station exited during start-up:\n%s", tail(p.logs(), 30))
		default:
		}
		resp, err := hc.Get(p.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("station not ready within 30s:\n%s", tail(p.logs(), 30))
}

// kill sends SIGKILL (no shutdown hook runs) and waits for the exit.
func (p *serveProc) kill() { p.signal(syscall.SIGKILL) }

// stop sends SIGTERM and waits for the graceful exit, killing after 10s.
func (p *serveProc) stop() { p.signal(syscall.SIGTERM) }

// runStation runs a one-shot station command (operator add, ...) and
// returns its combined output.
func runStation(t testing.TB, env []string, args ...string) string {
	t.Helper()
	bin := stationBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("station %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// addOperator creates an operator with the station command, the way an
// installer would.
func addOperator(t testing.TB, e serveEnv, id, station, role, password string) {
	t.Helper()
	runStation(t, append(e.vars(), "STATION_OPERATOR_PASSWORD="+password),
		"operator", "add", "--id", id, "--station", station, "--role", role)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

func tail(s string, lines int) string {
	parts := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

// errTransport marks a request that got no HTTP answer at all.
var errTransport = errors.New("no answer")

func transportErr(err error) error { return fmt.Errorf("%w: %w", errTransport, err) }
