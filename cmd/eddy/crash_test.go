//go:build processtests

// The process-level tests run real eddy processes and take minutes, so they
// are built only with the processtests tag (as .ci/run does) instead of
// skipping in every ordinary run:
//
//	go test -tags processtests ./cmd/eddy -run 'CrashHarness|Failover|Churn' -v

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
	"github.com/eddyhq/eddy/stream"
)

// TestCrashHarness kills `eddy serve` with SIGKILL at random moments while
// events stream in, restarts it each time, stops the broker process in the
// middle and starts it again, and then checks that the model learned every
// event exactly once: its learned count equals the events produced and its
// weights are bitwise those of an uninterrupted run over the same events.
//
// It runs real processes (the eddy binary, built once, as broker and as
// service) and takes a minute, so it is built only with the processtests tag:
//
//	go test -tags processtests ./cmd/eddy -run CrashHarness -v
//
// EDDY_CRASH_KILLS (default 20), EDDY_CRASH_EVENTS (default 40000) and
// EDDY_CRASH_SEED (default 1) vary it.
func TestCrashHarness(t *testing.T) {
	kills := envInt(t, "EDDY_CRASH_KILLS", 20)
	if kills < 1 {
		t.Fatalf("EDDY_CRASH_KILLS=%d: want at least one kill", kills)
	}
	crashHarness(t, kills, envInt(t, "EDDY_CRASH_EVENTS", 40000), "", 0)
}

// TestCrashHarnessWithHistoriesBeyondMemory is the crash harness for a
// model with entity histories (a window and lags of f1, keyed by the
// message key, 2,000 users) that holds at most 50 of them in memory: most
// events read their user's history back from Pebble, and the least
// recently used leave memory after each checkpoint, while SIGKILLs and a
// broker outage come at random moments. It learns every event exactly once,
// and its weights are bitwise those of an uninterrupted run without the
// bound.
func TestCrashHarnessWithHistoriesBeyondMemory(t *testing.T) {
	config := filepath.Join(t.TempDir(), "models.yaml")
	const models = `models:
  - name: default
    max_entities_in_memory: %d
    windows: [{field: f1, size: 5, aggs: [mean, max]}]
    lags: [{field: f1, lags: [1, 2], diff: true}]
`
	if err := os.WriteFile(config, fmt.Appendf(nil, models, 50), 0o644); err != nil {
		t.Fatal(err)
	}
	unbounded := filepath.Join(t.TempDir(), "unbounded.yaml")
	if err := os.WriteFile(unbounded, fmt.Appendf(nil, models, -1), 0o644); err != nil {
		t.Fatal(err)
	}
	crashHarnessWith(t, envInt(t, "EDDY_CRASH_KILLS", 10), envInt(t, "EDDY_CRASH_EVENTS", 20000), config, unbounded, 2000)
}

// crashHarness kills eddy serve kills times while events stream in (see
// TestCrashHarness), with the default model.
func crashHarness(t *testing.T, kills, events int, config string, users int) {
	crashHarnessWith(t, kills, events, config, config, users)
}

