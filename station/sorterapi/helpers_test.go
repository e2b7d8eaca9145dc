package sorterapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/config"
	"github.com/expresshub/station/station/stationtest"
)

// start runs a station for a sorter test. Sorting parallelism is kept low:
// the test machine has two cores shared by parallel tests (under -race), and
// a flood of sorts there would time out and open the downstream breakers,
// testing the machine rather than the code.
func start(t testing.TB, o stationtest.Options) *stationtest.Station {
	t.Helper()
	user := o.Config
	o.Config = func(c *config.Config) {
		c.Sorter.Parallelism, c.Sorter.StreamWindow = 4, 8
		relaxBreakers(c)
		if user != nil {
			user(c)
		}
	}
	return stationtest.Start(t, o)
}

// relaxBreakers keeps the downstream circuit breakers shut: on a loaded
// test machine a few timeouts in a row would open them for every later
// parcel, and the breakers are not what these tests are about.
func relaxBreakers(c *config.Config) {
	c.Downstream.Breaker.ConsecutiveFailures, c.Downstream.Breaker.MinRequests = 1<<30, 1<<30
}

// machine is a sorting machine talking to a station under test.
type machine struct {
	t   testing.TB
	st  *stationtest.Station
	key string
	cli stationv1.SorterServiceClient
}

// newMachine registers a sorter at station and dials the station's gRPC
// port over loopback.
func newMachine(t testing.TB, st *stationtest.Station, station, id string) *machine {
	t.Helper()
	key, err := st.App.Sorters().AddSorter(context.Background(), auth.Sorter{ID: id, StationID: station})
	if err != nil {
		t.Fatal(err)
	}
	return &machine{t: t, st: st, key: key, cli: dial(t, st.GRPCAddr)}
}

// on returns the same sorter talking to another instance.
func (m *machine) on(st *stationtest.Station) *machine {
	return &machine{t: m.t, st: st, key: m.key, cli: dial(m.t, st.GRPCAddr)}
}

func dial(t testing.TB, addr string) stationv1.SorterServiceClient {
	t.Helper()
	return stationv1.NewSorterServiceClient(dialConn(t, addr))
}

func dialConn(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// ctx carries the sorter's key; the call gets a generous test deadline
// unless the test sets its own.
func (m *machine) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	m.t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "x-sorter-key", m.key)
}

func (m *machine) resolve(tn string) *stationv1.Decision {
	m.t.Helper()
	r, err := m.cli.Resolve(m.ctx(), &stationv1.ResolveRequest{TrackingNo: tn})
	if err != nil {
		m.t.Fatalf("resolve %s: %v", tn, err)
	}
	return r.GetDecision()
}

func (m *machine) presort(tns ...string) []*stationv1.Decision {
	m.t.Helper()
	r, err := m.cli.PreSort(m.ctx(), &stationv1.PreSortRequest{TrackingNos: tns})
	if err != nil {
		m.t.Fatalf("presort: %v", err)
	}
	if len(r.GetDecisions()) != len(tns) {
		m.t.Fatalf("%d decisions for %d parcels", len(r.GetDecisions()), len(tns))
	}
	return r.GetDecisions()
}

// presortAll pre-sorts like a machine's scheduler does: parcels whose sort
// met a transient failure (the reject chute, not stored) are sent again, so
// a loaded test machine slows the test down instead of failing it.
func (m *machine) presortAll(tns ...string) []*stationv1.Decision {
	m.t.Helper()
	out := m.presort(tns...)
	for attempt := 0; attempt < 20; attempt++ {
		var again []int
		for i, d := range out {
			if d.GetSource() == stationv1.DecisionSource_DECISION_SOURCE_FALLBACK {
				again = append(again, i)
			}
		}
		if len(again) == 0 {
			return out
		}
		time.Sleep(200 * time.Millisecond)
		retry := make([]string, len(again))
		for j, i := range again {
			retry[j] = tns[i]
		}
		for j, d := range m.presort(retry...) {
			out[again[j]] = d
		}
	}
	failed := 0
	for _, d := range out {
		if d.GetSource() == stationv1.DecisionSource_DECISION_SOURCE_FALLBACK {
			failed++
		}
	}
	m.t.Fatalf("pre-sort kept failing for %d of %d parcels", failed, len(tns))
	return nil
}

func (m *machine) confirm(req *stationv1.ConfirmRequest) (*stationv1.ConfirmResponse, error) {
	return m.cli.Confirm(m.ctx(), req)
}

// wantCode checks a status code and, when reason is set, the ErrorInfo or
// BadRequest reason in its details.
func wantCode(t testing.TB, err error, code codes.Code, reason string) *status.Status {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("code %v (%s), want %v", st.Code(), st.Message(), code)
	}
	if reason == "" {
		return st
	}
	for _, d := range st.Details() {
		switch d := d.(type) {
		case *errdetails.ErrorInfo:
			if d.GetReason() == reason {
				return st
			}
		case *errdetails.BadRequest:
			for _, v := range d.GetFieldViolations() {
				if v.GetReason() == reason {
					return st
				}
			}
		}
	}
	t.Fatalf("no detail with reason %s in %v", reason, st.Details())
	return nil
}

// eventually polls cond for up to 5 s: for effects that cross instances
// through Redis pub/sub, which are fast but asynchronous.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
