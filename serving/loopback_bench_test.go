package serving_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
)

// BenchmarkLoopback measures whole RPCs over gRPC on loopback, client and
// server in this process sharing the cores, with 16 requests in flight per
// core on one connection: gRPC's Health/Check on the server (the floor any
// handler pays here), Predict of 8 numeric features, and PredictBatch of
// 100 such rows. The client sends requests it encoded once (protobuf-go
// spends more encoding a feature map than eddy does answering it, and that
// cost is the client's) and decodes every response. ns/op is per call;
// rows/s counts Predict rows; allocs/op and B/op are the whole process's
// (client and server) per call, so Predict's minus Health's is what eddy's
// handler adds. Health@5000/s and Predict@5000/s send b.N calls at 5,000
// per second and report their latencies' median and 99th percentile (run
// them with -benchtime 20000x: the percentiles of b.N=1 mean nothing). It
// runs with gRPC's stream workers (the default) and with a goroutine per
// RPC (StreamWorkers -1), so one run compares them.
//
//	go test ./serving -run '^$' -bench Loopback -benchmem -benchtime 20000x -count 3
func BenchmarkLoopback(b *testing.B) {
	for _, workers := range []struct {
		name string
		n    int
	}{{"workers", 0}, {"goroutine-per-rpc", -1}} {
		b.Run(workers.name, func(b *testing.B) {
			conn := serveFraud(b, serving.Config{StreamWorkers: workers.n})
			row := &eddyv1.PredictRequest{Model: "fraud", Features: numbers(0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8)}
			batch := &eddyv1.PredictBatchRequest{}
			for range 100 {
				batch.Requests = append(batch.Requests, row)
			}

			rowBytes, err := proto.Marshal(row)
			if err != nil {
				b.Fatal(err)
			}
			batchBytes, err := proto.Marshal(batch)
			if err != nil {
				b.Fatal(err)
			}
			raw := forceRaw
			parallel(b, "Health", 1, func(ctx context.Context) error {
				return conn.Invoke(ctx, healthpb.Health_Check_FullMethodName, rawBytes(nil), new(healthpb.HealthCheckResponse), raw)
			})
			parallel(b, "Predict", 1, func(ctx context.Context) error {
				return conn.Invoke(ctx, eddyv1.Inference_Predict_FullMethodName, rawBytes(rowBytes), new(eddyv1.PredictResponse), raw)
			})
			paced(b, "Health@5000/s", 5000, func(ctx context.Context) error {
				return conn.Invoke(ctx, healthpb.Health_Check_FullMethodName, rawBytes(nil), new(healthpb.HealthCheckResponse), raw)
			})
			paced(b, "Predict@5000/s", 5000, func(ctx context.Context) error {
				return conn.Invoke(ctx, eddyv1.Inference_Predict_FullMethodName, rawBytes(rowBytes), new(eddyv1.PredictResponse), raw)
			})
			parallel(b, "PredictBatch100", len(batch.Requests), func(ctx context.Context) error {
				resp := new(eddyv1.PredictBatchResponse)
				if err := conn.Invoke(ctx, eddyv1.Inference_PredictBatch_FullMethodName, rawBytes(batchBytes), resp, raw); err != nil {
					return err
				}
				if len(resp.GetResults()) != len(batch.Requests) || resp.GetResults()[0].GetResponse() == nil {
					return fmt.Errorf("PredictBatch answered %d results, want %d answers", len(resp.GetResults()), len(batch.Requests))
				}
				return nil
			})
		})
	}
}

// paced sends b.N calls on a fixed schedule of rate per second from 16
// goroutines (a late call is sent at once) as sub-benchmark name, and
// reports the latencies' median and 99th percentile; ns/op is the
// schedule's, 1s/rate.
func paced(b *testing.B, name string, rate int, call func(context.Context) error) {
	b.Run(name, func(b *testing.B) {
		const workers = 16
		latencies := make([]time.Duration, b.N)
		var next atomic.Int64
		ctx := context.Background()
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := next.Add(1) - 1; i < int64(b.N); i = next.Add(1) - 1 {
					time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
					sent := time.Now()
					if err := call(ctx); err != nil {
						b.Error(err)
						return
					}
					latencies[i] = time.Since(sent)
				}
			})
		}
		wg.Wait()
		slices.Sort(latencies)
		b.ReportMetric(float64(latencies[len(latencies)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(latencies[len(latencies)*99/100].Microseconds()), "p99-µs")
	})
}

// parallel runs call from 16 goroutines per core as sub-benchmark name,
// reporting rows/s for calls of rows rows.
func parallel(b *testing.B, name string, rows int, call func(context.Context) error) {
	b.Run(name, func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(16)
		ctx := context.Background()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := call(ctx); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N*rows)/b.Elapsed().Seconds(), "rows/s")
	})
}
