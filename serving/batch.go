package serving

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// PredictBatch implements eddyv1.InferenceServer: every row is answered as
// Predict answers it, and a row Predict refuses is refused alone, in its
// result. More than MaxBatchRows rows are refused as a whole. (Over gRPC,
// handlePredictBatch decodes the request's bytes itself and answers them
// as PredictBatch does.)
func (s *Server) PredictBatch(ctx context.Context, req *eddyv1.PredictBatchRequest) (*eddyv1.PredictBatchResponse, error) {
	rows := req.GetRequests()
	if len(rows) > s.cfg.MaxBatchRows {
		return nil, tooManyRows(len(rows), s.cfg.MaxBatchRows)
	}
	b := newBatchAnswer(len(rows))
	c := s.calls.Get().(*predictCall)
	defer s.release(c)
	for i, row := range rows {
		if err := ctx.Err(); err != nil {
			return nil, status.FromContextError(err).Err()
		}
		c.reset()
		b.answerRow(s, i, c, s.fillCall(c, row))
	}
	return b.resp, nil
}

// answerRow answers row i from c unless filling c failed with err, and
// settles it.
func (b *batchAnswer) answerRow(s *Server, i int, c *predictCall, err error) {
	if err == nil {
		err = s.answer(c, &b.responses[i], &b.scores[i], &b.labels[i])
	}
	if err == nil {
		b.results[i].Response = &b.responses[i]
	}
	b.settle(s, i, c.model, err)
}

// batchAnswer is the response of a PredictBatch call, allocated at once for
// every row: results, responses and their scores and labels.
type batchAnswer struct {
	resp      *eddyv1.PredictBatchResponse
	results   []eddyv1.PredictResult
	responses []eddyv1.PredictResponse
	scores    []float64
	labels    []int32
}

func newBatchAnswer(rows int) *batchAnswer {
	b := &batchAnswer{
		resp:      &eddyv1.PredictBatchResponse{Results: make([]*eddyv1.PredictResult, rows)},
		results:   make([]eddyv1.PredictResult, rows),
		responses: make([]eddyv1.PredictResponse, rows),
		scores:    make([]float64, rows),
		labels:    make([]int32, rows),
	}
	for i := range b.results {
		b.resp.Results[i] = &b.results[i]
	}
	return b
}

// settle records row i's outcome: counted in eddy_predict_requests_total,
// and its error, if any, in its result.
func (b *batchAnswer) settle(s *Server, i int, model string, err error) {
	code := status.Code(err)
	s.metrics.requests.WithLabelValues(s.modelLabel(model), code.String()).Inc()
	if err != nil {
		b.results[i] = eddyv1.PredictResult{ErrorCode: int32(code), Error: status.Convert(err).Message()}
	}
}

// handlePredictBatch is the gRPC method handler of PredictBatch: it counts
// the rows, refusing too many before it decodes any, then decodes each row
// as handlePredict does (decodeCall) and answers it, through the unary
// interceptors. A row's decoding error is that row's result.
func (s *Server) handlePredictBatch(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	var raw rawRequest
	if err := dec(&raw); err != nil {
		return nil, err
	}
	defer raw.buf.Free()
	data := raw.buf.ReadOnlyData()
	rows, invalid := s.countRows(data)
	handler := func(ctx context.Context, _ any) (any, error) {
		if invalid != nil {
			return nil, invalid
		}
		return s.answerBatch(ctx, data, rows)
	}
	req := &eddyv1.PredictBatchRequest{} // what the interceptors see: the rows stay encoded
	if interceptor == nil {
		return handler(ctx, req)
	}
	return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: eddyv1.Inference_PredictBatch_FullMethodName}, handler)
}

// Field number of PredictBatchRequest's rows.
const batchRequests protowire.Number = 1

// countRows counts the rows of an encoded PredictBatchRequest, refusing
// malformed wire data outside the rows and more rows than MaxBatchRows.
func (s *Server) countRows(data []byte) (int, error) {
	rows := 0
	for len(data) > 0 {
		num, typ, n := consumeTag(data)
		if n < 0 {
			return 0, malformed(n)
		}
		data = data[n:]
		if n = protowire.ConsumeFieldValue(num, typ, data); n < 0 {
			return 0, malformed(n)
		}
		data = data[n:]
		if num == batchRequests && typ == protowire.BytesType {
			rows++
		}
	}
	if rows > s.cfg.MaxBatchRows {
		return 0, tooManyRows(rows, s.cfg.MaxBatchRows)
	}
	return rows, nil
}

// answerBatch decodes and answers the rows of data, which countRows
// accepted, one after the other through one predictCall.
func (s *Server) answerBatch(ctx context.Context, data []byte, rows int) (*eddyv1.PredictBatchResponse, error) {
	b := newBatchAnswer(rows)
	c := s.calls.Get().(*predictCall)
	defer s.release(c)
	for i := 0; len(data) > 0; {
		num, typ, n := consumeTag(data)
		data = data[n:]
		if num != batchRequests || typ != protowire.BytesType {
			data = data[protowire.ConsumeFieldValue(num, typ, data):]
			continue
		}
		row, n := protowire.ConsumeBytes(data)
		data = data[n:]
		if err := ctx.Err(); err != nil {
			return nil, status.FromContextError(err).Err()
		}
		c.reset()
		b.answerRow(s, i, c, s.decodeCall(row, c))
		i++
	}
	return b.resp, nil
}

func tooManyRows(n, limit int) error {
	return status.Errorf(codes.InvalidArgument, "%d rows exceed the limit of %d per PredictBatch call; split them into several calls", n, limit)
}
