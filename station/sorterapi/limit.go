package sorterapi

import "sync"

// limiter admits a call when both the sorter and the instance are under
// their concurrency limits. It never waits: a machine that is refused
// retries at once or falls back on its own default chute, which beats an
// answer that comes after the parcel has passed the divert point.
//
// Both counts change under one mutex, held for a few instructions. Separate
// atomic counters would take a slot optimistically and hand it back when the
// other limit refused, and in that instant refuse some other call while a
// slot was in fact free; under load the count admitted would drift below the
// limit.
type limiter struct {
	perSorter int
	global    int

	mu       sync.Mutex
	inflight int
	sorters  map[string]int // sorter id -> calls in flight; absent when none
}

func newLimiter(perSorter, global int) *limiter {
	return &limiter{perSorter: perSorter, global: global, sorters: make(map[string]int)}
}

// admission says which limit refused a call.
type admission int

const (
	admitted admission = iota
	sorterFull
	instanceFull
)

// acquire takes a slot; release must be called once when admitted.
func (l *limiter) acquire(sorter string) (release func(), a admission) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight >= l.global {
		return nil, instanceFull
	}
	if l.sorters[sorter] >= l.perSorter {
		return nil, sorterFull
	}
	l.inflight++
	l.sorters[sorter]++
	return func() { l.release(sorter) }, admitted
}

func (l *limiter) release(sorter string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.inflight--
	if n := l.sorters[sorter] - 1; n > 0 {
		l.sorters[sorter] = n
	} else {
		delete(l.sorters, sorter)
	}
}
