package eddy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream"
)

// TestAServiceStartedThroughItsPublicAPILearnsServesAndStops is what a Go
// program embedding eddy does: a Config with the embedded broker and free
// loopback ports, its own registry, New, Run; events in with kafka-go,
// predictions out over gRPC; a stop that releases everything.
func TestAServiceStartedThroughItsPublicAPILearnsServesAndStops(t *testing.T) {
	const events = 2000
	cfg := eddy.Config{
		DataDir: t.TempDir(), Ephemeral: true, EmbeddedAddr: "127.0.0.1:0",
		GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
		Learner:  engine.Config{Models: []learner.ModelConfig{{Name: "sea"}}, PromoteInterval: 100 * time.Millisecond},
		Consumer: eddy.ConsumerConfig{CheckpointEvery: 200, CheckpointInterval: 50 * time.Millisecond},
	}
	reg := prometheus.NewRegistry()
	svc, err := eddy.New(context.Background(), cfg, testLogger(), reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()

	brokers := svc.Brokers()
	if len(brokers) != 1 || !strings.HasPrefix(brokers[0], "127.0.0.1:") || strings.HasSuffix(brokers[0], ":0") {
		t.Fatalf("Brokers() = %v, want the embedded broker's loopback address", brokers)
	}
	if err := produceN(ctx, brokers, "events", events); err != nil {
		t.Fatal(err)
	}
	model := func() eddy.ModelStats {
		m, ok := svc.Stats().Model("sea")
		if !ok {
			t.Fatalf("Stats has no model sea: %+v", svc.Stats())
		}
		return m
	}
	waitFor(t, 60*time.Second, "every event learned and a snapshot with all of them served", func() bool {
		m := model()
		return m.Learned == events && m.ServedLearned == events
	})
	st := svc.Stats()
	if st.Consumer.Consumed != events || st.Consumer.DeadLettered != 0 || !st.BrokerUp || !st.BrokerDownSince.IsZero() {
		t.Fatalf("Stats = %+v, want %d consumed, none dead-lettered, the broker up", st, events)
	}
	if g := metricValue(reg, "eddy_model_examples", map[string]string{"model": "sea"}); g != events {
		t.Fatalf("eddy_model_examples in the registry passed to New = %v, want %d", g, events)
	}

	resp, err := predictClient(t, svc.GRPCAddr()).Predict(ctx, &eddyv1.PredictRequest{Model: "sea",
		Features: map[string]*structpb.Value{"f1": structpb.NewNumberValue(1), "f2": structpb.NewNumberValue(2), "f3": structpb.NewNumberValue(5)}})
	if err != nil {
		t.Fatal(err)
	}
	if p := resp.GetProbability(); p <= 0.5 || p >= 1 {
		t.Errorf("P(label 1 | f1+f2 = 3, well below every SEA threshold) = %v, want it above 0.5", p)
	}
	if v := resp.GetModelVersion(); v == 0 || v != model().ServedVersion {
		t.Errorf("Predict answered from v%d, Stats says v%d serves", v, model().ServedVersion)
	}
	assertBatchIsPredictBitwise(ctx, t, predictClient(t, svc.GRPCAddr()))
	health, err := http.Get("http://" + svc.MetricsAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(health.Body)
	health.Body.Close()
	if health.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/healthz = %d %q, want 200 ok", health.StatusCode, body)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v after a stop, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of its context ending")
	}
	if m := model(); m.Learned != events {
		t.Errorf("after the stop Stats says %d learned, want %d", m.Learned, events)
	}
	if err := svc.Run(context.Background()); !errors.Is(err, eddy.ErrRunTwice) {
		t.Errorf("a second Run = %v, want ErrRunTwice", err)
	}
	for what, addr := range map[string]string{"gRPC": svc.GRPCAddr(), "metrics": svc.MetricsAddr(), "embedded broker": brokers[0]} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("the %s address %s still accepts connections after Run returned", what, addr)
		}
	}
	if w, _ := storedWeights(t, cfg); len(w) == 0 {
		t.Error("the store holds no weights after the stop")
	}
}

// A zero Config but for its data directory and models is a working one:
// each default documented on Config is the one EnsureDefaults fills in.
func TestAZeroConfigMeansTheDocumentedDefaults(t *testing.T) {
	cfg := eddy.Config{DataDir: "d", Learner: engine.Config{Models: []learner.ModelConfig{{Name: "m"}}}}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := eddy.Config{
		EmbeddedAddr: "127.0.0.1:9092", DataDir: "d", Group: "eddy", Role: eddy.RoleLearn, Partitions: 1, GRPCAddr: "127.0.0.1:50051",
		MetricsIdleTimeout: 2 * time.Minute,
		Consumer: eddy.ConsumerConfig{CheckpointEvery: stream.DefaultCheckpointEvery, CheckpointInterval: time.Second, SessionTimeout: 10 * time.Second,
			StateInterval: 10 * time.Second, Start: "earliest"},
	}
	got := cfg
	got.Learner, got.Serving = engine.Config{}, serving.Config{} // their own defaults, checked below
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("defaults:\n%+v\nwant\n%+v", got, want)
	}
	if cfg.Learner.PromoteInterval != engine.DefaultPromoteInterval || cfg.Serving.MaxRequestBytes != serving.DefaultMaxRequestBytes {
		t.Fatalf("the learner's and serving's defaults were not applied: %+v, %+v", cfg.Learner, cfg.Serving)
	}
}

