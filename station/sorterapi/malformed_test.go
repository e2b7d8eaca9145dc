package sorterapi_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"

	stationv1 "github.com/expresshub/station/proto/station/v1"

	"github.com/expresshub/station/station/stationtest"
)

// rawCodec sends request bytes exactly as given, under the proto content
// subtype, and keeps the answer's bytes: a client whose encoder is broken,
// or an attacker's.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// malformed are request payloads no protobuf encoder produces, one per kind
// seen in the field.
func malformed() map[string][]byte {
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	str := func(num protowire.Number, s []byte) []byte {
		return protowire.AppendBytes(tag(num, protowire.BytesType), s)
	}
	// Groups nested past protobuf's recursion limit, in an unknown field.
	deep := append(bytes.Repeat(tag(99, protowire.StartGroupType), 12000), bytes.Repeat(tag(99, protowire.EndGroupType), 12000)...)
	return map[string][]byte{
		"random bytes":        {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, 0x07, 0x9c, 0x00},
		"bad UTF-8 string":    str(1, []byte{'S', 'G', 0xc3, 0x28, 0xff, '1'}),
		"truncated":           str(2, []byte("SG1000000001"))[:6],
		"deeply nested":       deep,
		"reserved field 0":    append(tag(0, protowire.VarintType), 1),
		"end group unopened":  tag(7, protowire.EndGroupType),
		"truncated timestamp": append(tag(6, protowire.BytesType), 10, 8),
	}
}

// TestMalformedProtobufIsInvalidArgument sends raw bytes that are not a
// valid request to every SorterService method over a real loopback
// connection: the machine's software is told InvalidArgument, as
// sorter.proto promises, never Internal.
func TestMalformedProtobufIsInvalidArgument(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm-malformed")
	conn := dialConn(t, st.GRPCAddr)
	unary := []string{
		"/station.v1.SorterService/PreSort",
		"/station.v1.SorterService/Resolve",
		"/station.v1.SorterService/Confirm",
	}
	for kind, payload := range malformed() {
		for _, method := range unary {
			var out []byte
			err := conn.Invoke(m.ctx(), method, &payload, &out, grpc.ForceCodec(rawCodec{}))
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s %s: %v, want InvalidArgument", kind, method, err)
			}
		}
		if err := rawStream(m.ctx(), conn, payload); status.Code(err) != codes.InvalidArgument {
			t.Errorf("%s ResolveStream: %v, want InvalidArgument", kind, err)
		}
	}
	// The same connection still serves a well-formed request.
	if d := m.resolve("SG1000000001"); d.GetChute() == 0 {
		t.Fatalf("after malformed requests: %v", d)
	}
}

// rawStream opens ResolveStream, sends payload as one request and returns
// how the stream ended.
func rawStream(ctx context.Context, conn *grpc.ClientConn, payload []byte) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true, ServerStreams: true},
		"/station.v1.SorterService/ResolveStream", grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return err
	}
	if err := s.SendMsg(&payload); err != nil && err != io.EOF {
		return err
	}
	for range 10 {
		var out []byte
		if err := s.RecvMsg(&out); err != nil {
			return err
		}
	}
	return status.Error(codes.OK, "stream still open after 10 answers")
}

// TestConfirmRefusesEventTimesFarFromTheClock: occurred_at is relayed into
// the parcel's public history, so 9999-12-31 (or a machine clock a year
// off) is InvalidArgument, and nothing is recorded.
func TestConfirmRefusesEventTimesFarFromTheClock(t *testing.T) {
	t.Parallel()
	st := start(t, stationtest.Options{})
	m := newMachine(t, st, station, "asm-clock")
	for i, at := range []time.Time{
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Now().Add(time.Hour),
		time.Now().AddDate(-1, 0, 0),
	} {
		_, err := m.confirm(&stationv1.ConfirmRequest{Sequence: uint64(i + 1), Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_NO_READ,
			OccurredAt: timestamppb.New(at)})
		wantCode(t, err, codes.InvalidArgument, "INVALID_SORTER_EVENT")
	}
	if n := st.Count(`SELECT count(*) FROM sorter_confirms WHERE sorter_id = 'asm-clock'`); n != 0 {
		t.Fatalf("%d confirms recorded", n)
	}
	if _, err := m.confirm(&stationv1.ConfirmRequest{Sequence: 9, Outcome: stationv1.ConfirmOutcome_CONFIRM_OUTCOME_NO_READ,
		OccurredAt: timestamppb.New(time.Now().Add(-time.Minute))}); err != nil {
		t.Fatalf("a time a minute ago: %v", err)
	}
}
