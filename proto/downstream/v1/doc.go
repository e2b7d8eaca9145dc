// Package downstreamv1 holds the contracts of the downstream services Station
// calls (order center, basic, finance, delivery, container, linehaul) and of
// the simulator's admin service, generated from the .proto files beside this
// file by `make proto`. Only this doc.go is written by hand: never edit a
// *.pb.go file, change the .proto and regenerate.
//
// Callers inside Station use the clients package, never these stubs
// directly: it adds deadlines, retries, circuit breakers and metrics.
package downstreamv1
