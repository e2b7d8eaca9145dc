// Package reliability holds the fault, load and hostile-input tests of a
// whole station: real `station serve` processes killed mid-load, links to
// PostgreSQL and Redis cut and restored by a loopback proxy, an
// authorization matrix over every route, fuzzed request bodies, and a scan
// of the logs for secrets. Each test checks a promise of DESIGN.md section 6
// against real PostgreSQL, Redis and the downstream simulator over gRPC.
//
// It has no non-test code (./report is the command that runs it for `make
// reliability` and writes RELIABILITY.md) and must never stop the machine's
// PostgreSQL or Redis: outages are played by cutting a proxy in front of
// them.
package reliability