// registererOnly is a prometheus.Registerer that cannot be gathered.
type registererOnly struct{ prometheus.Registerer }

func TestNewRefusesAConfigThatCannotWorkAndSaysWhy(t *testing.T) {
	model := engine.Config{Models: []learner.ModelConfig{{Name: "m"}}}
	tests := []struct {
		name string
		cfg  eddy.Config
		reg  prometheus.Registerer
		want string
	}{
		{"no data directory", eddy.Config{Learner: model}, nil, "DataDir is required"},
		{"no models", eddy.Config{DataDir: t.TempDir()}, nil, "no models"},
		{"an embedded broker off loopback", eddy.Config{DataDir: t.TempDir(), EmbeddedAddr: "0.0.0.0:9092", Learner: model}, nil, `EmbeddedAddr "0.0.0.0:9092"`},
		{"negative partitions", eddy.Config{DataDir: t.TempDir(), Partitions: -1, Learner: model}, nil, "Partitions"},
		{"negative checkpoint settings", eddy.Config{DataDir: t.TempDir(), Consumer: eddy.ConsumerConfig{CheckpointEvery: -1}, Learner: model}, nil, "checkpoint"},
		{"metrics without a gatherer", eddy.Config{DataDir: t.TempDir(), MetricsAddr: "127.0.0.1:0", Brokers: []string{"127.0.0.1:1"}, Learner: model},
			registererOnly{prometheus.NewRegistry()}, "Gatherer"},
		{"profiles without a metrics listener", eddy.Config{DataDir: t.TempDir(), Pprof: true, Learner: model}, nil, "set MetricsAddr"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eddy.New(context.Background(), tt.cfg, nil, tt.reg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestProfilesAreServedOnlyWhenAskedFor: without Pprof the metrics
// listener answers 404 under /debug/pprof/; with it, the index and a heap
// profile (gzipped protobuf, as go tool pprof reads it).
func TestProfilesAreServedOnlyWhenAskedFor(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := eddy.Config{
			DataDir: t.TempDir(), Ephemeral: true, EmbeddedAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", MetricsAddr: "127.0.0.1:0",
			Pprof: on, Learner: engine.Config{Models: []learner.ModelConfig{{Name: "sea"}}},
		}
		svc, err := eddy.New(context.Background(), cfg, testLogger(), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		get := func(path string) (int, []byte) {
			var resp *http.Response
			for range 100 { // the listener is bound by New; Run serves it
				if resp, err = http.Get("http://" + svc.MetricsAddr() + path); err == nil {
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, body
		}
		index, _ := get("/debug/pprof/")
		heap, profile := get("/debug/pprof/heap")
		metrics, _ := get("/metrics")
		switch {
		case metrics != http.StatusOK:
			t.Errorf("Pprof %v: /metrics = %d, want 200", on, metrics)
		case !on && (index != http.StatusNotFound || heap != http.StatusNotFound):
			t.Errorf("without Pprof: /debug/pprof/ = %d, /debug/pprof/heap = %d, want 404 for both", index, heap)
		case on && (index != http.StatusOK || heap != http.StatusOK || !bytes.HasPrefix(profile, []byte{0x1f, 0x8b})):
			t.Errorf("with Pprof: /debug/pprof/ = %d, /debug/pprof/heap = %d (%d bytes, gzip: %v), want 200 and a gzipped profile", index, heap, len(profile), bytes.HasPrefix(profile, []byte{0x1f, 0x8b}))
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	}
}

// assertBatchIsPredictBitwise scores 100 SEA rows with PredictBatch and
// each with Predict: the learned model gives the same probability, bit for
// bit, from the same version.
func assertBatchIsPredictBitwise(ctx context.Context, t *testing.T, client eddyv1.InferenceClient) {
	t.Helper()
	batch := &eddyv1.PredictBatchRequest{}
	for i := range 100 {
		batch.Requests = append(batch.Requests, &eddyv1.PredictRequest{Model: "sea", Features: map[string]*structpb.Value{
			"f1": structpb.NewNumberValue(float64(i) / 10), "f2": structpb.NewNumberValue(10 - float64(i)/7), "f3": structpb.NewNumberValue(float64(i%9) + 0.5)}})
	}
	resp, err := client.PredictBatch(ctx, batch)
	if err != nil {
		t.Fatalf("PredictBatch: %v", err)
	}
	for i, row := range batch.Requests {
		single, err := client.Predict(ctx, row)
		if err != nil {
			t.Fatalf("Predict of row %d: %v", i, err)
		}
		got := resp.GetResults()[i].GetResponse()
		if got.GetModelVersion() != single.GetModelVersion() || math.Float64bits(got.GetProbability()) != math.Float64bits(single.GetProbability()) || got.GetPredictedLabel() != single.GetPredictedLabel() {
			t.Fatalf("row %d: PredictBatch answered %v, Predict %v", i, got, single)
		}
	}
}
