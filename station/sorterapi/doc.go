// Package sorterapi is the sorting machine's gRPC front door: the
// SorterService (proto/station/v1). It authenticates nothing itself (the
// grpcserver interceptor puts the sorter in the context), checks that the
// sorter acts at its own station, admits calls within a per-sorter and an
// instance-wide concurrency limit (answering ResourceExhausted rather than
// queueing: the belt's budget, separate from the terminals'), decodes, calls
// belt.Service and maps the kind of its errors (package fault) to status
// codes in one switch, the reason being the error's code (errors.go).
//
// It holds no sorting logic and never touches the database or Redis.
package sorterapi
