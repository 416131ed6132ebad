package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"

	"github.com/eddyhq/eddy/stream"
	"github.com/eddyhq/eddy/stream/devbroker"
)

const benchUsage = `bench [flags]

Measures, in one run on one embedded broker (kfake, over TCP on 127.0.0.1):

  1. produce:  kafka-go writer, --events SEA events to a 1-partition topic
  2. raw:      a plain kafka-go Reader reading them all back (no decoding)
  3. eddy:     "eddy serve" (consumer group, decode, predict+learn, Pebble
               checkpoints every --checkpoint-every events) from the first
               event produced to the last one learned, producing concurrently,
               twice each, paired A B A B: with the model's state exported to
               the state topic every second (A) and, as if off, every hour (B:
               only the handover at the end)

and prints events/s for each and the ratio A/B. With --predict-rate N it
then measures learning while serving, paired A B A B: eddy serve as in 3
(state export off) with N Predict RPCs per second sent to it over gRPC on
loopback from this process (A) and without them (B), each after a warm-up
that has a snapshot served, and prints both ingest rates, their ratio and
the Predict rate achieved. Use it to fill BENCHMARKS.md.
`

func runBench(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "bench", benchUsage)
	events := fs.Int("events", 200000, "events per measurement")
	checkpointEvery := fs.Int("checkpoint-every", stream.DefaultCheckpointEvery, "eddy checkpoints after this many events")
	predictRate := fs.Int("predict-rate", 0, "also measure ingest while serving this many Predict RPCs per second (0: skip)")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	dir, err := os.MkdirTemp("", "eddy-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	broker, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		return err
	}
	defer broker.Close()
	brokers := []string{broker.Addr()}
	if err := stream.EnsureTopics(ctx, brokers, []stream.TopicSpec{{Name: "raw", Partitions: 1}}); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "eddy bench: %d SEA events, embedded broker %s, GOMAXPROCS=%d\n", *events, broker.Addr(), runtimeProcs())

	start := time.Now()
	if err := produceN(ctx, brokers, "raw", *events); err != nil {
		return err
	}
	report(env.stdout, "produce (kafka-go writer, acks=all)", *events, time.Since(start))

	start = time.Now()
	if err := readN(ctx, brokers, "raw", *events); err != nil {
		return err
	}
	report(env.stdout, "raw kafka-go Reader, 1 partition", *events, time.Since(start))

	rates := map[time.Duration][]float64{}
	for round := range 2 {
		for _, interval := range []time.Duration{time.Second, time.Hour} {
			group := fmt.Sprintf("bench-%d-%s", round, interval)
			rate, _, err := measureEddy(ctx, broker.Addr(), filepath.Join(dir, group), group, interval, *checkpointEvery, *events, 0)
			if err != nil {
				return err
			}
			rates[interval] = append(rates[interval], rate)
			fmt.Fprintf(env.stdout, "  %-46s %9.0f events/s\n", fmt.Sprintf("eddy serve, state exported every %s", interval), rate)
		}
	}
	a, b := mean(rates[time.Second]), mean(rates[time.Hour])
	fmt.Fprintf(env.stdout, "  state export every 1s vs off: %.0f vs %.0f events/s, ratio %.3f\n", a, b, a/b)
	if *predictRate > 0 {
		return benchServing(ctx, env, broker.Addr(), dir, *checkpointEvery, *events, *predictRate)
	}
	return nil
}

// benchServing measures ingest with and without predictRate Predict/s,
// paired A B A B.
func benchServing(ctx context.Context, env *environment, broker, dir string, checkpointEvery, events, predictRate int) error {
	var with, without, achieved []float64
	for round := range 2 {
		for _, rate := range []int{predictRate, 0} {
			group := fmt.Sprintf("bench-serving-%d-%d", round, rate)
			ingest, load, err := measureEddy(ctx, broker, filepath.Join(dir, group), group, time.Hour, checkpointEvery, events, rate)
			if err != nil {
				return err
			}
			what := "eddy serve, no Predict load"
			if rate > 0 {
				with, achieved = append(with, ingest), append(achieved, load.rate())
				what = fmt.Sprintf("eddy serve, %d Predict/s offered", rate)
				fmt.Fprintf(env.stdout, "  %-46s %9.0f events/s  (Predict: %.0f/s answered, %d refused, p99 %s)\n", what, ingest, load.rate(), load.failed, load.p99())
				continue
			}
			without = append(without, ingest)
			fmt.Fprintf(env.stdout, "  %-46s %9.0f events/s\n", what, ingest)
		}
	}
	a, b := mean(with), mean(without)
	fmt.Fprintf(env.stdout, "  learning while serving %.0f Predict/s vs none: %.0f vs %.0f events/s, ratio %.3f\n", mean(achieved), a, b, a/b)
	return nil
}

func mean(xs []float64) float64 {
	var sum float64
	for _, x := range xs {
		sum += x
	}
	return sum / float64(len(xs))
}

