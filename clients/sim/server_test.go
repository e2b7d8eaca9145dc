package sim_test

import (
	"context"
	"net"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/clients/sim/simtest"
	downstreamv1 "github.com/expresshub/station/proto/downstream/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func conn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestAllServicesAndReflectionOnOneAddress(t *testing.T) {
	s := simtest.Start(t, simtest.WithZeroLatency())
	stream, err := reflectionpb.NewServerReflectionClient(conn(t, s.Addr())).ServerReflectionInfo(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.CloseSend()
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"downstream.v1.OrderCenterService", "downstream.v1.BasicService", "downstream.v1.FinanceService",
		"downstream.v1.DeliveryService", "downstream.v1.ContainerService", "downstream.v1.LinehaulService", "downstream.v1.SimAdminService"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not served; have %v", want, names)
		}
	}
}

func TestPushWithoutALiveTokenIsUnauthenticated(t *testing.T) {
	s := simtest.Start(t, simtest.WithZeroLatency(), simtest.WithTokenTTL(50*time.Millisecond))
	oc := downstreamv1.NewOrderCenterServiceClient(conn(t, s.Addr()))
	req := &downstreamv1.PushTrackingEventsRequest{Events: []*downstreamv1.TrackingEvent{{
		EventId: "e1", TrackingNo: sim.TrackingNo("SG", sim.Normal, 0), StationId: "SG-H01", Type: downstreamv1.TrackingEventType_TRACKING_EVENT_TYPE_ARRIVED,
	}}}
	if _, err := oc.PushTrackingEvents(ctx(t), req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	if _, err := oc.IssueToken(ctx(t), &downstreamv1.IssueTokenRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("token without client id: %v", err)
	}
	tok, err := oc.IssueToken(ctx(t), &downstreamv1.IssueTokenRequest{ClientId: "station"})
	if err != nil {
		t.Fatal(err)
	}
	authed := metadata.AppendToOutgoingContext(ctx(t), "authorization", "Bearer "+tok.GetToken())
	if _, err := oc.PushTrackingEvents(authed, req); err != nil {
		t.Fatalf("live token: %v", err)
	}
	time.Sleep(time.Until(tok.GetExpiresAt().AsTime()) + 10*time.Millisecond)
	if _, err := oc.PushTrackingEvents(authed, req); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("expired token: %v", err)
	}
}

func TestAdminServiceDrivesFaultsAndCounters(t *testing.T) {
	s := simtest.Start(t, simtest.WithZeroLatency())
	c := conn(t, s.Addr())
	adm := downstreamv1.NewSimAdminServiceClient(c)
	basic := downstreamv1.NewBasicServiceClient(c)
	if _, err := adm.SetFault(ctx(t), &downstreamv1.SetFaultRequest{Method: "NoSuchMethod", Fault: &downstreamv1.Fault{ErrorRate: 1}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown method: %v", err)
	}
	if _, err := adm.SetFault(ctx(t), &downstreamv1.SetFaultRequest{Method: "BasicService/GetSite", Fault: &downstreamv1.Fault{ErrorRate: 2}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("rate 2: %v", err)
	}
	if _, err := adm.SetFault(ctx(t), &downstreamv1.SetFaultRequest{Method: downstreamv1.BasicService_GetSite_FullMethodName,
		Fault: &downstreamv1.Fault{ErrorRate: 1, Code: int32(codes.PermissionDenied), AddedLatency: durationpb.New(time.Millisecond)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := basic.GetSite(ctx(t), &downstreamv1.GetSiteRequest{SiteId: "SG-H01"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("fault: %v", err)
	}
	if _, err := adm.ClearFaults(ctx(t), &downstreamv1.ClearFaultsRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := basic.GetSite(ctx(t), &downstreamv1.GetSiteRequest{SiteId: "SG-H01"}); err != nil {
		t.Fatalf("after clear: %v", err)
	}
	counts, err := adm.GetCallCounts(ctx(t), &downstreamv1.GetCallCountsRequest{})
	if err != nil || counts.GetCounts()[downstreamv1.BasicService_GetSite_FullMethodName] != 2 || len(counts.GetCounts()) != 1 {
		t.Fatalf("counts %v %v (admin calls must not count)", counts.GetCounts(), err)
	}
	if _, err := adm.ResetCounters(ctx(t), &downstreamv1.ResetCountersRequest{}); err != nil {
		t.Fatal(err)
	}
	if s.TotalCalls() != 0 {
		t.Fatal("reset left counts")
	}
	if _, err := adm.SetLatencyProfile(ctx(t), &downstreamv1.SetLatencyProfileRequest{Profile: "slow"}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown profile: %v", err)
	}
}

func TestServeStopsWithItsContext(t *testing.T) {
	s, err := sim.New(sim.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(c, lis) }()
	waitAddr := time.Now().Add(5 * time.Second)
	for s.Addr() == "" && time.Now().Before(waitAddr) {
		time.Sleep(time.Millisecond)
	}
	if _, err := downstreamv1.NewBasicServiceClient(conn(t, s.Addr())).GetSite(ctx(t), &downstreamv1.GetSiteRequest{SiteId: "SG-H01"}); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	s.Stop() // idempotent
}

func TestStopEndsHungCalls(t *testing.T) {
	s, err := sim.New(sim.Config{Faults: map[string]sim.Fault{"GetTrip": {Hang: true}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	lh := downstreamv1.NewLinehaulServiceClient(conn(t, s.Addr()))
	done := make(chan error, 1)
	go func() {
		_, err := lh.GetTrip(context.Background(), &downstreamv1.GetTripRequest{TripId: sim.TripID("SG-H01", 1)})
		done <- err
	}()
	for s.Calls("GetTrip") == 0 {
		time.Sleep(time.Millisecond)
	}
	s.Stop()
	if err := <-done; status.Code(err) != codes.Unavailable {
		t.Fatalf("hung call after Stop: %v", err)
	}
}

func TestBadConfigIsRefused(t *testing.T) {
	for _, cfg := range []sim.Config{
		{Latency: "slow"},
		{Faults: map[string]sim.Fault{"GetSite": {ErrorRate: -1}}},
		{LatencyOverrides: map[string]sim.Latency{"Nope": {}}},
	} {
		if _, err := sim.New(cfg, nil); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
	if _, err := sim.FullMethod("GetRouteV2"); err != nil {
		t.Fatal(err)
	}
	if _, err := sim.FullMethod("Get"); err == nil {
		t.Fatal("partial method name accepted")
	}
}
