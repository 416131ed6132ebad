package serving

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/features"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// Predict requests are not decoded by gRPC's protobuf codec, which decodes
// a whole message before any handler runs: it builds the complete feature
// map of a request that is then refused for having too many features (a
// 1 MiB request holds ~45,000), it fails a request with invalid UTF-8 in a
// string as INTERNAL, without saying where, and it allocates a map entry
// and two messages per feature that the handler turns into fields at once.
// Instead, the codec hands the handlers of Predict and PredictBatch the
// request's bytes undecoded (rawRequest), and decodeCall reads them
// straight into fields, counting the features and validating every string
// as it goes.

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

// inferenceService is the Inference service description with the handlers
// of Predict and PredictBatch replaced by s.handlePredict and
// s.handlePredictBatch.
func (s *Server) inferenceService() *grpc.ServiceDesc {
	desc := eddyv1.Inference_ServiceDesc
	desc.Methods = append([]grpc.MethodDesc(nil), desc.Methods...)
	for i := range desc.Methods {
		switch desc.Methods[i].MethodName {
		case "Predict":
			desc.Methods[i].Handler = s.handlePredict
		case "PredictBatch":
			desc.Methods[i].Handler = s.handlePredictBatch
		}
	}
	return &desc
}

// predictCall is one Predict request as the handler scores it. Over gRPC,
// decodeCall fills it from the request's bytes, which key and fields view
// and which must outlive the call; Predict fills it from a PredictRequest.
type predictCall struct {
	raw        rawRequest // over gRPC: the request's bytes
	invalid    error      // over gRPC: why decodeCall refused them
	model      string     // the configured name when it is one (not a view)
	key        []byte     // nil: none
	explain    bool
	topK       uint32
	allClasses bool
	fields     []features.Field
}

// reset empties c for reuse, dropping its views of the request (free the
// bytes first).
func (c *predictCall) reset() {
	clear(c.fields)
	*c = predictCall{fields: c.fields[:0]}
}

// handlePredict is the gRPC method handler of Predict: it decodes the
// request's bytes straight into fields (decodeCall) and answers them,
// through the unary interceptors either way so that refused requests are
// observed too. The request's bytes are freed once the handler returns:
// the response holds none of them.
func (s *Server) handlePredict(_ any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	c := s.calls.Get().(*predictCall)
	defer s.release(c)
	if err := dec(&c.raw); err != nil {
		return nil, err
	}
	c.invalid = s.decodeCall(c.raw.buf.ReadOnlyData(), c)
	if interceptor == nil {
		return s.answerCall(ctx, c)
	}
	return interceptor(ctx, c, s.predictInfo, s.answerCallFunc)
}

// answerCall is Predict's unary handler behind the interceptors: it
// answers a decoded *predictCall.
func (s *Server) answerCall(_ context.Context, r any) (any, error) {
	c := r.(*predictCall)
	if c.invalid != nil {
		return nil, c.invalid
	}
	a := new(answerBox)
	if err := s.answer(c, &a.resp, &a.score, &a.label); err != nil {
		return nil, err
	}
	return &a.resp, nil
}

// release frees c's request bytes and returns c to the pool.
func (s *Server) release(c *predictCall) {
	if c.raw.buf != nil {
		c.raw.buf.Free()
	}
	c.reset()
	s.calls.Put(c)
}

// Field numbers of PredictRequest, its map entries and google.protobuf.Value.
const (
	requestModel      protowire.Number = 1
	requestEntityKey  protowire.Number = 2
	requestFeatures   protowire.Number = 3
	requestExplain    protowire.Number = 4
	requestTopK       protowire.Number = 5
	requestAllClasses protowire.Number = 6
	entryKey          protowire.Number = 1
	entryValue        protowire.Number = 2
	valueNull         protowire.Number = 1
	valueNumber       protowire.Number = 2
	valueString       protowire.Number = 3
	valueBool         protowire.Number = 4
	valueStruct       protowire.Number = 5
	valueList         protowire.Number = 6
)

