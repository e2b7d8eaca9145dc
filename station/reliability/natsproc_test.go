package reliability

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/expresshub/station/station/devenv"
)

// natsProc is a nats-server with JetStream of the test's own, on a free
// loopback port with its store in the test's temporary directory, so a
// test can kill and restart NATS without touching the machine's server at
// 127.0.0.1:4222. A restart keeps the port and the store: streams,
// consumers and the dedup window survive it (file storage), as when a
// process manager restarts a crashed broker.
type natsProc struct {
	child
	bin   string
	Addr  string
	store string
}

// startNATSProc runs nats-server -js on a free loopback port; the test
// fails when the binary is missing or JetStream does not answer.
func startNATSProc(t testing.TB) *natsProc {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Fatalf("nats-server is needed to kill and restart NATS JetStream: %v", err)
	}
	dir := t.TempDir()
	n := &natsProc{bin: bin, Addr: freeAddr(t), store: filepath.Join(dir, "jetstream"),
		child: child{logPath: filepath.Join(dir, "nats.log")}}
	t.Cleanup(func() { n.signal(syscall.SIGKILL) })
	if err := n.start(); err != nil {
		t.Fatal(err)
	}
	return n
}

// URL is the server's own address, bypassing any link proxy.
func (n *natsProc) URL() string { return "nats://" + n.Addr }

// start runs the server on its port and store and waits until JetStream
// answers.
func (n *natsProc) start() error {
	host, port, _ := net.SplitHostPort(n.Addr)
	exited, err := n.launch(exec.Command(n.bin, "-js", "-sd", n.store, "-a", host, "-p", port))
	if err != nil {
		return err
	}
	var last error
	for range 200 { // 10s
		select {
		case <-exited:
			return fmt.Errorf("nats-server exited during start-up:\n%s", tail(n.logs(), 20))
		default:
		}
		if last = devenv.JetStreamAnswers(context.Background(), n.URL()); last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nats-server on %s: JetStream does not answer within 10s: %w", n.Addr, last)
}

// kill ends the server with SIGKILL, as a crash would: nothing is flushed
// beyond what it already wrote.
func (n *natsProc) kill() { n.signal(syscall.SIGKILL) }
