package stream

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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
