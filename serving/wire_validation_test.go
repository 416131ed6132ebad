package serving_test

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddyhq/eddy/serving"
)

// These requests are sent as raw bytes over gRPC on loopback: protobuf-go
// refuses to marshal invalid UTF-8, other clients do not.

func TestPredictAnswersInvalidUTF8WithInvalidArgumentNamingTheField(t *testing.T) {
	const bad = "caf\xe9" // Latin-1, not UTF-8
	tests := []struct {
		name      string
		req       wireRequest
		wantInMsg []string
	}{
		{"in the model name", wireRequest(nil).model(bad).number("x", 1), []string{"model name", "UTF-8", `"caf\xe9"`}},
		{"in the entity key", wireRequest(nil).model("fraud").entityKey(bad).number("x", 1), []string{"entity_key", "UTF-8", `"caf\xe9"`}},
		{"in a feature name", wireRequest(nil).model("fraud").number("x", 1).number(bad, 2), []string{"feature name", "UTF-8", `"caf\xe9"`}},
		{"in a string value", wireRequest(nil).model("fraud").str("country", bad), []string{`feature "country"`, "string value", "UTF-8", `"caf\xe9"`}},
	}
	ts := startServer(t, serving.Config{}, "fraud")
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 1, Binary: true})
	for _, tt := range tests {
		t.Run(tt.name+" is an invalid argument", func(t *testing.T) {
			_, err := predictRaw(rpcContext(t), ts.conn, rawBytes(tt.req))
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Predict = %v, want code InvalidArgument", err)
			}
			msg := status.Convert(err).Message()
			for _, want := range tt.wantInMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not mention %s", msg, want)
				}
			}
		})
	}
	t.Run("valid UTF-8 sent the same way is answered", func(t *testing.T) {
		req := wireRequest(nil).model("fraud").entityKey("café").str("country", "café").number("x", 1)
		if _, err := predictRaw(rpcContext(t), ts.conn, rawBytes(req)); err != nil {
			t.Fatalf("Predict: %v", err)
		}
	})
	t.Run("malformed wire data is an invalid argument", func(t *testing.T) {
		req := append(wireRequest(nil).model("fraud"), 0x1a, 0x7f) // features entry claiming 127 bytes, with none
		if _, err := predictRaw(rpcContext(t), ts.conn, rawBytes(req)); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("Predict = %v, want code InvalidArgument", err)
		}
	})
}

// A request with more features than the limit is refused from a count of
// its map entries, before any is decoded: the invalid UTF-8 at its end,
// which decoding would trip over, is never reached.
func TestPredictCountsFeaturesBeforeDecodingThem(t *testing.T) {
	ts := startServer(t, serving.Config{MaxFeatures: 100}, "fraud")
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 1, Binary: true})
	req := wireRequest(nil).model("fraud")
	for i := range 2000 {
		req = req.number("f"+strconv.Itoa(i), 1)
	}
	req = req.str("last", "\xff")
	_, err := predictRaw(rpcContext(t), ts.conn, rawBytes(req))
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "2001 features exceed the limit of 100") {
		t.Fatalf("Predict = %v, want InvalidArgument naming 2001 features and the limit of 100", err)
	}
}
