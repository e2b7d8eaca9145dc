// Package e2e holds the end-to-end tests of a whole station: the real wiring
// (station/app) on real PostgreSQL and Redis, with the downstream simulator
// over gRPC on loopback, driven over HTTP and gRPC like terminals and sorters
// would. It has no non-test code.
package e2e
