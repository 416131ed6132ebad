package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

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

and prints events/s for each and the ratio A/B. Use it to fill BENCHMARKS.md.
`

func runBench(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "bench", benchUsage)
	events := fs.Int("events", 200000, "events per measurement")
	checkpointEvery := fs.Int("checkpoint-every", stream.DefaultCheckpointEvery, "eddy checkpoints after this many events")
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
			rate, err := measureEddy(ctx, broker.Addr(), filepath.Join(dir, group), group, interval, *checkpointEvery, *events)
			if err != nil {
				return err
			}
			rates[interval] = append(rates[interval], rate)
			fmt.Fprintf(env.stdout, "  %-46s %9.0f events/s\n", fmt.Sprintf("eddy serve, state exported every %s", interval), rate)
		}
	}
	a, b := mean(rates[time.Second]), mean(rates[time.Hour])
	fmt.Fprintf(env.stdout, "  state export every 1s vs off: %.0f vs %.0f events/s, ratio %.3f\n", a, b, a/b)
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
// events/s from the first event produced to the last one learned.
func measureEddy(ctx context.Context, broker, dir, group string, stateInterval time.Duration, checkpointEvery, events int) (float64, error) {
	topic := group + "-events"
	o := serveOptions{
		brokers: broker, group: group, dataDir: dir, grpcAddr: "127.0.0.1:0", partitions: 1,
		checkpointEvery: checkpointEvery, checkpointInterval: time.Second, promoteInterval: 5 * time.Second,
		sessionTimeout: 6 * time.Second, stateInterval: stateInterval, start: "earliest", role: "learn", logLevel: "warn", logFormat: "text",
	}
	o.model.Name, o.model.Topic = "sea", topic
	reg := prometheus.NewRegistry()
	svc, err := startService(ctx, o, slog.New(slog.NewTextHandler(io.Discard, nil)), reg)
	if err != nil {
		return 0, err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- svc.Run(sctx) }()
	defer func() { stop(); <-done }()
	// Wait until the group has its partition, so joining is not measured.
	for svc.Stats().Consumer.Assigned < 1 {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	perr := make(chan error, 1)
	go func() { perr <- produceN(ctx, []string{broker}, topic, events) }()
	for svc.Stats().Consumer.Consumed < uint64(events) {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	if err := <-perr; err != nil {
		return 0, err
	}
	return float64(events) / elapsed.Seconds(), nil
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
