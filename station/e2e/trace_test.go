package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/expresshub/station/clients/sim"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/relay"
	"github.com/expresshub/station/station/stationtest"
)

// natsURL is the NATS server with JetStream every development and CI
// machine runs (.ci/run starts it). Tests never skip without it.
const natsURL = "nats://127.0.0.1:4222"

// jetStreamStation starts a station whose relay publishes to its own
// stream on the real NATS server (deleted at the end), with tp as its
// tracer provider (nil: tracing off), and a consumer of that stream.
func jetStreamStation(t *testing.T, tp trace.TracerProvider) (*stationtest.Station, jetstream.Consumer) {
	t.Helper()
	id := fmt.Sprintf("OTEL%d", time.Now().UnixNano())
	st := stationtest.Start(t, stationtest.Options{TracerProvider: tp, Config: func(c *config.Config) {
		c.Relay.Sink = config.SinkJetStream
		c.Relay.JetStream.URL = natsURL
		c.Relay.JetStream.Stream = "TRACKING_" + id
		c.Relay.JetStream.SubjectPrefix = "tracking_" + id
		c.Relay.Interval = 10 * time.Millisecond
	}})
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), st.Config.Relay.JetStream.Stream) })
	cons, err := js.OrderedConsumer(context.Background(), st.Config.Relay.JetStream.Stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return st, cons
}

// nextMessage waits (bounded) for the next message of the stream.
func nextMessage(t *testing.T, cons jetstream.Consumer) jetstream.Msg {
	t.Helper()
	for range 100 {
		msg, err := cons.Next(jetstream.FetchMaxWait(200 * time.Millisecond))
		if err == nil {
			return msg
		}
	}
	t.Fatal("no message on the stream")
	return nil
}

// TestOneTraceFromTheSortRequestToTheBrokerPublish sorts a parcel over HTTP
// with tracing on and follows the trace: the publish span of its tracking
// event is a descendant of the HTTP request's server span; the message's
// traceparent header names that publish span; the DAG steps, the
// downstream gRPC calls and the SQL of the request are spans of the same
// trace under the request.
func TestOneTraceFromTheSortRequestToTheBrokerPublish(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	st, cons := jetStreamStation(t, tp)
	token := st.Login("op1")
	tn := sim.ViaStation("SG-H01", 0)
	sortParcel(t, st, token, tn, "scan-otel-1")

	msg := nextMessage(t, cons)
	header := msg.Headers().Get(relay.HeaderTraceParent)
	if msg.Headers().Get(relay.HeaderEventID) == "" || header == "" {
		t.Fatalf("message headers %v: want the event id and a traceparent", msg.Headers())
	}

	// The publish span ends once the stream acknowledged the publish,
	// before the relay settles the row; wait (bounded) for it.
	var publish tracetest.SpanStub
	for i := 0; i < 200 && publish.Name == ""; i++ {
		for _, s := range exp.GetSpans() {
			if s.Name == "tracking publish" {
				publish = s
			}
		}
		if publish.Name == "" {
			time.Sleep(10 * time.Millisecond)
		}
	}
	if publish.Name == "" {
		t.Fatal("no publish span")
	}
	spans := exp.GetSpans()
	byID := map[trace.SpanID]tracetest.SpanStub{}
	for _, s := range spans {
		byID[s.SpanContext.SpanID()] = s
	}
	if publish.SpanKind != trace.SpanKindProducer {
		t.Fatalf("publish span kind %v", publish.SpanKind)
	}
	want := fmt.Sprintf("00-%s-%s-01", publish.SpanContext.TraceID(), publish.SpanContext.SpanID())
	if header != want {
		t.Fatalf("traceparent header %q, want the publish span's %q", header, want)
	}

	// Up the chain from the publish span to the request's server span.
	var chain []string
	var server tracetest.SpanStub
	for s, ok := publish, true; ok; s, ok = byID[s.Parent.SpanID()] {
		chain = append(chain, s.Name)
		if s.SpanContext.TraceID() != publish.SpanContext.TraceID() {
			t.Fatalf("span %q is in another trace", s.Name)
		}
		if s.SpanKind == trace.SpanKindServer {
			server = s
		}
		if !s.Parent.IsValid() {
			break
		}
	}
	if server.Name != "POST /api/v1/sort" || !hasAttr(server, "http.route", "POST /api/v1/sort") || server.Parent.IsValid() {
		t.Fatalf("chain from the publish span %v does not end at the sort request's server span", chain)
	}
	t.Logf("publish span up to the request: %s", strings.Join(chain, " <- "))

	// The request's own work shows under it: each DAG step, the calls to
	// the downstream services, and the SQL.
	under := func(s tracetest.SpanStub) bool {
		for p, ok := s, true; ok; p, ok = byID[p.Parent.SpanID()] {
			if p.SpanContext.SpanID() == server.SpanContext.SpanID() {
				return true
			}
		}
		return false
	}
	var steps, calls, queries int
	for _, s := range spans {
		if s.SpanContext.TraceID() != server.SpanContext.TraceID() || !under(s) {
			continue
		}
		switch {
		case strings.HasPrefix(s.Name, "dag.step "):
			steps++
		case s.SpanKind == trace.SpanKindClient && hasAttr(s, "rpc.system.name", "grpc"), s.SpanKind == trace.SpanKindClient && hasAttr(s, "rpc.system", "grpc"):
			calls++
		case s.SpanKind == trace.SpanKindClient && hasKey(s, "db.query.text"), s.SpanKind == trace.SpanKindClient && hasKey(s, "db.statement"):
			queries++
		}
	}
	t.Logf("under the sort request: %d DAG steps, %d downstream calls, %d SQL statements", steps, calls, queries)
	if steps < 2 || calls < 1 || queries < 1 {
		t.Fatalf("under the sort request: %d DAG step spans, %d downstream gRPC spans, %d SQL spans; spans: %v", steps, calls, queries, names(spans))
	}
}