// measureEddy runs eddy serve in group on its own topic and returns the
// events/s from the first event produced to the last one learned. With
// predictRate > 0 it first learns a warm-up until a snapshot is served,
// then sends predictRate Predict/s while it measures, and reports them.
func measureEddy(ctx context.Context, broker, dir, group string, stateInterval time.Duration, checkpointEvery, events, predictRate int) (float64, *loadResult, error) {
	topic := group + "-events"
	o := serveOptions{
		brokers: broker, group: group, dataDir: dir, grpcAddr: "127.0.0.1:0", partitions: 1,
		checkpointEvery: checkpointEvery, checkpointInterval: time.Second, promoteInterval: 5 * time.Second,
		sessionTimeout: 6 * time.Second, stateInterval: stateInterval, start: "earliest", role: "learn", logLevel: "warn", logFormat: "text",
		createTopics: "true", // the embedded broker is reached by its address, as a cluster is
	}
	o.model.Name, o.model.Topic = "sea", topic
	reg := prometheus.NewRegistry()
	svc, err := startService(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		return 0, nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(sctx) }()
	stopped := false
	defer func() {
		if !stopped {
			stop()
			<-done
		}
	}()
	// until waits for cond, failing if the service stops first.
	until := func(cond func() bool) error {
		for !cond() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case err := <-done:
				stopped = true
				return fmt.Errorf("bench: eddy serve stopped: %v", err)
			case <-time.After(time.Millisecond):
			}
		}
		return nil
	}
	// Wait until the group has its partition, so joining is not measured.
	if err := until(func() bool { return svc.Stats().Consumer.Assigned >= 1 }); err != nil {
		return 0, nil, err
	}
	var warmup int
	var load *predictLoad
	if predictRate > 0 {
		warmup = 2000
		if err := produceN(ctx, []string{broker}, topic, warmup); err != nil {
			return 0, nil, err
		}
		if err := until(func() bool { m, _ := svc.Stats().Model("sea"); return m.ServedVersion > 0 }); err != nil {
			return 0, nil, err
		}
		if load, err = startPredictLoad(ctx, svc.GRPCAddr(), predictRate); err != nil {
			return 0, nil, err
		}
	}
	start := time.Now()
	perr := make(chan error, 1)
	go func() { perr <- produceN(ctx, []string{broker}, topic, events) }()
	err = until(func() bool { return svc.Stats().Consumer.Consumed >= uint64(warmup+events) })
	elapsed := time.Since(start)
	var result *loadResult
	if load != nil {
		result = load.stop()
	}
	if perr := <-perr; err == nil {
		err = perr
	}
	if err != nil {
		return 0, nil, err
	}
	return float64(events) / elapsed.Seconds(), result, nil
}

// predictLoad sends Predict RPCs for model sea at a fixed rate from
// loadWorkers goroutines, each keeping to its share of the schedule (a late
// request is sent at once, so the rate offered holds while the server
// keeps up).
type predictLoad struct {
	cancel context.CancelFunc
	done   sync.WaitGroup
	conn   *grpc.ClientConn
	start  time.Time
	mu     sync.Mutex
	result loadResult
}

// loadResult is what a predictLoad sent: answers, refusals, latencies.
type loadResult struct {
	answered, failed uint64
	elapsed          time.Duration
	latencies        []time.Duration
}

func (r *loadResult) rate() float64 { return float64(r.answered) / r.elapsed.Seconds() }

func (r *loadResult) p99() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	return r.latencies[len(r.latencies)*99/100].Round(time.Microsecond)
}

const loadWorkers = 8

func startPredictLoad(ctx context.Context, addr string, rate int) (*predictLoad, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	l := &predictLoad{cancel: cancel, conn: conn, start: time.Now()}
	client := eddyv1.NewInferenceClient(conn)
	interval := time.Duration(float64(time.Second) * loadWorkers / float64(rate))
	for w := range loadWorkers {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			req := &eddyv1.PredictRequest{Model: "sea", Features: map[string]*structpb.Value{
				"f1": structpb.NewNumberValue(float64(w)), "f2": structpb.NewNumberValue(3), "f3": structpb.NewNumberValue(5)}}
			next := l.start.Add(time.Duration(w) * interval / loadWorkers)
			var answered, failed uint64
			var latencies []time.Duration
			defer func() {
				l.mu.Lock()
				l.result.answered += answered
				l.result.failed += failed
				l.result.latencies = append(l.result.latencies, latencies...)
				l.mu.Unlock()
			}()
			for {
				if wait := time.Until(next); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
				next = next.Add(interval)
				sent := time.Now()
				_, err := client.Predict(ctx, req)
				switch {
				case ctx.Err() != nil:
					return
				case err != nil:
					failed++
				default:
					answered++
					latencies = append(latencies, time.Since(sent))
				}
			}
		}()
	}
	return l, nil
}

// stop ends the load and returns what it sent.
func (l *predictLoad) stop() *loadResult {
	elapsed := time.Since(l.start)
	l.cancel()
	l.done.Wait()
	l.conn.Close()
	l.result.elapsed = elapsed
	return &l.result
}

func report(w io.Writer, what string, n int, d time.Duration) {
	fmt.Fprintf(w, "  %-46s %9.0f events/s  (%d in %.2fs)\n", what, float64(n)/d.Seconds(), n, d.Seconds())
}

func produceN(ctx context.Context, brokers []string, topic string, n int) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	gen := newSEA(1, 25000, 0.1)
	batch := make([]kafka.Message, 0, 1000)
	for sent := 0; sent < n; sent += len(batch) {
		batch = batch[:0]
		for len(batch) < cap(batch) && sent+len(batch) < n {
			batch = append(batch, kafka.Message{Value: gen.next(nil, "b-")})
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("bench produce: %w", err)
		}
	}
	return nil
}

func readN(ctx context.Context, brokers []string, topic string, n int) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: 0, MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for range n {
		if _, err := r.ReadMessage(ctx); err != nil {
			return fmt.Errorf("bench read: %w", err)
		}
	}
	return nil
}