// crashHarnessWith is crashHarness whose killed runs use the model file
// config and the uninterrupted reference run refConfig (both the default
// model when empty), with message keys of users distinct users (none when
// 0).
func crashHarnessWith(t *testing.T, kills, events int, config, refConfig string, users int) {
	rng := rand.New(rand.NewPCG(uint64(envInt(t, "EDDY_CRASH_SEED", 1)), 9))

	bin := filepath.Join(t.TempDir(), "eddy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	brokerAddr := freeAddr(t)
	brokerDir := t.TempDir()
	broker := startProcess(t, bin, "broker", "--addr", brokerAddr, "--data-dir", brokerDir)
	waitBroker(t, brokerAddr)
	if err := stream.EnsureTopics(context.Background(), []string{brokerAddr}, []stream.TopicSpec{{Name: "events", Partitions: 1}, {Name: "events.dlq", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}

	// The producer writes batches at about 1,000 events/s; it pauses while
	// the broker is down so that no batch is half written and retried.
	prod := newPacedProducer(brokerAddr, events)
	prod.users = users
	go prod.run()

	dataDir := t.TempDir()
	withConfig := func(args []string, config string) []string {
		if config != "" {
			args = append(args, "--config", config)
		}
		return args
	}
	serveArgs := func(metrics string) []string {
		return withConfig([]string{"serve", "--brokers", brokerAddr, "--data-dir", dataDir, "--grpc-addr", "127.0.0.1:0",
			"--metrics-addr", metrics, "--checkpoint-every", "200", "--session-timeout", "2s", "--group", "crash", "--log-level", "warn"}, config)
	}
	for k := range kills {
		p := startProcess(t, bin, serveArgs("")...)
		time.Sleep(time.Duration(300+rng.IntN(2200)) * time.Millisecond)
		if k == kills/2 {
			// Broker outage while eddy runs: stop it, wait, start it again.
			prod.pause()
			broker.stop(t, syscall.SIGTERM, 10*time.Second)
			time.Sleep(2 * time.Second)
			broker = startProcess(t, bin, "broker", "--addr", brokerAddr, "--data-dir", brokerDir)
			waitBroker(t, brokerAddr)
			prod.resume()
			time.Sleep(time.Duration(500+rng.IntN(1500)) * time.Millisecond)
		}
		p.stop(t, syscall.SIGKILL, 5*time.Second)
	}
	produced := prod.wait(t)
	if produced != events {
		t.Fatalf("produced %d events, want %d", produced, events)
	}

	// The last run drains the stream, then SIGTERM must stop it within 5 s.
	metrics := freeAddr(t)
	final := startProcess(t, bin, serveArgs(metrics)...)
	waitFor(t, 120*time.Second, "the stream drained", func() bool { return scrape(metrics, `eddy_model_examples{model="default"}`) == float64(events) })
	if users > 0 {
		held := scrape(metrics, `eddy_history_entities{model="default"}`)
		t.Logf("%d users: the last run holds %v histories in memory, read %v from Pebble", users, held, scrape(metrics, `eddy_history_cache_misses_total{model="default"}`))
	}
	start := time.Now()
	if code := final.stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
		t.Fatalf("eddy exited with %d after SIGTERM, want 0", code)
	}
	t.Logf("SIGTERM: stopped in %v", time.Since(start).Round(time.Millisecond))

	// The reference: one uninterrupted run over the same topic.
	refDir := t.TempDir()
	ref := startProcess(t, bin, withConfig([]string{"serve", "--brokers", brokerAddr, "--data-dir", refDir, "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", metrics, "--group", "reference", "--log-level", "warn"}, refConfig)...)
	waitFor(t, 120*time.Second, "the reference drained", func() bool { return scrape(metrics, `eddy_model_examples{model="default"}`) == float64(events) })
	ref.stop(t, syscall.SIGTERM, 5*time.Second)
	broker.stop(t, syscall.SIGTERM, 10*time.Second)

	got, gotB, learned := storedModel(t, dataDir)
	want, wantB, _ := storedModel(t, refDir)
	if learned != uint64(events) {
		t.Fatalf("examples learned = %d after %d kills, want exactly %d", learned, kills, events)
	}
	if math.Float64bits(gotB) != math.Float64bits(wantB) || len(got) != len(want) {
		t.Fatalf("intercept %v vs %v", gotB, wantB)
	}
	for i := range want {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("weight %d = %v after %d kills, %v uninterrupted", i, got[i], kills, want[i])
		}
	}
	t.Logf("%d events, %d SIGKILLs and one broker outage: learned exactly %d, weights bitwise equal to an uninterrupted run", events, kills, learned)
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitBroker(t *testing.T, addr string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stream.WaitForBroker(ctx, addr); err != nil {
		t.Fatal(err)
	}
}

// process is a child process of the test.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	return p
}

// startProcessLogging is startProcess with the process's stderr written
// to logFile.
func startProcessLogging(t *testing.T, logFile, bin string, args ...string) *process {
	t.Helper()
	f, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	return p
}

// stop sends sig and returns the exit code (-1 when killed by a signal).
func (p *process) stop(t *testing.T, sig syscall.Signal, within time.Duration) int {
	t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(within):
		t.Fatalf("%s did not exit within %v of %v", strings.Join(p.cmd.Args, " "), within, sig)
	}
	return p.cmd.ProcessState.ExitCode()
}

func scrape(addr, series string) float64 {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			x, _ := strconv.ParseFloat(v, 64)
			return x
		}
	}
	return -1
}

// storedModel reads the model "default" from a stopped eddy's data dir.
func storedModel(t *testing.T, dataDir string) ([]float64, float64, uint64) {
	t.Helper()
	db, err := store.Open(filepath.Join(dataDir, "pebble"), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := engine.New(engine.Config{Models: []learner.ModelConfig{{Name: "default"}}}, db, func(*learner.Snapshot) {}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	m := e.Models()[0]
	w, b := m.Weights()
	return w, b, m.Learned()
}

// pacedProducer writes SEA events in batches of 100, one batch every
// pause (100ms unless set before run: about 1,000 events/s).
type pacedProducer struct {
	broker string
	total  int
	users  int // message keys user-0 … user-<users-1>, in turn; 0: none
	every  time.Duration
	mu     sync.Mutex // held while a batch is being written, and by pause
	sent   int
	err    error
	done   chan struct{}
}

func newPacedProducer(broker string, total int) *pacedProducer {
	return &pacedProducer{broker: broker, total: total, every: 100 * time.Millisecond, done: make(chan struct{})}
}

func (p *pacedProducer) run() {
	defer close(p.done)
	w := &kafka.Writer{Addr: kafka.TCP(p.broker), Topic: "events", RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	gen := newSEA(7, 10000, 0.1)
	for p.sent < p.total {
		batch := make([]kafka.Message, 0, 100)
		for len(batch) < cap(batch) && p.sent+len(batch) < p.total {
			m := kafka.Message{Value: gen.next(nil, "crash-")}
			if p.users > 0 {
				m.Key = fmt.Appendf(nil, "user-%d", (p.sent+len(batch))*7919%p.users)
			}
			batch = append(batch, m)
		}
		p.mu.Lock()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := w.WriteMessages(ctx, batch...)
		cancel()
		if err == nil {
			p.sent += len(batch)
		}
		p.mu.Unlock()
		if err != nil {
			p.err = fmt.Errorf("after %d events: %w", p.sent, err)
			return
		}
		time.Sleep(p.every)
	}
}

func (p *pacedProducer) pause()  { p.mu.Lock() }
func (p *pacedProducer) resume() { p.mu.Unlock() }

func (p *pacedProducer) wait(t *testing.T) int {
	<-p.done
	if p.err != nil {
		t.Fatalf("producer: %v", p.err)
	}
	return p.sent
}
