package relay_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/expresshub/station/clients"
	"github.com/expresshub/station/migrations/dbtest"
	"github.com/expresshub/station/station/relay"
)

// capture is a sink that accepts everything and keeps what it was given.
type capture struct {
	mu     sync.Mutex
	events []clients.TrackingEvent
}

func (c *capture) PushTrackingEvents(_ context.Context, events []clients.TrackingEvent) ([]clients.EventAck, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.events = append(c.events, events...)
	acks := make([]clients.EventAck, len(events))
	for i, e := range events {
		acks[i] = clients.EventAck{EventID: e.EventID, Status: clients.AckAccepted}
	}
	return acks, nil
}

func traceParentOf(sc trace.SpanContext) string {
	return fmt.Sprintf("00-%s-%s-%s", sc.TraceID(), sc.SpanID(), sc.TraceFlags())
}

// TestRelayContinuesTheTraceOfTheWrite: an event written inside a traced
// request is published under a span that is a child of that request's
// span, and the sink is handed that publish span's trace context; an
// event written outside any trace gets no span and no trace context.
func TestRelayContinuesTheTraceOfTheWrite(t *testing.T) {
	w := newWorld(t)
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	traced, untraced := w.parcel(), w.parcel()
	ctx, request := tp.Tracer("test").Start(context.Background(), "request")
	if err := record(ctx, w.db, "SG-H01", traced, w.seq.Add(1), "arrived"); err != nil {
		t.Fatal(err)
	}
	request.End()
	w.record("SG-H01", untraced, "arrived")

	sink := &capture{}
	r := relay.New(w.db, sink, relay.Config{}, nil, nil, relay.WithTracerProvider(tp))
	if res := drain(t, r); res.Delivered != 2 {
		t.Fatalf("%+v", res)
	}
	var publish []tracetest.SpanStub
	for _, s := range exp.GetSpans() {
		if s.Name == "tracking publish" {
			publish = append(publish, s)
		}
	}
	if len(publish) != 1 {
		t.Fatalf("%d publish spans, want 1 (the traced event's)", len(publish))
	}
	p := publish[0]
	if p.Parent.SpanID() != request.SpanContext().SpanID() || p.SpanContext.TraceID() != request.SpanContext().TraceID() {
		t.Fatalf("publish span's parent %v, want the request's span %v", p.Parent.SpanID(), request.SpanContext().SpanID())
	}
	for _, e := range sink.events {
		want := ""
		if e.TrackingNo == traced {
			want = traceParentOf(p.SpanContext)
		}
		if e.TraceParent != want {
			t.Errorf("event of %s carries traceparent %q, want %q", e.TrackingNo, e.TraceParent, want)
		}
	}
}

// TestOrderCenterCallCarriesEachEventsTraceContext: the gRPC sink has no
// field for the trace context in the protobuf event, so the call's
// metadata carries one value per event, in request order.
func TestOrderCenterCallCarriesEachEventsTraceContext(t *testing.T) {
	w := newWorld(t)
	var mu sync.Mutex
	var sent []string
	spy := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if md, ok := metadata.FromOutgoingContext(ctx); ok && len(md.Get(clients.MetadataEventTraceParent)) > 0 {
			mu.Lock()
			sent = md.Get(clients.MetadataEventTraceParent)
			mu.Unlock()
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	rdb, prefix := dbtest.Redis(t)
	cfg := clients.DefaultConfig().WithAddr(w.sim.Addr())
	cfg.Token.KeyPrefix = prefix
	set, err := clients.Dial(context.Background(), cfg, clients.Options{Redis: rdb, DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(spy)}})
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	tp := "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	events := []clients.TrackingEvent{
		{EventID: "t-1", TrackingNo: w.parcel(), StationID: "SG-H01", Type: clients.EventArrived, TraceParent: tp},
		{EventID: "t-2", TrackingNo: w.parcel(), StationID: "SG-H01", Type: clients.EventArrived},
	}
	acks, err := set.OrderCenter.PushTrackingEvents(context.Background(), events)
	if err != nil || len(acks) != 2 || !acks[0].Delivered() {
		t.Fatalf("%+v %v", acks, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sent, []string{tp, ""}) {
		t.Fatalf("metadata %s = %q, want one value per event", clients.MetadataEventTraceParent, sent)
	}
}
