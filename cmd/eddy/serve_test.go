package main

import (
	"compress/gzip"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/stream/devbroker"
)

// The helpers of the CLI's tests. The service's own end-to-end tests live
// beside it, in the module's root package; these start one only where a
// command needs a service to talk to, from serve's options, so that the
// mapping of flags onto eddy.Config is what runs.

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
		logLevel: "info", logFormat: "text", model: model, createTopics: "true",
	}
}

// startTestService starts the service of o until the test ends.
func startTestService(t *testing.T, o serveOptions) *eddy.Service {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := startService(ctx, o, log, prometheus.NewRegistry())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("service did not stop within 30s")
		}
	})
	select {
	case <-svc.Connected():
	case <-time.After(30 * time.Second):
		t.Fatal("the service did not connect to Kafka within 30s")
	}
	return svc
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
