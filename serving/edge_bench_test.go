package serving_test

import (
	"context"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddyhq/eddy/serving"
)

// BenchmarkPredictOfOversizedRequests sends batches of 100 concurrent
// Predict requests just under the 1 MiB limit, each with ~47,000 features
// (over the limit of 1024), over gRPC on loopback, as the attack in issue 9
// did. Every one must be refused with InvalidArgument; what matters is the
// memory that costs the server: B/op (allocated per batch of 100, client
// side included, though the client only copies prepared bytes), the peak
// Go heap while the batches ran, and the peak RSS of the process.
func BenchmarkPredictOfOversizedRequests(b *testing.B) {
	const concurrent = 100
	conn := serveFraud(b, serving.Config{})

	req := wireRequest(nil).model("fraud")
	for i := 0; len(req) < serving.DefaultMaxRequestBytes-64; i++ {
		req = req.number("f"+strconv.Itoa(1000000+i), float64(i))
	}
	features := strings.Count(string(req), "\x12\x09\x11") // each number entry's value header
	b.Logf("request: %d bytes, %d features", len(req), features)

	runtime.GC()
	var peakHeap atomic.Uint64
	stopSampling := sampleHeap(&peakHeap)
	b.ReportAllocs()
	for b.Loop() {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				_, err := predictRaw(context.Background(), conn, rawBytes(req))
				if status.Code(err) != codes.InvalidArgument {
					b.Errorf("oversized request: %v, want InvalidArgument", err)
				}
			})
		}
		wg.Wait()
	}
	stopSampling()
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak-heap-MiB")
	b.ReportMetric(peakRSS()/(1<<20), "peak-RSS-MiB")
}

// serveFraud serves model fraud (a binary linearSnapshot, v1) with cfg on
// loopback until tb ends, and returns a connection to it.
func serveFraud(tb testing.TB, cfg serving.Config) *grpc.ClientConn {
	tb.Helper()
	srv := newServer(tb, cfg, prometheus.NewRegistry(), "fraud")
	if err := srv.Publish(&linearSnapshot{Name: "fraud", Ver: 1, Binary: true}); err != nil {
		tb.Fatal(err)
	}
	lis := listenLoopback(tb)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	tb.Cleanup(func() { cancel(); <-served })
	return dial(tb, lis.Addr().String())
}

// sampleHeap records the largest live heap seen every millisecond until
// the returned function is called.
func sampleHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

// peakRSS returns the process's peak resident set size (VmHWM) in bytes,
// or 0 where /proc is not available.
func peakRSS() float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024
		}
	}
	return 0
}
