package floor

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// Hub tells every instance's live floors that a station's floor changed:
// Redis pub/sub carries the signal between instances; without Redis, this
// instance's own floors still hear their own changes, and every floor
// refreshes on its own at least every Resync.
type Hub struct {
	rdb    *redis.Client
	prefix string
	log    *zap.Logger

	mu   sync.Mutex
	subs map[string]map[chan struct{}]struct{}
	// gen counts the changes heard per station, so a view computed after
	// the latest one can be shared by every floor it woke.
	gen map[string]uint64
}

// Resync is how often a live floor refreshes without a signal.
const Resync = 5 * time.Second

// NewHub builds the hub; Run must run for signals from other instances.
func NewHub(rdb *redis.Client, prefix string, log *zap.Logger) *Hub {
	return &Hub{rdb: rdb, prefix: prefix, log: log, subs: map[string]map[chan struct{}]struct{}{}, gen: map[string]uint64{}}
}

func (h *Hub) channel(station string) string { return h.prefix + "floor:" + station }

// Changed signals a change of station's floor, here and on every instance.
func (h *Hub) Changed(station string) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := h.rdb.Publish(ctx, h.channel(station), "1").Err(); err != nil {
		h.notify(station) // Redis down: at least this instance's floors
	}
}

// Subscribe returns a channel that receives a value soon after each change
// of station's floor (changes close together may arrive as one), and a
// cancel that must be called.
func (h *Hub) Subscribe(station string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs[station] == nil {
		h.subs[station] = map[chan struct{}]struct{}{}
	}
	h.subs[station][ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() {
		h.mu.Lock()
		delete(h.subs[station], ch)
		if len(h.subs[station]) == 0 {
			delete(h.subs, station)
		}
		h.mu.Unlock()
	}
}

// Generation is the number of changes of station's floor this instance has
// heard of; it grows before the floors are woken.
func (h *Hub) Generation(station string) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.gen[station]
}

func (h *Hub) notify(station string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.gen[station]++
	for ch := range h.subs[station] {
		select {
		case ch <- struct{}{}:
		default: // a change is already pending for this floor
		}
	}
}

// Run listens to every instance's signals until ctx ends, reconnecting
// after a Redis outage.
func (h *Hub) Run(ctx context.Context) {
	for ctx.Err() == nil {
		sub := h.rdb.PSubscribe(ctx, h.prefix+"floor:*")
		msgs := sub.Channel()
	listen:
		for {
			select {
			case <-ctx.Done():
				break listen
			case m, ok := <-msgs:
				if !ok {
					break listen
				}
				h.notify(strings.TrimPrefix(m.Channel, h.prefix+"floor:"))
			}
		}
		_ = sub.Close()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
