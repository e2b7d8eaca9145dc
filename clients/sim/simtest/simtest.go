// Package simtest starts a downstream simulator for a test on a loopback
// port and stops it when the test ends. It is for tests only.
package simtest

import (
	"testing"
	"time"

	"github.com/expresshub/station/clients/sim"
)

// Option adjusts the simulator's config before it starts.
type Option func(*sim.Config)

// WithSeed sets the fixture seed.
func WithSeed(seed int64) Option { return func(c *sim.Config) { c.Seed = seed } }

// WithLatency picks a latency profile (sim.ProfileDefault or sim.ProfileZero).
func WithLatency(profile string) Option { return func(c *sim.Config) { c.Latency = profile } }

// WithZeroLatency answers every call at once: the choice for tests that do
// not measure time.
func WithZeroLatency() Option { return WithLatency(sim.ProfileZero) }

// WithFault injects a fault into a method from the start.
func WithFault(method string, f sim.Fault) Option {
	return func(c *sim.Config) {
		if c.Faults == nil {
			c.Faults = map[string]sim.Fault{}
		}
		c.Faults[method] = f
	}
}

// WithTokenTTL sets the lifetime of issued tokens.
func WithTokenTTL(d time.Duration) Option { return func(c *sim.Config) { c.TokenTTL = d } }

// WithConfig edits the config directly.
func WithConfig(fn func(*sim.Config)) Option { return Option(fn) }

// Start runs a simulator (sim.DefaultConfig plus opts) on 127.0.0.1:0 and
// stops it in t.Cleanup. Its address is s.Addr().
func Start(t testing.TB, opts ...Option) *sim.Simulator {
	t.Helper()
	cfg := sim.DefaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	s, err := sim.New(cfg, nil)
	if err != nil {
		t.Fatalf("simtest: %v", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatalf("simtest: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}
