package stream

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/stream/devbroker"
)

type diskFull struct{}

func (diskFull) Error() string   { return "no space left on device" }
func (diskFull) Temporary() bool { return true }

// flakyHandler is a recordingHandler whose checkpoints fail with a
// Temporary error while full is set, and that discards what it handled
// since its last checkpoint when asked.
type flakyHandler struct {
	*recordingHandler
	full      atomic.Bool
	discarded atomic.Int64
}

func (h *flakyHandler) Checkpoint(offsets []Offset) error {
	if h.full.Load() {
		return diskFull{}
	}
	return h.recordingHandler.Checkpoint(offsets)
}

func (h *flakyHandler) Discard() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending = h.pending[:0]
	h.discarded.Add(1)
	return nil
}

// TestAFailingCheckpointPausesAndNothingIsCheckpointedTwice fills the
// "disk" while events flow: the consumer pauses (PausedSince, the gauge)
// instead of stopping, resumes when checkpoints work again, and a consumer
// stopped while paused discards what it could not store; the restarted one
// learns it again from the stored offsets. Every event is checkpointed
// exactly once.
func TestAFailingCheckpointPausesAndNothingIsCheckpointedTwice(t *testing.T) {
	addr := startTestBroker(t, "events", 2)
	l := newLedger()
	h := &flakyHandler{recordingHandler: newRecordingHandler("a", 0, l)}
	start := func() (*Consumer, func() error) {
		c, err := NewConsumer(ConsumerConfig{Brokers: []string{addr}, Topics: []string{"events"}, GroupID: "pause",
			SessionTimeout: 2 * time.Second, MaxWait: 50 * time.Millisecond, CheckpointEvery: 50}, h, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		return c, func() error { stop(); return <-done }
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	c, stop := start()
	produceEvents(context.Background(), t, addr, "events", 500, 100000)
	wait("500 checkpointed", func() bool { return l.count() == 500 })
	h.full.Store(true)
	produceEvents(context.Background(), t, addr, "events", 500, 100000)
	wait("paused", func() bool { since, _ := c.PausedSince(); return !since.IsZero() })
	if _, cause := c.PausedSince(); cause != "no space left on device" {
		t.Fatalf("pause cause %q", cause)
	}
	h.full.Store(false)
	wait("1,000 checkpointed after the disk has room again", func() bool { return l.count() == 1000 })
	if since, _ := c.PausedSince(); !since.IsZero() {
		t.Fatal("still paused")
	}

	// Stopped while paused: what it handled is discarded, not lost.
	h.full.Store(true)
	produceEvents(context.Background(), t, addr, "events", 500, 100000)
	wait("paused again", func() bool { since, _ := c.PausedSince(); return !since.IsZero() })
	if err := stop(); err != nil {
		t.Fatalf("a consumer stopped while paused returned %v", err)
	}
	if h.discarded.Load() != 1 {
		t.Fatalf("discarded %d times, want once", h.discarded.Load())
	}
	h.full.Store(false)
	_, stop = start()
	wait("1,500 checkpointed after the restart", func() bool { return l.count() == 1500 })
	time.Sleep(300 * time.Millisecond)
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for at, by := range l.checkpointed {
		if len(by) != 1 {
			t.Fatalf("event %+v checkpointed %d times", at, len(by))
		}
	}
	if len(l.checkpointed) != 1500 {
		t.Fatalf("%d checkpointed, want 1500", len(l.checkpointed))
	}
}

// TestAFailedDeadLetterWriteInACheckpointPausesAndLosesNothing runs a
// consumer whose dead-letter topic does not exist yet, over events of which
// every tenth is not an event: the checkpoint that must write their dead
// letters fails, so learning pauses with the cause, and nothing is stored;
// once the topic exists, learning resumes by itself. In the end every valid
// event is checkpointed exactly once and every invalid one has exactly one
// dead letter with its reason.
func TestAFailedDeadLetterWriteInACheckpointPausesAndLosesNothing(t *testing.T) {
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	addr := b.Addr()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := EnsureTopics(ctx, []string{addr}, []TopicSpec{{Name: "events", Partitions: 2}}); err != nil {
		t.Fatal(err)
	}
	const valid, invalid = 270, 30
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: "events", Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	var msgs []kafka.Message
	for i := range valid + invalid {
		value := []byte("not an event " + strconv.Itoa(i))
		if i%10 != 0 {
			value, err = AppendEvent(nil, &Event{ID: []byte("e-" + strconv.Itoa(i)), Label: 1, HasLabel: true,
				Fields: []Field{{Name: []byte("x"), Kind: KindNumber, Num: 1}}})
			if err != nil {
				t.Fatal(err)
			}
		}
		msgs = append(msgs, kafka.Message{Key: []byte("k" + strconv.Itoa(i)), Value: value})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	l := newLedger()
	h := newRecordingHandler("a", 0, l)
	reg := prometheus.NewRegistry()
	c, err := NewConsumer(ConsumerConfig{Brokers: []string{addr}, Topics: []string{"events"}, GroupID: "dlq",
		SessionTimeout: 2 * time.Second, MaxWait: 50 * time.Millisecond, CheckpointEvery: 50}, h, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	var once sync.Once
	var runErr error
	finish := func() error { once.Do(func() { stop(); runErr = <-done }); return runErr }
	t.Cleanup(func() { _ = finish() })
	waitUntil(t, 60*time.Second, "learning paused on the dead letters", func() bool { since, _ := c.PausedSince(); return !since.IsZero() })
	if _, cause := c.PausedSince(); !strings.Contains(cause, "dead letters to events.dlq") {
		t.Fatalf("pause cause %q, want it to name the dead-letter topic", cause)
	}
	if n := l.count(); n != 0 {
		t.Fatalf("%d events checkpointed although their checkpoint's dead letters were not written", n)
	}
	if err := EnsureTopics(ctx, []string{addr}, []TopicSpec{{Name: "events.dlq", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 60*time.Second, "every valid event checkpointed", func() bool { return l.count() == valid })
	if since, _ := c.PausedSince(); !since.IsZero() {
		t.Fatal("still paused after the dead-letter topic was created")
	}
	if err := finish(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	l.mu.Lock()
	for at, by := range l.checkpointed {
		if len(by) != 1 {
			t.Fatalf("event %+v checkpointed %d times", at, len(by))
		}
	}
	l.mu.Unlock()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{addr}, Topic: "events.dlq", Partition: 0, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	seen := make(map[string]int)
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	for len(seen) < invalid {
		m, err := r.ReadMessage(rctx)
		if err != nil {
			t.Fatalf("after %d dead letters: %v", len(seen), err)
		}
		seen[string(m.Value)]++
		if reason := headerValue(m.Headers, "eddy-reason"); reason == "" {
			t.Fatalf("dead letter %q without a reason (headers %v)", m.Value, m.Headers)
		}
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("dead letter %q written %d times", v, n)
		}
	}
}

func headerValue(hs []kafka.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}
