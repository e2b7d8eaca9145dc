package clients_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
)

// fleet dials n client sets sharing one Redis prefix, like n instances.
func fleet(t *testing.T, s *sim.Simulator, n int, rdb *redis.Client, prefix string) []*clients.Set {
	t.Helper()
	var out []*clients.Set
	for range n {
		out = append(out, dial(t, s, func(c *clients.Config) {
			c.Token.KeyPrefix = prefix
			c.Token.RefreshBefore = time.Second
		}, func(o *clients.Options) {
			if rdb != nil {
				o.Redis = rdb
			}
		}))
	}
	return out
}

// stampede has 50 goroutines, spread over the instances, push an event each.
func stampede(t *testing.T, sets []*clients.Set) map[string]bool {
	t.Helper()
	ctx := ctxTimeout(t, 20*time.Second)
	var wg sync.WaitGroup
	var mu sync.Mutex
	tokens := map[string]bool{}
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			set := sets[i%len(sets)]
			tok, err := set.OrderCenter.Token(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			tokens[tok] = true
			mu.Unlock()
			no := sim.ViaStation("SG-H01", 0)
			acks, err := set.OrderCenter.PushTrackingEvents(ctx, []clients.TrackingEvent{{
				EventID: "ev-" + tok[len(tok)-6:] + "-" + string(rune('a'+i%26)), TrackingNo: no, StationID: "SG-H01", Type: clients.EventArrived,
			}})
			if err != nil || len(acks) != 1 || !acks[0].Delivered() {
				t.Errorf("push: %v %+v", err, acks)
			}
		}()
	}
	wg.Wait()
	return tokens
}

func TestFleetFetchesOneTokenAtStartAndOneAtExpiry(t *testing.T) {
	// Tokens live 2 s and are replaced 1 s before expiry.
	s := startSim(t, simtest.WithTokenTTL(2*time.Second))
	rdb, prefix := testRedis(t)
	sets := fleet(t, s, 3, rdb, prefix)

	tokens := stampede(t, sets)
	if got := s.Calls("IssueToken"); got != 1 {
		t.Fatalf("cold start: %d IssueToken calls from 3 instances, want 1", got)
	}
	if len(tokens) != 1 {
		t.Fatalf("instances use %d different tokens", len(tokens))
	}

	s.Reset(false)
	time.Sleep(1200 * time.Millisecond) // past the refresh point, before expiry
	tokens = stampede(t, sets)
	if got := s.Calls("IssueToken"); got != 1 {
		t.Fatalf("at expiry: %d IssueToken calls from 3 instances x 50 goroutines, want 1", got)
	}
	if len(tokens) != 1 {
		t.Fatalf("after refresh the instances use %d different tokens", len(tokens))
	}
	// The shared copy in Redis expires no later than the refresh point.
	ttl, err := rdb.PTTL(context.Background(), prefix+"downstream:order_center:token").Result()
	if err != nil || ttl <= 0 || ttl > 2*time.Second {
		t.Fatalf("shared token TTL %v %v", ttl, err)
	}
}

func TestWithoutRedisEachInstanceFetchesOnce(t *testing.T) {
	s := startSim(t)
	sets := fleet(t, s, 3, nil, "")
	stampede(t, sets)
	if got := s.Calls("IssueToken"); got != 3 {
		t.Fatalf("%d IssueToken calls, want one per instance", got)
	}
	// A live token is reused.
	stampede(t, sets)
	if got := s.Calls("IssueToken"); got != 3 {
		t.Fatalf("%d IssueToken calls after reuse", got)
	}
}

func TestRefusedTokenIsReplaced(t *testing.T) {
	s := startSim(t)
	rdb, prefix := testRedis(t)
	// A token the order center never issued, planted as the shared one.
	bogus, _ := json.Marshal(map[string]any{
		"token":      "bogus",
		"expires_at": time.Now().Add(time.Hour),
		"refresh_at": time.Now().Add(30 * time.Minute),
	})
	if err := rdb.Set(context.Background(), prefix+"downstream:order_center:token", bogus, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	set := fleet(t, s, 1, rdb, prefix)[0]
	ctx := ctxTimeout(t, 10*time.Second)
	acks, err := set.OrderCenter.PushTrackingEvents(ctx, []clients.TrackingEvent{{
		EventID: "e1", TrackingNo: sim.TrackingNo("SG", sim.Normal, 0), StationID: "SG-H01", Type: clients.EventArrived,
	}})
	if err != nil || acks[0].Status != clients.AckAccepted {
		t.Fatalf("push with a refused token: %v %+v", err, acks)
	}
	if got := s.Calls("PushTrackingEvents"); got != 2 {
		t.Fatalf("%d pushes, want 2 (refused, then accepted)", got)
	}
	if tok, _ := set.OrderCenter.Token(ctx); tok == "bogus" {
		t.Fatal("refused token still in use")
	}
}
