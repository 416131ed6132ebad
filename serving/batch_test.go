package serving_test

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
)

// TestPredictBatchAnswersEveryRowAsPredictDoes: over gRPC, each row of a
// batch gets exactly the answer (bit for bit) or the refusal a Predict of
// it gets, in order; a refused row (unknown model, a non-finite number,
// invalid UTF-8 sent by a non-Go client, no snapshot yet) does not spoil
// the others; every row is counted under its own code.
func TestPredictBatchAnswersEveryRowAsPredictDoes(t *testing.T) {
	ts := startServer(t, serving.Config{}, "fraud", "price", "cold")
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 7, Binary: true, Bias: -0.3})
	ts.publish(t, &linearSnapshot{Name: "price", Ver: 2, Bias: 10})
	rows := []rawBytes{
		rawBytes(wireRequest(nil).model("fraud").number("amount", 0.25).number("age", -1.5).str("country", "DE")),
		rawBytes(wireRequest(nil).model("price").number("x", 3.125).entityKey("user-1")),
		rawBytes(wireRequest(nil).model("ghost").number("x", 1)),
		rawBytes(wireRequest(nil).model("fraud").number("amount", math.Inf(1))),
		rawBytes(wireRequest(nil).model("fraud").str("country", "caf\xe9")),
		rawBytes(wireRequest(nil).model("cold").number("x", 1)),
		rawBytes(wireRequest(nil).model("fraud").number("x", 1).number("x", 2)),
	}
	for i := range 50 {
		rows = append(rows, rawBytes(wireRequest(nil).model("fraud").number("a", float64(i)/7).number("b", -float64(i)/3).str("c", strconv.Itoa(i%5))))
	}
	var batch []byte
	for _, r := range rows {
		batch = protowire.AppendBytes(protowire.AppendTag(batch, 1, protowire.BytesType), r)
	}
	resp := new(eddyv1.PredictBatchResponse)
	if err := ts.conn.Invoke(rpcContext(t), eddyv1.Inference_PredictBatch_FullMethodName, rawBytes(batch), resp, forceRaw); err != nil {
		t.Fatalf("PredictBatch: %v", err)
	}
	if len(resp.GetResults()) != len(rows) {
		t.Fatalf("PredictBatch answered %d results for %d rows", len(resp.GetResults()), len(rows))
	}
	answered := 0
	for i, r := range rows {
		got := resp.GetResults()[i]
		single, err := predictRaw(rpcContext(t), ts.conn, r)
		if err != nil {
			if got.GetResponse() != nil || got.GetErrorCode() != int32(status.Code(err)) || got.GetError() != status.Convert(err).Message() {
				t.Errorf("row %d: batch result %v, Predict refused it with %v", i, got, err)
			}
			continue
		}
		answered++
		if got.GetErrorCode() != 0 || !proto.Equal(got.GetResponse(), single) ||
			math.Float64bits(got.GetResponse().GetProbability()) != math.Float64bits(single.GetProbability()) ||
			math.Float64bits(got.GetResponse().GetValue()) != math.Float64bits(single.GetValue()) {
			t.Errorf("row %d: batch answered %v, Predict %v", i, got, single)
		}
	}
	if answered != len(rows)-5 {
		t.Errorf("%d rows answered, want all but the 5 refused", answered)
	}
	for _, want := range []struct {
		code  int32
		inMsg string
	}{{int32(codes.NotFound), `"ghost"`}, {int32(codes.InvalidArgument), "not a finite number"}, {int32(codes.InvalidArgument), "UTF-8"}, {int32(codes.Unavailable), "no promoted snapshot"}, {int32(codes.InvalidArgument), `"x" appears twice`}} {
		found := false
		for _, r := range resp.GetResults()[2:7] {
			found = found || (r.GetErrorCode() == want.code && strings.Contains(r.GetError(), want.inMsg))
		}
		if !found {
			t.Errorf("no refused row has code %d and a message with %s: %v", want.code, want.inMsg, resp.GetResults()[2:7])
		}
	}
	// Counted once per row by the batch and once per row by Predict.
	requests := gather(t, ts.reg, "eddy_predict_requests_total")
	if got := requests["code=OK,model=fraud"]; got != 2*51 {
		t.Errorf("eddy_predict_requests_total{fraud,OK} = %v, want %d", got, 2*51)
	}
	if got := requests["code=NotFound,model=unknown"]; got != 2 {
		t.Errorf("eddy_predict_requests_total{unknown,NotFound} = %v, want 2", got)
	}
	if got := gather(t, ts.reg, "eddy_predict_batch_duration_seconds")[""]; got != 1 {
		t.Errorf("eddy_predict_batch_duration_seconds counted %v calls, want 1", got)
	}
}

// TestPredictBatchRefusesTooManyRowsBeforeDecodingThem: a call over the row
// limit is refused whole, naming the limit, even with a malformed row in it,
// and counted as refused; the library method refuses it too.
func TestPredictBatchRefusesTooManyRowsBeforeDecodingThem(t *testing.T) {
	ts := startServer(t, serving.Config{MaxBatchRows: 10}, "fraud")
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 1, Binary: true})
	var batch []byte
	row := wireRequest(nil).model("fraud").number("x", 1)
	for range 11 {
		batch = protowire.AppendBytes(protowire.AppendTag(batch, 1, protowire.BytesType), row)
	}
	batch = protowire.AppendBytes(protowire.AppendTag(batch, 1, protowire.BytesType), []byte{0x1a, 0x7f}) // a row cut short
	err := ts.conn.Invoke(rpcContext(t), eddyv1.Inference_PredictBatch_FullMethodName, rawBytes(batch), new(eddyv1.PredictBatchResponse), forceRaw)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "12 rows exceed the limit of 10") {
		t.Fatalf("PredictBatch of 12 rows = %v, want InvalidArgument naming 12 rows and the limit of 10", err)
	}
	if got := gather(t, ts.reg, "eddy_predict_batch_refused_total")[""]; got != 1 {
		t.Errorf("eddy_predict_batch_refused_total = %v, want 1", got)
	}
	req := &eddyv1.PredictBatchRequest{}
	for range 11 {
		req.Requests = append(req.Requests, &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"x": structpb.NewNumberValue(1)}})
	}
	if _, err := ts.srv.PredictBatch(rpcContext(t), req); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Server.PredictBatch of 11 rows = %v, want InvalidArgument", err)
	}
	req.Requests = req.Requests[:10]
	resp, err := ts.srv.PredictBatch(rpcContext(t), req)
	if err != nil || len(resp.GetResults()) != 10 || resp.GetResults()[9].GetResponse().GetModelVersion() != 1 {
		t.Errorf("Server.PredictBatch of 10 rows = %v, %v; want 10 answers from v1", resp, err)
	}
}