// decodeCall decodes an encoded PredictRequest into c without protobuf-go's
// decoder, which would build a map and a message per feature: the fields
// view data. It accepts what protobuf-go accepts and toFields then admits
// (FuzzDecodePredict compares them), except that a feature named twice is
// refused (protobuf-go keeps the last). It refuses more than MaxFeatures
// features, counted before any error in them is reported; malformed wire
// data; invalid UTF-8 in the model name, the entity key, feature names and
// string values, naming where. Every error is InvalidArgument. c.model is
// set when the model name was read, for metrics.
func (s *Server) decodeCall(data []byte, c *predictCall) error {
	var firstInvalid error // reported unless there are too many features
	count := 0
	for len(data) > 0 {
		num, typ, n := consumeTag(data)
		if n < 0 {
			return malformed(n)
		}
		data = data[n:]
		switch {
		case typ == protowire.BytesType && num <= requestFeatures:
			field, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return malformed(n)
			}
			data = data[n:]
			switch num {
			case requestModel:
				if !utf8.Valid(field) {
					c.model = ""
					return status.Errorf(codes.InvalidArgument, "the model name is not valid UTF-8: %s", quoteShort(field))
				}
				c.model = s.modelName(field)
			case requestEntityKey:
				if !utf8.Valid(field) && firstInvalid == nil {
					firstInvalid = status.Errorf(codes.InvalidArgument, "entity_key is not valid UTF-8: %s", quoteShort(field))
				}
				c.key = nil
				if len(field) > 0 {
					c.key = field
				}
			case requestFeatures:
				count++
				if count <= s.cfg.MaxFeatures && firstInvalid == nil {
					f, err := decodeFeature(field)
					if err != nil {
						firstInvalid = err
					} else {
						c.fields = append(c.fields, f)
					}
				}
			}
		case typ == protowire.VarintType && num >= requestExplain && num <= requestAllClasses:
			v, n := protowire.ConsumeVarint(data)
			if n < 0 {
				return malformed(n)
			}
			data = data[n:]
			switch num {
			case requestExplain:
				c.explain = v != 0
			case requestTopK:
				c.topK = uint32(v)
			case requestAllClasses:
				c.allClasses = v != 0
			}
		default:
			if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
				return malformed(n)
			}
			data = data[n:]
		}
	}
	if count > s.cfg.MaxFeatures {
		return tooManyFeatures(count, s.cfg.MaxFeatures)
	}
	if firstInvalid != nil {
		return firstInvalid
	}
	return sortFields(c.fields)
}

// consumeTag is protowire.ConsumeTag refusing the field numbers protobuf-go
// refuses when it decodes a message (above MaxValidNumber).
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, -1 // protowire's code for a malformed varint: "parse error"
	}
	return num, typ, n
}

// sortFields sorts fields by name, as the score's float sum needs a fixed
// order (a map's is random), and refuses a name that appears twice.
func sortFields(fields []features.Field) error {
	slices.SortFunc(fields, func(a, b features.Field) int { return bytes.Compare(a.Name, b.Name) })
	for i := 1; i < len(fields); i++ {
		if bytes.Equal(fields[i].Name, fields[i-1].Name) {
			return status.Errorf(codes.InvalidArgument, "feature %s appears twice in the request", quoteShort(fields[i].Name))
		}
	}
	return nil
}

// decodeFeature decodes one encoded map entry of features (its name and
// its google.protobuf.Value, every occurrence of which is merged, last
// kind wins, as protobuf-go merges them) into a field, refusing what
// toFields refuses with the same messages.
func decodeFeature(entry []byte) (features.Field, error) {
	var name, badString []byte
	var v wireValue
	for len(entry) > 0 {
		num, typ, n := consumeTag(entry)
		if n < 0 {
			return features.Field{}, malformed(n)
		}
		entry = entry[n:]
		if typ != protowire.BytesType || (num != entryKey && num != entryValue) {
			if n = protowire.ConsumeFieldValue(num, typ, entry); n < 0 {
				return features.Field{}, malformed(n)
			}
			entry = entry[n:]
			continue
		}
		field, n := protowire.ConsumeBytes(entry)
		if n < 0 {
			return features.Field{}, malformed(n)
		}
		entry = entry[n:]
		if num == entryKey {
			if !utf8.Valid(field) {
				return features.Field{}, status.Errorf(codes.InvalidArgument, "a feature name is not valid UTF-8: %s", quoteShort(field))
			}
			name = field
			continue
		}
		bad, err := v.merge(field)
		if err != nil {
			return features.Field{}, err
		}
		if badString == nil {
			badString = bad
		}
	}
	if badString != nil { // reported once the name, which may follow the value, is known
		return features.Field{}, status.Errorf(codes.InvalidArgument, "feature %s has a string value that is not valid UTF-8: %s", quoteShort(name), quoteShort(badString))
	}
	return v.field(name)
}

