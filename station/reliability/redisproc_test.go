package reliability

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// redisProc is a redis-server of the test's own, on a free port, so a test
// can stop and restart Redis without touching the machine's. It keeps
// nothing on disk: a restart comes back empty, as after a failover to a
// fresh replica.
type redisProc struct {
	child
	bin  string
	Addr string
}

// startRedisProc runs redis-server on a free loopback port; the test fails
// when the binary is missing or does not answer.
func startRedisProc(t testing.TB) *redisProc {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is needed to stop and restart Redis: %v", err)
	}
	r := &redisProc{bin: bin, Addr: freeAddr(t), child: child{logPath: filepath.Join(t.TempDir(), "redis.log")}}
	t.Cleanup(func() { r.signal(syscall.SIGKILL) })
	if err := r.start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// start runs the server on its port and waits until it answers PING.
func (r *redisProc) start() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	exited, err := r.launch(exec.Command(r.bin, "--bind", "127.0.0.1", "--port", port, "--save", "", "--appendonly", "no",
		"--dir", filepath.Dir(r.logPath)))
	if err != nil {
		return err
	}
	for range 200 { // 10s
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited during start-up:\n%s", tail(r.logs(), 20))
		default:
		}
		if pingRedis(r.Addr) == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("redis-server on %s does not answer PING within 10s", r.Addr)
}

// stop shuts the server down with SIGTERM, as an orchestrator would.
func (r *redisProc) stop() { r.signal(syscall.SIGTERM) }

// pingRedis speaks just enough RESP to know the server is serving.
func pingRedis(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING answered %q", line)
	}
	return nil
}
