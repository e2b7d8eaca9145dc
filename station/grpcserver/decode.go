package grpcserver

import (
	"context"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
)

// Request decoding.
//
// grpc-go answers a request message it cannot decode (bytes that are not
// protobuf, a string that is not UTF-8, a truncated message, nesting past
// protobuf's depth limit) with Internal, and sends that status from inside
// its receive before any handler or interceptor sees the error. Those are
// the client's mistakes, and sorter.proto promises InvalidArgument. So the
// services registered through Server receive each request as its raw bytes
// (which cannot fail to decode) and decode them here, answering
// InvalidArgument when protobuf refuses them. Services registered on GRPC
// directly (health, reflection) keep grpc-go's behaviour.

// rawFrame is a request message as received, not yet decoded.
type rawFrame struct{ b []byte }

// frameCodec is the proto codec, except that it hands a *rawFrame the
// message's bytes as they are.
type frameCodec struct{ encoding.CodecV2 }

func newFrameCodec() frameCodec {
	return frameCodec{encoding.GetCodecV2(protocodec.Name)}
}

func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*rawFrame); ok {
		f.b = data.Materialize()
		return nil
	}
	return c.CodecV2.Unmarshal(data, v)
}

// decode unmarshals a raw request into v.
func decode(f *rawFrame, v any) error {
	var m proto.Message
	switch v := v.(type) {
	case proto.Message:
		m = v
	case protoadapt.MessageV1:
		m = protoadapt.MessageV2Of(v)
	default:
		return status.Errorf(codes.Internal, "grpcserver: %T is not a protobuf message", v)
	}
	if err := proto.Unmarshal(f.b, m); err != nil {
		return status.Error(codes.InvalidArgument, fmt.Sprintf("malformed request message: %v", err))
	}
	return nil
}

// RegisterService registers a service whose requests are decoded as above
// (Server is a grpc.ServiceRegistrar).
func (s *Server) RegisterService(desc *grpc.ServiceDesc, impl any) {
	s.GRPC.RegisterService(decodedHere(desc), impl)
}

// decodedHere is a copy of desc whose handlers receive raw frames and
// decode them with decode.
func decodedHere(desc *grpc.ServiceDesc) *grpc.ServiceDesc {
	d := *desc
	d.Methods = make([]grpc.MethodDesc, len(desc.Methods))
	for i, m := range desc.Methods {
		h := m.Handler
		m.Handler = func(srv any, ctx context.Context, dec func(any) error, in grpc.UnaryServerInterceptor) (any, error) {
			return h(srv, ctx, func(v any) error {
				var f rawFrame
				if err := dec(&f); err != nil {
					return err
				}
				return decode(&f, v)
			}, in)
		}
		d.Methods[i] = m
	}
	d.Streams = make([]grpc.StreamDesc, len(desc.Streams))
	for i, sd := range desc.Streams {
		if sd.ClientStreams {
			h := sd.Handler
			sd.Handler = func(srv any, ss grpc.ServerStream) error { return h(srv, &decodingStream{ss}) }
		}
		d.Streams[i] = sd
	}
	return &d
}

// decodingStream receives raw frames and decodes them with decode.
type decodingStream struct{ grpc.ServerStream }

func (s *decodingStream) RecvMsg(m any) error {
	var f rawFrame
	if err := s.ServerStream.RecvMsg(&f); err != nil {
		return err
	}
	return decode(&f, m)
}
