package reliability

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/expresshub/station/clients/sim"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

// simProc is `station sim` as its own process (zero latency), so the
// downstream services do not share a CPU budget with a race-instrumented
// test binary. Tests read its order center through SimAdminService.
type simProc struct {
	Addr  string
	Fx    *sim.Fixtures // the same world: same seed
	admin downstreamv1.SimAdminServiceClient
}

// extraEnv are more KEY=VALUE pairs, such as the broker the order center
// consumes from (relay.sink).
func startSimProc(t testing.TB, extraEnv ...string) *simProc {
	t.Helper()
	bin := stationBinary(t)
	addr := freeAddr(t)
	logPath := filepath.Join(t.TempDir(), "sim.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin, "sim")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		"STATION_SIM_ADDR=" + addr, "STATION_SIM_LATENCY=zero", fmt.Sprintf("STATION_SIM_SEED=%d", sim.DefaultSeed)}
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && r.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("station sim exited:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("station sim not serving within 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &simProc{Addr: addr, Fx: sim.NewFixtures(sim.DefaultSeed), admin: downstreamv1.NewSimAdminServiceClient(conn)}
}

// TrackingEvents is everything the order center stored, in arrival order.
func (s *simProc) TrackingEvents(t testing.TB) []sim.RecordedEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := s.admin.GetTrackingEvents(ctx, &downstreamv1.GetTrackingEventsRequest{}, grpc.MaxCallRecvMsgSize(64<<20))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]sim.RecordedEvent, 0, len(resp.GetEvents()))
	for _, r := range resp.GetEvents() {
		e := r.GetEvent()
		out = append(out, sim.RecordedEvent{
			EventID:    e.GetEventId(),
			TrackingNo: e.GetTrackingNo(),
			StationID:  e.GetStationId(),
			Type:       strings.ToLower(strings.TrimPrefix(e.GetType().String(), "TRACKING_EVENT_TYPE_")),
			Duplicates: r.GetDuplicates(),
		})
	}
	return out
}
