package app_test

import (
	"context"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"

	"github.com/expresshub/station/station/config"
)

// collector is an OTLP/gRPC trace collector on loopback that keeps the
// names of the spans it receives.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	names []string
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				c.names = append(c.names, s.GetName())
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestOTelEndpointExportsTheRequestsSpansBeforeShutdown: with
// otel.endpoint set, a request's span reaches the collector over OTLP, at
// the latest when the station stops (the provider is shut down last and
// flushes what is queued).
func TestOTelEndpointExportsTheRequestsSpansBeforeShutdown(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	r := start(t, func(c *config.Config) {
		c.OTel.Endpoint = lis.Addr().String()
		c.OTel.Insecure = true
	})
	resp, err := http.Get(r.httpURL + "/api/v1/me") // 401 without a token; traced all the same
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r.cancel()
	if err := <-r.done; err != nil {
		t.Fatal(err)
	}
	r.done <- nil // for the test's cleanup
	col.mu.Lock()
	defer col.mu.Unlock()
	if !slices.Contains(col.names, "GET /api/v1/me") {
		t.Fatalf("collector received %v", col.names)
	}
}
