package serving

import (
	"context"
	"fmt"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// Predict requests are read in two steps instead of by gRPC's protobuf
// codec, which decodes a whole message before any handler runs: it builds
// the complete feature map of a request that is then refused for having too
// many features (a 1 MiB request holds ~45,000), and it fails a request with
// invalid UTF-8 in a string as INTERNAL, without saying where. Instead, the
// codec hands Predict's handler the request's bytes undecoded (rawRequest);
// checkPredictWire walks them without allocating, counting the features and
// validating every string, and only a request that passes is decoded.

// rawRequest receives a request's bytes from codec, undecoded. The handler
// must Free buf.
type rawRequest struct{ buf mem.Buffer }

// codec is gRPC's protobuf codec, except that a *rawRequest receives the
// message's bytes as they are.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{proto: encoding.GetCodecV2("proto")} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if raw, ok := v.(*rawRequest); ok {
		raw.buf = data.MaterializeToBuffer(mem.DefaultBufferPool()) // a reference, not a copy, for one buffer
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

func (codec) Name() string { return "proto" }

// inferenceService is the Inference service description with Predict's
// handler replaced by s.handlePredict.
func (s *Server) inferenceService() *grpc.ServiceDesc {
	desc := eddyv1.Inference_ServiceDesc
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		if desc.Methods[i].MethodName == "Predict" {
			desc.Methods[i].Handler = s.handlePredict
		}
	}
	return &desc
}

// handlePredict is the gRPC method handler of Predict: it checks the
// request's bytes, decodes them and calls Predict, through the unary
// interceptors either way so that refused requests are observed too.
func (s *Server) handlePredict(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	var raw rawRequest
	if err := dec(&raw); err != nil {
		return nil, err
	}
	req := new(eddyv1.PredictRequest)
	invalid := s.decodePredict(raw.buf.ReadOnlyData(), req)
	raw.buf.Free() // proto.Unmarshal copied what it kept
	handler := func(ctx context.Context, r any) (any, error) {
		if invalid != nil {
			return nil, invalid
		}
		return s.Predict(ctx, r.(*eddyv1.PredictRequest))
	}
	if interceptor == nil {
		return handler(ctx, req)
	}
	return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: eddyv1.Inference_Predict_FullMethodName}, handler)
}

// decodePredict decodes data into req if checkPredictWire accepts it. Any
// error is an InvalidArgument status.
func (s *Server) decodePredict(data []byte, req *eddyv1.PredictRequest) error {
	model, err := s.checkPredictWire(data)
	if err != nil {
		req.Model = model // observe labels the refusal with the model, if it is one
		return err
	}
	if err := proto.Unmarshal(data, req); err != nil {
		// What checkPredictWire does not look into: lists and objects, which
		// Predict refuses anyway.
		return status.Errorf(codes.InvalidArgument, "malformed request: %v", err)
	}
	return nil
}

// Field numbers of PredictRequest, its map entries and google.protobuf.Value.
const (
	requestModel     protowire.Number = 1
	requestEntityKey protowire.Number = 2
	requestFeatures  protowire.Number = 3
	entryKey         protowire.Number = 1
	entryValue       protowire.Number = 2
	valueString      protowire.Number = 3
)

// checkPredictWire walks an encoded PredictRequest without decoding it. It
// refuses more than MaxFeatures features, malformed wire data, and invalid
// UTF-8 in the model name, the entity key, feature names and string values,
// which protobuf strings cannot carry. It returns the model name when it is
// valid UTF-8, for metrics.
func (s *Server) checkPredictWire(data []byte) (model string, err error) {
	var firstInvalid error // reported unless there are too many features
	count := 0
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return model, malformed(n)
		}
		data = data[n:]
		if typ != protowire.BytesType || num > requestFeatures {
			if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
				return model, malformed(n)
			}
			data = data[n:]
			continue
		}
		field, n := protowire.ConsumeBytes(data)
		if n < 0 {
			return model, malformed(n)
		}
		data = data[n:]
		switch num {
		case requestModel:
			if !utf8.Valid(field) {
				return "", status.Errorf(codes.InvalidArgument, "the model name is not valid UTF-8: %s", quoteShort(field))
			}
			model = string(field)
		case requestEntityKey:
			if !utf8.Valid(field) && firstInvalid == nil {
				firstInvalid = status.Errorf(codes.InvalidArgument, "entity_key is not valid UTF-8: %s", quoteShort(field))
			}
		case requestFeatures:
			count++
			if count <= s.cfg.MaxFeatures && firstInvalid == nil {
				firstInvalid = checkFeatureWire(field)
			}
		}
	}
	if count > s.cfg.MaxFeatures {
		return model, tooManyFeatures(count, s.cfg.MaxFeatures)
	}
	return model, firstInvalid
}

// checkFeatureWire checks one encoded map entry: its name and, if its value
// is a string, the string.
func checkFeatureWire(entry []byte) error {
	var name, badValue []byte
	for len(entry) > 0 {
		num, typ, n := protowire.ConsumeTag(entry)
		if n < 0 {
			return malformed(n)
		}
		entry = entry[n:]
		if typ != protowire.BytesType || (num != entryKey && num != entryValue) {
			if n = protowire.ConsumeFieldValue(num, typ, entry); n < 0 {
				return malformed(n)
			}
			entry = entry[n:]
			continue
		}
		field, n := protowire.ConsumeBytes(entry)
		if n < 0 {
			return malformed(n)
		}
		entry = entry[n:]
		if num == entryKey {
			if !utf8.Valid(field) {
				return status.Errorf(codes.InvalidArgument, "a feature name is not valid UTF-8: %s", quoteShort(field))
			}
			name = field
			continue
		}
		bad, err := invalidString(field)
		if err != nil {
			return err
		}
		if badValue == nil {
			badValue = bad
		}
	}
	if badValue != nil { // reported once the name, which may follow the value, is known
		return status.Errorf(codes.InvalidArgument, "feature %s has a string value that is not valid UTF-8: %s", quoteShort(name), quoteShort(badValue))
	}
	return nil
}

// invalidString returns the first string_value of an encoded
// google.protobuf.Value that is not valid UTF-8, or nil.
func invalidString(value []byte) ([]byte, error) {
	var bad []byte
	for len(value) > 0 {
		num, typ, n := protowire.ConsumeTag(value)
		if n < 0 {
			return nil, malformed(n)
		}
		value = value[n:]
		if num != valueString || typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, value); n < 0 {
				return nil, malformed(n)
			}
			value = value[n:]
			continue
		}
		str, n := protowire.ConsumeBytes(value)
		if n < 0 {
			return nil, malformed(n)
		}
		value = value[n:]
		if bad == nil && !utf8.Valid(str) {
			bad = str
		}
	}
	return bad, nil
}

func malformed(n int) error {
	return status.Errorf(codes.InvalidArgument, "malformed request: %v", protowire.ParseError(n))
}

func tooManyFeatures(n, limit int) error {
	return status.Errorf(codes.InvalidArgument, "%d features exceed the limit of %d", n, limit)
}

// quoteShort quotes b as Go would, invalid bytes escaped, cut to a length
// that keeps error messages readable.
func quoteShort(b []byte) string {
	const limit = 64
	if len(b) <= limit {
		return strconv.Quote(string(b))
	}
	return strconv.Quote(string(b[:limit])) + fmt.Sprintf("… (%d bytes)", len(b))
}
