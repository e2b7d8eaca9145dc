// Package flight merges concurrent calls for the same key into one, like
// golang.org/x/sync/singleflight, but aware of contexts: each caller waits
// only as long as its own context allows, while the shared call runs under
// its own timeout, detached from whichever caller happened to start it. The
// shared call is cancelled when its last waiter leaves, so a call nobody
// wants any more stops costing the downstream.
//
// It owns no cache: once a call returns, the next Do for the key starts a new
// one. It never retries and never hides a panic: a panicking call fails every
// waiter with an error wrapping ErrPanic.
package flight