// wireValue is a google.protobuf.Value read from the wire: its kind (the
// oneof field last set, 0 for none) and a number's, a bool's or a string's
// value.
type wireValue struct {
	kind protowire.Number
	num  float64
	str  []byte
}

// Messages nested in a Value (lists and objects, which Predict refuses)
// are checked by protobuf-go at the depth it would reach them, so that
// they are refused exactly when it refuses them: a PredictRequest, its map
// entry and the Value are three levels.
var nestedOptions = proto.UnmarshalOptions{RecursionLimit: protowire.DefaultRecursionLimit - 3}

// merge reads one encoded occurrence of a Value into v, returning the
// first string_value that is not valid UTF-8.
func (v *wireValue) merge(b []byte) (badString []byte, err error) {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return nil, malformed(n)
		}
		b = b[n:]
		switch {
		case (num == valueNull || num == valueBool) && typ == protowire.VarintType:
			x, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return nil, malformed(n)
			}
			b = b[n:]
			v.kind, v.num = num, 0
			if num == valueBool && x != 0 {
				v.num = 1
			}
		case num == valueNumber && typ == protowire.Fixed64Type:
			x, n := protowire.ConsumeFixed64(b)
			if n < 0 {
				return nil, malformed(n)
			}
			b = b[n:]
			v.kind, v.num = num, math.Float64frombits(x)
		case num >= valueString && num <= valueList && num != valueBool && typ == protowire.BytesType:
			field, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, malformed(n)
			}
			b = b[n:]
			v.kind = num
			switch num {
			case valueString:
				v.str = field
				if badString == nil && !utf8.Valid(field) {
					badString = field
				}
			case valueStruct:
				if err := nestedOptions.Unmarshal(field, new(structpb.Struct)); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "malformed request: %v", err)
				}
			case valueList:
				if err := nestedOptions.Unmarshal(field, new(structpb.ListValue)); err != nil {
					return nil, status.Errorf(codes.InvalidArgument, "malformed request: %v", err)
				}
			}
		default:
			if n = protowire.ConsumeFieldValue(num, typ, b); n < 0 {
				return nil, malformed(n)
			}
			b = b[n:]
		}
	}
	return badString, nil
}

// field is v as the feature name, refused as toFields refuses it.
func (v *wireValue) field(name []byte) (features.Field, error) {
	if len(name) == 0 {
		return features.Field{}, status.Error(codes.InvalidArgument, "a feature has an empty name")
	}
	f := features.Field{Name: name}
	switch v.kind {
	case valueNumber:
		if err := checkNumber(name, v.num); err != nil {
			return features.Field{}, err
		}
		f.Kind, f.Num = features.Number, v.num
	case valueString:
		f.Kind, f.Str = features.String, v.str
	case valueBool:
		f.Kind, f.Num = features.Bool, v.num
	default:
		kind := "empty"
		switch v.kind {
		case valueNull:
			kind = "null"
		case valueStruct:
			kind = "object"
		case valueList:
			kind = "list"
		}
		return features.Field{}, status.Errorf(codes.InvalidArgument, "feature %q has unsupported type %s (want number, string or bool)", name, kind)
	}
	return f, nil
}

// checkNumber refuses a numeric feature that is not finite or beyond
// ±features.MaxAbs.
func checkNumber(name []byte, x float64) error {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return status.Errorf(codes.InvalidArgument, "feature %q is not a finite number", name)
	}
	if math.Abs(x) > features.MaxAbs {
		return status.Errorf(codes.InvalidArgument, "feature %q = %g is out of range (the limit is ±%g)", name, x, features.MaxAbs)
	}
	return nil
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
