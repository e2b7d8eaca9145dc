// Package reliability holds the fault, load and hostile-input tests of a
// whole station: real `station serve` processes killed mid-load, a fleet of
// three instances under mixed load while toxiproxy slows, resets and cuts
// their links to PostgreSQL, Redis and the order center, links cut and
// restored by a loopback proxy, an authorization matrix over every route,
// fuzzed request bodies, and a scan of the logs for secrets. Each test
// checks a promise of DESIGN.md section 6 against real PostgreSQL, Redis
// and the downstream simulator over gRPC.
//
// It has no non-test code (./report is the command that runs it for `make
// reliability` and writes RELIABILITY.md) and must never stop the machine's
// PostgreSQL or Redis: outages are played by cutting a proxy in front of
// them, and a Redis that must stop is a redis-server of the test's own.
package reliability
