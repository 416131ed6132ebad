package main

import (
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/stream"
	"github.com/eddyhq/eddy/stream/devbroker"
)

// These tests run the real service: kfake broker over TCP, kafka-go consumer
// group, Pebble in a temporary directory, gRPC on loopback.

func startBroker(t *testing.T) string {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

func testOptions(broker, dataDir string, model learner.ModelConfig) serveOptions {
	return serveOptions{
		brokers: broker, group: "test", dataDir: dataDir, grpcAddr: "127.0.0.1:0", metricsAddr: "127.0.0.1:0",
		partitions: 1, checkpointEvery: 200, checkpointInterval: 50 * time.Millisecond,
		promoteInterval: 100 * time.Millisecond, sessionTimeout: 6 * time.Second,
		logLevel: "info", logFormat: "text", model: model,
	}
}

// running is a service started by a test.
type running struct {
	*service
	stop func() error // graceful stop; returns Run's error
}

func startTestService(t *testing.T, o serveOptions) *running {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := startService(ctx, o, log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stopped := false
	var runErr error
	r := &running{service: svc}
	r.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("service did not stop within 30s")
			}
		}
		return runErr
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func (r *running) gauge(name string, labels map[string]string) float64 {
	return metricValue(r.registry, name, labels)
}

func (r *running) learned(model string) float64 {
	return r.gauge("eddy_model_examples", map[string]string{"model": model})
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// datasetPath returns the path of a data set shipped with the repository:
// "drift/NAME" is one of drift/testdata's streams, any other name one of
// learner/testdata's gzipped CSV files, decompressed into a temporary
// directory (produce and evaluate read plain files). See the README of
// each testdata folder.
func datasetPath(t testing.TB, name string) string {
	t.Helper()
	if stream, ok := strings.CutPrefix(name, "drift/"); ok {
		p := filepath.Join("..", "..", "drift", "testdata", stream)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("drift stream %s: %v (it ships in drift/testdata)", stream, err)
		}
		return p
	}
	src := filepath.Join("..", "..", "learner", "testdata", name+".gz")
	f, err := os.Open(src)
	if err != nil {
		t.Fatalf("data set %s: %v (it ships in learner/testdata)", name, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	p := filepath.Join(t.TempDir(), name)
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, zr); err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func predictClient(t *testing.T, addr string) eddyv1.InferenceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eddyv1.NewInferenceClient(conn)
}

func TestServiceReproducesRiverOnPhishingThroughKafka(t *testing.T) {
	broker := startBroker(t)
	model := learner.ModelConfig{Name: "phishing", Task: learner.Binary, Optimizer: learner.OptimizerConfig{LR: 0.1, InterceptLR: 0.01}}
	svc := startTestService(t, testOptions(broker, t.TempDir(), model))
	n, err := produceFile(context.Background(), produceOptions{
		file: datasetPath(t, "phishing.csv"), target: "is_phishing", topic: "events", brokers: broker,
	}, io.Discard)
	if err != nil || n != 1250 {
		t.Fatalf("produced %d events, err %v; want 1250", n, err)
	}
	waitFor(t, 60*time.Second, "1250 examples learned", func() bool { return svc.learned("phishing") == 1250 })

	acc := svc.gauge("eddy_prequential_accuracy", map[string]string{"model": "phishing", "window": "cumulative"})
	if math.Abs(acc-0.8896) > 0.001 {
		t.Fatalf("prequential accuracy from /metrics = %.4f, River's published figure is 0.8896 (±0.001)", acc)
	}
	t.Logf("prequential accuracy on phishing.csv through Kafka: %.4f (River: 0.8896)", acc)

	waitFor(t, 10*time.Second, "a snapshot with all 1250 examples", func() bool {
		snap := svc.server.Current("phishing")
		return snap != nil && snap.(*learner.Snapshot).Learned() == 1250
	})
	client := predictClient(t, svc.grpcAddr())
	resp, err := client.Predict(context.Background(), &eddyv1.PredictRequest{
		Model: "phishing",
		Features: map[string]*structpb.Value{
			"empty_server_form_handler": structpb.NewNumberValue(1), "popup_window": structpb.NewNumberValue(0.5),
			"https": structpb.NewNumberValue(0), "request_from_other_domain": structpb.NewNumberValue(1),
			"anchor_from_other_domain": structpb.NewNumberValue(1), "is_popular": structpb.NewNumberValue(0),
			"long_url": structpb.NewNumberValue(1), "age_of_domain": structpb.NewNumberValue(0), "ip_in_url": structpb.NewNumberValue(1),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	current := svc.server.Current("phishing").Version()
	if resp.Probability == nil || resp.GetProbability() <= 0 || resp.GetProbability() >= 1 {
		t.Fatalf("probability = %v, want one in (0, 1)", resp.Probability)
	}
	if resp.GetModelVersion() != current || current == 0 {
		t.Fatalf("response names version %d, the served snapshot is %d", resp.GetModelVersion(), current)
	}
}

// produceSEAEvents writes n SEA events (ids sea-0..sea-n-1) to topic.
func produceSEAEvents(t *testing.T, broker, topic string, n int) {
	t.Helper()
	if err := stream.EnsureTopics(context.Background(), []string{broker}, []stream.TopicSpec{{Name: topic, Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := produceN(context.Background(), []string{broker}, topic, n); err != nil {
		t.Fatal(err)
	}
}

func TestRestartMidStreamLearnsEveryExampleExactlyOnce(t *testing.T) {
	const n = 30000
	broker := startBroker(t)
	produceSEAEvents(t, broker, "events", n)
	model := learner.ModelConfig{Name: "sea"}
	dir := t.TempDir()

	first := startTestService(t, testOptions(broker, dir, model))
	waitFor(t, 60*time.Second, "some examples learned", func() bool { return first.learned("sea") >= 3000 })
	if err := first.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	stoppedAt := first.engine.Models()[0].Learned()
	if stoppedAt == 0 || stoppedAt >= n {
		t.Fatalf("stopped after %d examples; the test needs a stop mid-stream", stoppedAt)
	}

	t.Logf("stopped gracefully after %d of %d examples", stoppedAt, n)
	second := startTestService(t, testOptions(broker, dir, model))
	waitFor(t, 60*time.Second, "the stream drained", func() bool { return second.consumer.Stats().Consumed >= uint64(n)-stoppedAt })
	if err := second.stop(); err != nil {
		t.Fatal(err)
	}
	restarted := second.engine.Models()[0]
	if restarted.Learned() != n {
		t.Fatalf("examples learned = %d after a restart at %d, want exactly %d", restarted.Learned(), stoppedAt, n)
	}
	if consumed := second.consumer.Stats().Consumed; consumed != uint64(n)-stoppedAt {
		t.Fatalf("second run consumed %d events, want %d (resume exactly at the stored offset)", consumed, uint64(n)-stoppedAt)
	}

	// One partition is processed in order, so an uninterrupted run must end
	// with bitwise the same weights.
	o := testOptions(broker, t.TempDir(), model)
	o.group = "uninterrupted"
	straight := startTestService(t, o)
	waitFor(t, 60*time.Second, "the uninterrupted run drained", func() bool { return straight.learned("sea") == n })
	if err := straight.stop(); err != nil {
		t.Fatal(err)
	}
	wantW, wantB := straight.engine.Models()[0].Weights()
	gotW, gotB := restarted.Weights()
	if gotB != wantB || len(gotW) != len(wantW) {
		t.Fatalf("intercept %v vs %v, %d vs %d weights", gotB, wantB, len(gotW), len(wantW))
	}
	for i := range wantW {
		if math.Float64bits(gotW[i]) != math.Float64bits(wantW[i]) {
			t.Fatalf("weight %d = %v after restart, %v uninterrupted", i, gotW[i], wantW[i])
		}
	}
}

func TestBadEventsAreDeadLetteredWithReasonAndValidOnesLearned(t *testing.T) {
	broker := startBroker(t)
	svc := startTestService(t, testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "m"}))
	events := []struct {
		value  string
		reason string // "" = valid
	}{
		{`{"id":"ok-1","features":{"a":1,"b":"x","c":true},"label":1}`, ""},
		{`{"id":"bad-json","features":{"a":1}`, "invalid_json"},
		{`not json at all`, "invalid_json"},
		{`{"id":"nan","features":{"a":NaN},"label":1}`, "non_finite"},
		{`{"id":"inf","features":{"a":Infinity},"label":0}`, "non_finite"},
		{`{"id":"overflow","features":{"a":1e999},"label":0}`, "non_finite"},
		{`{"id":"ok-2","features":{"a":2,"b":"y","c":false},"label":0}`, ""},
		{`{"features":{"a":1},"label":1}`, "missing_field"},
		{`{"id":"no-features","label":1}`, "missing_field"},
		{`{"id":"array","features":{"a":[1,2]},"label":1}`, "wrong_type"},
		{`{"id":"null","features":{"a":null},"label":1}`, "wrong_type"},
		{`{"id":"string-label","features":{"a":1},"label":"yes"}`, "wrong_type"},
		{`{"id":"dup","features":{"a":1,"a":2},"label":1}`, "duplicate_field"},
		{`{"id":"label-2","features":{"a":1},"label":2}`, learner.ReasonInvalidLabel},
		{`{"id":"ok-3","features":{"a":3},"label":true,"ts":"2026-11-20T10:00:00Z"}`, ""},
		{`{"id":"ok-4","features":{"a":-1},"ts":1763632800000}`, ""}, // unlabeled: scored only
	}
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "events", RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	defer w.Close()
	var msgs []kafka.Message
	wantDead := map[int64]string{}
	for i, e := range events {
		msgs = append(msgs, kafka.Message{Value: []byte(e.value)})
		if e.reason != "" {
			wantDead[int64(i)] = e.reason
		}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "all events consumed and checkpointed", func() bool {
		return svc.consumer.Stats().Consumed == uint64(len(events)) && svc.learned("m") == 3
	})

	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: "events.dlq", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := map[int64]string{}
	for len(got) < len(wantDead) {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading the dead-letter topic after %d of %d: %v", len(got), len(wantDead), err)
		}
		h := headers(m)
		off, _ := strconv.ParseInt(h["eddy-source-offset"], 10, 64)
		if h["eddy-detail"] == "" || h["eddy-source-topic"] != "events" {
			t.Errorf("dead letter at offset %d lacks detail or source: %v", off, h)
		}
		if string(m.Value) != events[off].value {
			t.Errorf("dead letter at offset %d carries %q, want the original event", off, m.Value)
		}
		got[off] = h["eddy-reason"]
	}
	for off, reason := range wantDead {
		if got[off] != reason {
			t.Errorf("event %d %s: dead-lettered with reason %q, want %q", off, events[off].value, got[off], reason)
		}
	}
	for _, reason := range []string{"invalid_json", "non_finite", "missing_field", "wrong_type"} {
		if v := metricValue(svc.registry, "eddy_events_dead_lettered_total", map[string]string{"topic": "events", "reason": reason}); v < 1 {
			t.Errorf("eddy_events_dead_lettered_total{reason=%q} = %v", reason, v)
		}
	}

	client := predictClient(t, svc.grpcAddr())
	waitFor(t, 10*time.Second, "a promoted snapshot", func() bool { return svc.server.Current("m") != nil })
	if _, err := client.Predict(context.Background(), &eddyv1.PredictRequest{Model: "m", Features: map[string]*structpb.Value{"a": structpb.NewNumberValue(1)}}); err != nil {
		t.Fatalf("service not answering after bad input: %v", err)
	}
	if err := svc.stop(); err != nil {
		t.Fatalf("service failed: %v", err)
	}
	weights, intercept := svc.engine.Models()[0].Weights()
	for i, x := range append(weights, intercept) {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			t.Fatalf("weight %d is %v", i, x)
		}
	}
}

func headers(m kafka.Message) map[string]string {
	out := map[string]string{}
	for _, h := range m.Headers {
		out[h.Key] = string(h.Value)
	}
	return out
}

func TestElec2WithTheShippedPipelineScoresAbove90PercentThroughKafka(t *testing.T) {
	broker := startBroker(t)
	o := testOptions(broker, t.TempDir(), learner.ModelConfig{})
	o.configFile = filepath.Join("..", "..", ".deploy", "examples", "elec2.yaml")
	svc := startTestService(t, o)
	n, err := produceFile(context.Background(), produceOptions{
		file: datasetPath(t, "elec2.csv"), target: "up", topic: "events", brokers: broker,
	}, io.Discard)
	if err != nil || n != 45312 {
		t.Fatalf("produced %d, %v", n, err)
	}
	waitFor(t, 120*time.Second, "45,312 examples learned", func() bool { return svc.learned("elec2") == 45312 })
	acc := svc.gauge("eddy_prequential_accuracy", map[string]string{"model": "elec2", "window": "cumulative"})
	t.Logf("elec2 through Kafka with windows, lags and target aggregates: prequential accuracy %.4f", acc)
	if acc < 0.90 {
		t.Fatalf("prequential accuracy %.4f, want at least 0.90", acc)
	}
}

// The per-entity history (windows, lags, targets) is checkpointed with the
// model: a restart mid-stream ends bitwise where an uninterrupted run ends.
func TestRestartMidStreamKeepsTheEntityHistoryExactly(t *testing.T) {
	broker := startBroker(t)
	config := filepath.Join("..", "..", ".deploy", "examples", "elec2.yaml")
	if _, err := produceFile(context.Background(), produceOptions{
		file: datasetPath(t, "elec2.csv"), target: "up", topic: "events", brokers: broker,
	}, io.Discard); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := testOptions(broker, dir, learner.ModelConfig{})
	o.configFile = config
	first := startTestService(t, o)
	waitFor(t, 60*time.Second, "some examples learned", func() bool { return first.learned("elec2") >= 5000 })
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := first.engine.Models()[0].Learned()
	second := startTestService(t, o)
	waitFor(t, 60*time.Second, "the stream drained", func() bool { return second.learned("elec2") == 45312 })
	if err := second.stop(); err != nil {
		t.Fatal(err)
	}

	straight := o
	straight.dataDir, straight.group = t.TempDir(), "straight"
	s := startTestService(t, straight)
	waitFor(t, 60*time.Second, "the uninterrupted run drained", func() bool { return s.learned("elec2") == 45312 })
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	gotW, gotB := second.engine.Models()[0].Weights()
	wantW, wantB := s.engine.Models()[0].Weights()
	if gotB != wantB || len(gotW) != len(wantW) {
		t.Fatalf("stopped at %d: intercept %v vs %v", stoppedAt, gotB, wantB)
	}
	for i := range wantW {
		if math.Float64bits(gotW[i]) != math.Float64bits(wantW[i]) {
			t.Fatalf("stopped at %d: weight %d = %v after a restart, %v uninterrupted", stoppedAt, i, gotW[i], wantW[i])
		}
	}
	t.Logf("stopped at %d of 45,312; the restarted run ends with the uninterrupted run's weights", stoppedAt)
}
