package serving_test

import (
	"context"
	"fmt"
	"math"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// Helpers that put raw protobuf bytes on the wire: clients of other
// languages (and attackers) are not bound by protobuf-go's own checks, such
// as its refusal to marshal invalid UTF-8.

// rawBytes is a message that is already encoded.
type rawBytes []byte

// rawCodec sends rawBytes as they are and receives responses as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	b, ok := v.(rawBytes)
	if !ok {
		return nil, fmt.Errorf("rawCodec marshals rawBytes, not %T", v)
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return encoding.GetCodecV2("proto").Unmarshal(data, v)
}

func (rawCodec) Name() string { return "proto" }

// forceRaw is the call option that sends rawBytes as they are.
var forceRaw = grpc.ForceCodecV2(rawCodec{})

// predictRaw calls Predict with a request encoded by hand.
func predictRaw(ctx context.Context, conn *grpc.ClientConn, req rawBytes) (*eddyv1.PredictResponse, error) {
	resp := new(eddyv1.PredictResponse)
	err := conn.Invoke(ctx, eddyv1.Inference_Predict_FullMethodName, req, resp, forceRaw)
	return resp, err
}

// wireRequest builds an encoded PredictRequest field by field.
type wireRequest []byte

func (w wireRequest) model(name string) wireRequest {
	return protowire.AppendString(protowire.AppendTag(w, 1, protowire.BytesType), name)
}

func (w wireRequest) entityKey(key string) wireRequest {
	return protowire.AppendString(protowire.AppendTag(w, 2, protowire.BytesType), key)
}

// number and str add a map entry whose google.protobuf.Value is a number
// (field 2) or a string (field 3).
func (w wireRequest) number(name string, x float64) wireRequest {
	value := protowire.AppendFixed64(protowire.AppendTag(nil, 2, protowire.Fixed64Type), math.Float64bits(x))
	return w.entry(name, value)
}

func (w wireRequest) str(name, s string) wireRequest {
	return w.entry(name, protowire.AppendString(protowire.AppendTag(nil, 3, protowire.BytesType), s))
}

func (w wireRequest) entry(name string, value []byte) wireRequest {
	var e []byte
	e = protowire.AppendString(protowire.AppendTag(e, 1, protowire.BytesType), name)
	e = protowire.AppendBytes(protowire.AppendTag(e, 2, protowire.BytesType), value)
	return protowire.AppendBytes(protowire.AppendTag(w, 3, protowire.BytesType), e)
}

// listenLoopback listens on a free loopback port.
func listenLoopback(tb testing.TB) net.Listener {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	return lis
}
