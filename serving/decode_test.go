package serving

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// FuzzDecodePredict checks the wire check against protobuf-go itself on
// arbitrary bytes: it never panics, refuses only with InvalidArgument,
// never refuses a request protobuf-go decodes (within the feature limit),
// and never accepts one it cannot decode.
func FuzzDecodePredict(f *testing.F) {
	list, _ := structpb.NewList([]any{"a", 1.0})
	for _, req := range []*eddyv1.PredictRequest{
		{Model: "m", EntityKey: "k", Features: map[string]*structpb.Value{"a": structpb.NewNumberValue(1), "b": structpb.NewStringValue("x")}},
		{Model: "m", Features: map[string]*structpb.Value{"l": structpb.NewListValue(list), "": structpb.NewBoolValue(true)}},
		{},
	} {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\x0a\x03caf\x1a\x05\x0a\x01\xff\x12\x00"))
	const maxFeatures = 4
	s, err := New(Config{MaxFeatures: maxFeatures}, []string{"m"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req eddyv1.PredictRequest
		err := s.decodePredict(data, &req)
		var reference eddyv1.PredictRequest
		refErr := proto.Unmarshal(data, &reference)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("decodePredict(%q) = %v, want InvalidArgument", data, err)
			}
			if refErr == nil && len(reference.GetFeatures()) <= maxFeatures && countEntries(data) <= maxFeatures {
				t.Fatalf("decodePredict(%q) refused a request protobuf-go decodes: %v", data, err)
			}
			return
		}
		if refErr != nil {
			t.Fatalf("decodePredict(%q) accepted a request protobuf-go refuses: %v", data, refErr)
		}
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
