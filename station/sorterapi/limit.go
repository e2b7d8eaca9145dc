package sorterapi

import (
	"sync"
	"sync/atomic"
)

// limiter admits a call when both the sorter and the instance are under
// their concurrency limits. It never waits: a machine that is refused
// retries at once or falls back on its own default chute, which beats an
// answer that comes after the parcel has passed the divert point.
type limiter struct {
	perSorter int64
	global    int64
	inflight  atomic.Int64
	sorters   sync.Map // sorter id -> *atomic.Int64
}

func newLimiter(perSorter, global int) *limiter {
	return &limiter{perSorter: int64(perSorter), global: int64(global)}
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
	if l.inflight.Add(1) > l.global {
		l.inflight.Add(-1)
		return nil, instanceFull
	}
	c, ok := l.sorters.Load(sorter)
	if !ok {
		c, _ = l.sorters.LoadOrStore(sorter, new(atomic.Int64))
	}
	n := c.(*atomic.Int64)
	if n.Add(1) > l.perSorter {
		n.Add(-1)
		l.inflight.Add(-1)
		return nil, sorterFull
	}
	return func() {
		n.Add(-1)
		l.inflight.Add(-1)
	}, admitted
}
