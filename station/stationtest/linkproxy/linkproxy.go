// Package linkproxy is a loopback TCP forwarder for tests: put it between
// a component and a real PostgreSQL or Redis, then Cut and Restore the link
// to play an outage without touching the machine's server. (Latency, loss
// and stalls are toxiproxy's job, in station/reliability; this is the
// dependency-free cut and freeze that unit tests need.)
package linkproxy

import (
	"errors"
	"net"
	"sync"
	"testing"
)

// Proxy is a loopback TCP forwarder in front of a real server
// (PostgreSQL, Redis) that a test can cut and restore, to play an outage
// without touching the machine's server.
type Proxy struct {
	target string
	lis    net.Listener

	mu      sync.Mutex
	cut     bool
	refused int
	conns   map[net.Conn]struct{}
	// thawed is closed while the link forwards; Freeze replaces it with an
	// open one that every forwarding goroutine waits on.
	thawed chan struct{}
	done   chan struct{} // closed at the end of the test
	wg     sync.WaitGroup
}

// New listens on 127.0.0.1:0 and forwards to target until the
// test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	thawed := make(chan struct{})
	close(thawed)
	p := &Proxy{target: target, lis: lis, conns: map[net.Conn]struct{}{}, thawed: thawed, done: make(chan struct{})}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		close(p.done)
		_ = lis.Close()
		p.closeAll()
		p.wg.Wait()
	})
	return p
}

// Addr is where clients connect instead of the target.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Cut drops every open connection and refuses new ones (they are closed at
// once), like a server that went away: clients see resets, not silence.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.cut = true
	p.mu.Unlock()
	p.closeAll()
}

// Refused is how many connections were closed at once because the link
// was cut: a test's evidence that a client tried while it was down.
func (p *Proxy) Refused() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// Freeze stops forwarding without closing anything, like a link that went
// silent: open connections stay open and carry nothing, new ones are
// accepted and hang. Clients see no error, only no answer, until their own
// deadline. Restore thaws it; what was sent meanwhile then goes through.
func (p *Proxy) Freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.thawed:
		p.thawed = make(chan struct{})
	default: // already frozen
	}
}

// Restore forwards again: new connections after a Cut, held bytes and
// connections after a Freeze.
func (p *Proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
	select {
	case <-p.thawed:
	default:
		close(p.thawed)
	}
}

// wait blocks while the link is frozen; false when the test ended.
func (p *Proxy) wait() bool {
	p.mu.Lock()
	thawed := p.thawed
	p.mu.Unlock()
	select {
	case <-thawed:
		return true
	case <-p.done:
		return false
	}
}

func (p *Proxy) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		client, err := p.lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		cut := p.cut
		if cut {
			p.refused++
		}
		p.mu.Unlock()
		if cut {
			_ = client.Close()
			continue
		}
		p.wg.Add(1)
		go p.connect(client)
	}
}

// connect dials the target for one client (once the link is not frozen)
// and forwards both ways.
func (p *Proxy) connect(client net.Conn) {
	defer p.wg.Done()
	if !p.track(client) || !p.wait() {
		_ = client.Close()
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	if !p.track(client, server) {
		_ = client.Close()
		_ = server.Close()
		return
	}
	p.wg.Add(2)
	go p.pipe(server, client)
	go p.pipe(client, server)
}

// pipe copies src to dst, holding what it read while the link is frozen.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer func() {
		_ = dst.Close()
		_ = src.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
