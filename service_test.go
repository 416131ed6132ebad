package eddy_test

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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/stream"
	"github.com/eddyhq/eddy/stream/devbroker"
)

// These tests run the real service: kfake broker over TCP, kafka-go consumer
// group, Pebble in a temporary directory, gRPC on loopback.

func startBroker(t testing.TB) string {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr()
}

// testConfig is the configuration of a test's service: one model on a
// 1-partition topic (created by eddy if missing), quick checkpoints and
// promotions, free ports.
func testConfig(broker, dataDir string, model learner.ModelConfig) eddy.Config {
	create := true
	return eddy.Config{
		Brokers: []string{broker}, Group: "test", DataDir: dataDir, GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Partitions: 1, CreateTopics: &create,
		Consumer: eddy.ConsumerConfig{CheckpointEvery: 200, CheckpointInterval: 50 * time.Millisecond, SessionTimeout: 6 * time.Second},
		Learner:  engine.Config{Models: []learner.ModelConfig{model}, PromoteInterval: 100 * time.Millisecond},
	}
}

// withConfigFile replaces cfg's models by those of a model configuration
// file, keeping cfg's promotion and retention settings where the file has
// none (as eddy serve --config does with its flags).
func withConfigFile(t *testing.T, cfg eddy.Config, path string) eddy.Config {
	t.Helper()
	fromFile, err := eddy.LoadConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fromFile.PromoteInterval == 0 {
		fromFile.PromoteInterval = cfg.Learner.PromoteInterval
	}
	if fromFile.Retain == 0 {
		fromFile.Retain = cfg.Learner.Retain
	}
	if fromFile.RetainFor == 0 {
		fromFile.RetainFor = cfg.Learner.RetainFor
	}
	cfg.Learner = fromFile
	return cfg
}

// running is a service started by a test, with the registry its metrics
// are in.
type running struct {
	*eddy.Service
	registry *prometheus.Registry
	stop     func() error  // graceful stop; returns Run's error
	exited   chan struct{} // closed when Run has returned, with runErr
	noWait   bool          // runTestService returns without waiting for Connected
	runErr   error
}

func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startTestService(t testing.TB, cfg eddy.Config) *running {
	t.Helper()
	return runTestService(t, newTestService(t, cfg))
}

// newTestService builds a service without running it.
func newTestService(t testing.TB, cfg eddy.Config) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	svc, err := eddy.New(context.Background(), cfg, testLogger().With("instance", filepath.Base(cfg.DataDir)), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &running{Service: svc, registry: reg}
}

// runTestService runs r until the test ends or r.stop is called.
func runTestService(t testing.TB, r *running) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r.exited = make(chan struct{})
	go func() { r.runErr = r.Run(ctx); close(r.exited) }()
	if !r.noWait {
		select {
		case <-r.Connected():
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Fatal("the service did not connect to Kafka within 30s")
		}
	}
	stopped := false
	r.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case <-r.exited:
			case <-time.After(30 * time.Second):
				t.Fatal("service did not stop within 30s")
			}
		}
		return r.runErr
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

func (r *running) gauge(name string, labels map[string]string) float64 {
	return metricValue(r.registry, name, labels)
}

// model returns the stats of one model.
func (r *running) model(name string) eddy.ModelStats {
	m, _ := r.Stats().Model(name)
	return m
}

// learned returns the examples a model has learned, as of its newest
// checkpoint.
func (r *running) learned(model string) uint64 { return r.model(model).Learned }

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
		p := filepath.Join("drift", "testdata", stream)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("drift stream %s: %v (it ships in drift/testdata)", stream, err)
		}
		return p
	}
	src := filepath.Join("learner", "testdata", name+".gz")
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

func predictClient(t testing.TB, addr string) eddyv1.InferenceClient {
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
	svc := startTestService(t, testConfig(broker, t.TempDir(), model))
	n, err := produceCSV(broker, "events", datasetPath(t, "phishing.csv"), "is_phishing")
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
		m := svc.model("phishing")
		return m.ServedVersion != 0 && m.ServedLearned == 1250
	})
	client := predictClient(t, svc.GRPCAddr())
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
	current := svc.model("phishing").ServedVersion
	if resp.Probability == nil || resp.GetProbability() <= 0 || resp.GetProbability() >= 1 {
		t.Fatalf("probability = %v, want one in (0, 1)", resp.Probability)
	}
	if resp.GetModelVersion() != current || current == 0 {
		t.Fatalf("response names version %d, the served snapshot is %d", resp.GetModelVersion(), current)
	}
}

