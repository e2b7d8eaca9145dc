package reliability

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	stationv1 "github.com/expresshub/station/proto/station/v1"
	"github.com/expresshub/station/station/auth"
	"github.com/expresshub/station/station/stationtest"
)

// sorterCall makes one call of a SorterService method at station.
type sorterCall func(ctx context.Context, c stationv1.SorterServiceClient, station, tn string) error

// sorterMatrix has one row per SorterService method; the test fails when
// the service gains a method without a row.
var sorterMatrix = map[string]sorterCall{
	"PreSort": func(ctx context.Context, c stationv1.SorterServiceClient, station, tn string) error {
		_, err := c.PreSort(ctx, &stationv1.PreSortRequest{StationId: station, TrackingNos: []string{tn}})
		return err
	},
	"Resolve": func(ctx context.Context, c stationv1.SorterServiceClient, station, tn string) error {
		_, err := c.Resolve(ctx, &stationv1.ResolveRequest{StationId: station, TrackingNo: tn})
		return err
	},
	"ResolveStream": func(ctx context.Context, c stationv1.SorterServiceClient, station, tn string) error {
		s, err := c.ResolveStream(ctx)
		if err != nil {
			return err
		}
		if err := s.Send(&stationv1.ResolveStreamRequest{StationId: station, TrackingNo: tn, RequestId: 1}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		_ = s.CloseSend()
		for {
			if _, err := s.Recv(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err
			}
		}
	},
	"Confirm": func(ctx context.Context, c stationv1.SorterServiceClient, station, tn string) error {
		_, err := c.Confirm(ctx, &stationv1.ConfirmRequest{StationId: station, Sequence: 1,
			Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_SORTED, TrackingNo: tn, Chute: 1})
		return err
	},
}

// TestSorterAuthorizationMatrix: every SorterService method refuses a call
// without credentials, with an operator's bearer token, with a made-up key
// (Unauthenticated), and a sorter of station B acting at station A
// (PermissionDenied); nothing is written and every refusal is logged.
func TestSorterAuthorizationMatrix(t *testing.T) {
	t.Parallel()
	var methods []string
	for _, m := range stationv1.SorterService_ServiceDesc.Methods {
		methods = append(methods, m.MethodName)
	}
	for _, s := range stationv1.SorterService_ServiceDesc.Streams {
		methods = append(methods, s.StreamName)
	}
	for _, m := range methods {
		if _, ok := sorterMatrix[m]; !ok {
			t.Errorf("SorterService.%s has no row in sorterMatrix", m)
		}
	}
	for m := range sorterMatrix {
		if !slices.Contains(methods, m) {
			t.Errorf("sorterMatrix row %s names no SorterService method", m)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	st := stationtest.Start(t, stationtest.Options{})
	keyB, err := st.App.Sorters().AddSorter(context.Background(), auth.Sorter{ID: "sorter-b", StationID: stationB})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.App.Sorters().AddSorter(context.Background(), auth.Sorter{ID: "sorter-a", StationID: "SG-H01"}); err != nil {
		t.Fatal(err)
	}
	opToken := st.Login("op1")
	conn, err := grpc.NewClient(st.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	cli := stationv1.NewSorterServiceClient(conn)
	tn := viaParcels(t, st.Sim.Fixtures(), "SG-H01", 1)[0]

	callers := []struct {
		name   string
		md     []string
		want   codes.Code
		sorter string // who the log line must name
	}{
		{"no credentials", nil, codes.Unauthenticated, ""},
		{"operator token", []string{"authorization", "Bearer " + opToken}, codes.Unauthenticated, ""},
		{"made-up key", []string{"x-sorter-key", "sk_not-a-real-key"}, codes.Unauthenticated, ""},
		{"sorter of station B at A", []string{"x-sorter-key", keyB}, codes.PermissionDenied, "sorter-b"},
	}
	defer func() {
		if !t.Failed() {
			report(t, "sorter gRPC matrix: %d methods x %d callers refused (Unauthenticated or PermissionDenied), nothing written, each logged with method, code and sorter",
				len(methods), len(callers))
		}
	}()
	for _, m := range methods {
		for _, c := range callers {
			t.Run(m+"/"+c.name, func(t *testing.T) {
				before := fingerprint(t, st.App.DB())
				logged := countGRPCLogs(st, m, c.want, c.sorter)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if c.md != nil {
					ctx = metadata.AppendToOutgoingContext(ctx, c.md...)
				}
				err := sorterMatrix[m](ctx, cli, "SG-H01", tn)
				if status.Code(err) != c.want {
					t.Fatalf("%s: %v, want %s", m, err, c.want)
				}
				if changed := changedTables(before, fingerprint(t, st.App.DB())); len(changed) > 0 {
					t.Errorf("%s refused but wrote to %v", m, changed)
				}
				// The log line comes when the handler returns; give it a moment.
				deadline := time.Now().Add(2 * time.Second)
				for countGRPCLogs(st, m, c.want, c.sorter) == logged {
					if time.Now().After(deadline) {
						t.Fatalf("%s: refusal %s not logged with method, code and sorter %q", m, c.want, c.sorter)
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
		}
	}
}

// countGRPCLogs counts "grpc request" lines of method with code (and naming
// sorter, when given).
func countGRPCLogs(st *stationtest.Station, method string, code codes.Code, sorter string) int {
	n := 0
	full := "/" + stationv1.SorterService_ServiceDesc.ServiceName + "/" + method
	for _, e := range st.Logs.FilterMessage("grpc request").All() {
		f := e.ContextMap()
		if f["method"] == full && f["code"] == code.String() && (sorter == "" || f["sorter"] == sorter) {
			n++
		}
	}
	return n
}
