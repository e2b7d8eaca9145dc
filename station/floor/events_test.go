package floor_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/expresshub/station/station/stationtest"
)

// TestTheLiveFloorEndsWhenItsSessionIsLoggedOut: the stream is
// authenticated once, at its start; a supervisor who logs out (or whose
// session is revoked) must not keep receiving the floor for as long as the
// connection lasts. It ends within a resync.
func TestTheLiveFloorEndsWhenItsSessionIsLoggedOut(t *testing.T) {
	t.Parallel()
	st := stationtest.Start(t, stationtest.Options{})
	token := st.Login("sup1")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", st.URL+"/api/v1/stations/SG-H01/floor/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("floor events: %d", resp.StatusCode)
	}
	events := make(chan int, 1)
	go func() {
		n := 0
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "event: ") {
				n++
			}
		}
		events <- n // the server ended the stream (or the test gave up)
	}()
	st.Do("POST", "/api/v1/auth/logout", token, map[string]any{}, http.StatusNoContent, nil)

	// Generous: the stream must end, not merely soon.
	select {
	case n := <-events:
		if n < 1 {
			t.Fatalf("the stream ended before its first floor")
		}
	case <-time.After(time.Minute):
		cancel()
		<-events
		t.Fatal("a logged-out session still streams the floor")
	}
}