// produceSEAEvents writes n SEA events (ids sea-0..sea-n-1) to topic.
func produceSEAEvents(t testing.TB, broker, topic string, n int) {
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

	first := startTestService(t, testConfig(broker, dir, model))
	waitFor(t, 60*time.Second, "some examples learned", func() bool { return first.learned("sea") >= 3000 })
	if err := first.stop(); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	stoppedAt := first.learned("sea")
	if stoppedAt == 0 || stoppedAt >= n {
		t.Fatalf("stopped after %d examples; the test needs a stop mid-stream", stoppedAt)
	}

	t.Logf("stopped gracefully after %d of %d examples", stoppedAt, n)
	restartCfg := testConfig(broker, dir, model)
	second := startTestService(t, restartCfg)
	waitFor(t, 60*time.Second, "the stream drained", func() bool { return second.Stats().Consumer.Consumed >= uint64(n)-stoppedAt })
	if err := second.stop(); err != nil {
		t.Fatal(err)
	}
	if learned := second.learned("sea"); learned != n {
		t.Fatalf("examples learned = %d after a restart at %d, want exactly %d", learned, stoppedAt, n)
	}
	if consumed := second.Stats().Consumer.Consumed; consumed != uint64(n)-stoppedAt {
		t.Fatalf("second run consumed %d events, want %d (resume exactly at the stored offset)", consumed, uint64(n)-stoppedAt)
	}

	// One partition is processed in order, so an uninterrupted run must end
	// with bitwise the same weights.
	cfg := testConfig(broker, t.TempDir(), model)
	cfg.Group = "uninterrupted"
	straight := startTestService(t, cfg)
	waitFor(t, 60*time.Second, "the uninterrupted run drained", func() bool { return straight.learned("sea") == n })
	if err := straight.stop(); err != nil {
		t.Fatal(err)
	}
	wantW, wantB := storedWeights(t, cfg)
	gotW, gotB := storedWeights(t, restartCfg)
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
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m"})
	svc := startTestService(t, cfg)
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
		return svc.Stats().Consumer.Consumed == uint64(len(events)) && svc.learned("m") == 3
	})

	got := map[int64]string{}
	for _, m := range readDeadLetters(t, broker, "events.dlq", len(wantDead)) {
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

	client := predictClient(t, svc.GRPCAddr())
	waitFor(t, 10*time.Second, "a promoted snapshot", func() bool { return svc.model("m").ServedVersion != 0 })
	if _, err := client.Predict(context.Background(), &eddyv1.PredictRequest{Model: "m", Features: map[string]*structpb.Value{"a": structpb.NewNumberValue(1)}}); err != nil {
		t.Fatalf("service not answering after bad input: %v", err)
	}
	if err := svc.stop(); err != nil {
		t.Fatalf("service failed: %v", err)
	}
	weights, intercept := storedWeights(t, cfg)
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
	cfg := withConfigFile(t, testConfig(broker, t.TempDir(), learner.ModelConfig{}), filepath.Join(".deploy", "examples", "elec2.yaml"))
	svc := startTestService(t, cfg)
	n, err := produceCSV(broker, "events", datasetPath(t, "elec2.csv"), "up")
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
	config := filepath.Join(".deploy", "examples", "elec2.yaml")
	if _, err := produceCSV(broker, "events", datasetPath(t, "elec2.csv"), "up"); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := withConfigFile(t, testConfig(broker, dir, learner.ModelConfig{}), config)
	first := startTestService(t, o)
	waitFor(t, 60*time.Second, "some examples learned", func() bool { return first.learned("elec2") >= 5000 })
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	stoppedAt := first.learned("elec2")
	second := startTestService(t, o)
	waitFor(t, 60*time.Second, "the stream drained", func() bool { return second.learned("elec2") == 45312 })
	if err := second.stop(); err != nil {
		t.Fatal(err)
	}

	straight := o
	straight.DataDir, straight.Group = t.TempDir(), "straight"
	s := startTestService(t, straight)
	waitFor(t, 60*time.Second, "the uninterrupted run drained", func() bool { return s.learned("elec2") == 45312 })
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	gotW, gotB := storedWeights(t, o)
	wantW, wantB := storedWeights(t, straight)
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