// TestGRPCCallContinuesTheCallersTrace: a gRPC call that arrives with a
// traceparent in its metadata gets a server span in the caller's trace,
// a child of the caller's span.
func TestGRPCCallContinuesTheCallersTrace(t *testing.T) {
	t.Parallel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	st := stationtest.Start(t, stationtest.Options{TracerProvider: tp})
	conn, err := grpc.NewClient(st.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	ctx := metadata.AppendToOutgoingContext(context.Background(), "traceparent", caller)
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	// The server ends its span after the answer is on the wire, so the
	// client may return first: wait for it, within a bound.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, s := range exp.GetSpans() {
			if s.SpanKind == trace.SpanKindServer && s.Name == "grpc.health.v1.Health/Check" {
				if s.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent.SpanID().String() != "b7ad6b7169203331" {
					t.Fatalf("server span in trace %s under %s, want the caller's", s.SpanContext.TraceID(), s.Parent.SpanID())
				}
				return
			}
		}
	}
	t.Fatalf("no server span for the call; spans %v", names(exp.GetSpans()))
}

// TestTracingOffStoresNoTraceContext: with tracing off (the default) the
// outbox stores no trace context and the message's traceparent header is
// present and empty.
func TestTracingOffStoresNoTraceContext(t *testing.T) {
	t.Parallel()
	st, cons := jetStreamStation(t, nil)
	token := st.Login("op1")
	sortParcel(t, st, token, sim.ViaStation("SG-H01", 1), "scan-otel-2")
	msg := nextMessage(t, cons)
	if v, ok := msg.Headers()[relay.HeaderTraceParent]; !ok || len(v) != 1 || v[0] != "" {
		t.Fatalf("traceparent header %v, want present and empty", v)
	}
	if n := st.Count(`SELECT count(*) FROM tracking_outbox WHERE traceparent IS NOT NULL`); n != 0 {
		t.Fatalf("%d outbox rows with a trace context", n)
	}
}

func hasAttr(s tracetest.SpanStub, key, value string) bool {
	for _, a := range s.Attributes {
		if string(a.Key) == key && a.Value.Emit() == value {
			return true
		}
	}
	return false
}

func hasKey(s tracetest.SpanStub, key string) bool {
	for _, a := range s.Attributes {
		if string(a.Key) == key {
			return true
		}
	}
	return false
}

func names(spans tracetest.SpanStubs) []string {
	out := make([]string, len(spans))
	for i, s := range spans {
		out[i] = s.Name
	}
	return out
}
