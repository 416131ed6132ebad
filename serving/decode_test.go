package serving

import (
	"bytes"
	"log/slog"
	"math"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/features"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// FuzzDecodePredict checks the wire decoder against protobuf-go itself on
// arbitrary bytes: it never panics, refuses only with InvalidArgument, and
// decodes exactly what protobuf-go decodes and toFields then admits (within
// the feature limit, and but for a feature named twice, which it refuses),
// into the same fields, model, entity key and explain options.
func FuzzDecodePredict(f *testing.F) {
	list, _ := structpb.NewList([]any{"a", 1.0})
	for _, req := range []*eddyv1.PredictRequest{
		{Model: "m", EntityKey: "k", Features: map[string]*structpb.Value{"a": structpb.NewNumberValue(1), "b": structpb.NewStringValue("x"), "c": structpb.NewBoolValue(true)}, Explain: true, TopK: 3},
		{Model: "m", Features: map[string]*structpb.Value{"l": structpb.NewListValue(list), "": structpb.NewBoolValue(true)}},
		{Model: "m", Features: map[string]*structpb.Value{"n": structpb.NewNullValue(), "e": {}}, AllClasses: true},
		{Model: "x", Features: map[string]*structpb.Value{"s": structpb.NewStringValue("")}},
		{},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x0a\x03caf\x1a\x05\x0a\x01\xff\x12\x00"))
	f.Add([]byte("\x1a\x0e\x0a\x01a\x12\x09\x11\x00\x00\x00\x00\x00\x00\xf0\x7f")) // a = +Inf
	const maxFeatures = 4
	s, err := New(Config{MaxFeatures: maxFeatures}, []string{"m"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var c predictCall
		err := s.decodeCall(data, &c)
		var reference eddyv1.PredictRequest
		refErr := proto.Unmarshal(data, &reference)
		var want []features.Field
		if refErr == nil {
			want, refErr = s.toFields(reference.GetFeatures(), nil)
		}
		if refErr == nil {
			refErr = sortFields(want)
		}
		entries := countEntries(data)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("decodeCall(%q) = %v, want InvalidArgument", data, err)
			}
			if refErr == nil && entries <= maxFeatures && entries == len(reference.GetFeatures()) {
				t.Fatalf("decodeCall(%q) refused a request protobuf-go decodes and toFields admits: %v", data, err)
			}
			return
		}
		if refErr != nil {
			t.Fatalf("decodeCall(%q) accepted a request protobuf-go or toFields refuses: %v", data, refErr)
		}
		if entries != len(reference.GetFeatures()) {
			t.Fatalf("decodeCall(%q) accepted a feature named twice", data)
		}
		if !sameFields(c.fields, want) {
			t.Fatalf("decodeCall(%q) fields = %v, protobuf-go's = %v", data, c.fields, want)
		}
		if c.model != reference.GetModel() || string(c.key) != reference.GetEntityKey() || c.explain != reference.GetExplain() || c.topK != reference.GetTopK() || c.allClasses != reference.GetAllClasses() {
			t.Fatalf("decodeCall(%q) = model %q key %q explain %v top_k %d all %v; protobuf-go: %v", data, c.model, c.key, c.explain, c.topK, c.allClasses, &reference)
		}
	})
}

// sameFields reports whether a and b hold the same fields, an empty name
// or string however it is held.
func sameFields(a, b []features.Field) bool {
	return slices.EqualFunc(a, b, func(x, y features.Field) bool {
		return bytes.Equal(x.Name, y.Name) && x.Kind == y.Kind && math.Float64bits(x.Num) == math.Float64bits(y.Num) && bytes.Equal(x.Str, y.Str)
	})
}

// countEntries counts the occurrences of the features field, repeated keys
// included, as the wire check does; -1 for malformed data.
func countEntries(data []byte) int {
	n := 0
	for len(data) > 0 {
		num, typ, l := protowire.ConsumeField(data)
		if l < 0 {
			return -1
		}
		if num == 3 && typ == protowire.BytesType {
			n++
		}
		data = data[l:]
	}
	return n
}
