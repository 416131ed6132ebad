package stream

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// ownerHandler is a recordingHandler that is an Owner of one unit, its
// state (the stored offsets) exported as JSON.
type ownerHandler struct {
	*recordingHandler
	epoch, seq uint64
}

func (h *ownerHandler) Units() []Unit {
	return []Unit{{Name: "u", Topics: []string{"events"}, Hash: "h"}}
}

func (h *ownerHandler) Acquire(_ string, remote *Checkpoint, epoch uint64) error {
	h.epoch = epoch
	return nil
}

func (h *ownerHandler) Export(string) (*Checkpoint, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.seq++
	data, _ := json.Marshal(h.stored)
	return &Checkpoint{Unit: "u", Epoch: h.epoch, Seq: h.seq, Data: data}, nil
}

func (h *ownerHandler) Relinquish(string) error          { return nil }
func (h *ownerHandler) Follow(string, *Checkpoint) error { return nil }

// commitGroupOffsets sets the committed offsets of an empty group, as a
// crash between a checkpoint and its commit (behind) or a state rolled back
// behind the group (ahead) would leave them.
func commitGroupOffsets(t *testing.T, addr, group string, partitions int, offset int64) {
	t.Helper()
	client := &kafka.Client{Addr: kafka.TCP(addr), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
	req := &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{}}
	for p := range partitions {
		req.Topics["events"] = append(req.Topics["events"], kafka.OffsetCommit{Partition: p, Offset: offset})
	}
	resp, err := client.OffsetCommit(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	for _, parts := range resp.Topics {
		for _, p := range parts {
			if p.Error != nil {
				t.Fatalf("commit partition %d: %v", p.Partition, p.Error)
			}
		}
	}
}

// TestPositionsComeOnlyFromStateWhateverTheGroupCommitted runs an Owner's
// consumer, then sets the group's committed offsets behind its state (what a
// kill between a checkpoint and its commit leaves) and then ahead of it
// (what a state rolled back to an older copy finds), restarting it each
// time: every event is handled and checkpointed exactly once, none twice,
// none skipped.
func TestPositionsComeOnlyFromStateWhateverTheGroupCommitted(t *testing.T) {
	const partitions = 3
	addr := startTestBroker(t, "events", partitions)
	l := newLedger()
	h := &ownerHandler{recordingHandler: newRecordingHandler("a", 0, l)}
	run := func(total int) {
		t.Helper()
		c, err := NewConsumer(ConsumerConfig{Brokers: []string{addr}, Topics: []string{"events"}, GroupID: "state-only",
			SessionTimeout: 2 * time.Second, MaxWait: 50 * time.Millisecond, CheckpointEvery: 50}, h, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ctx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		deadline := time.Now().Add(30 * time.Second)
		for l.count() < total {
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d events checkpointed after 30 s", l.count(), total)
			}
			time.Sleep(20 * time.Millisecond)
		}
		time.Sleep(300 * time.Millisecond) // nothing more may come
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	produceEvents(context.Background(), t, addr, "events", 900, 100000)
	run(900)
	commitGroupOffsets(t, addr, "state-only", partitions, 0) // behind the state
	produceEvents(context.Background(), t, addr, "events", 300, 100000)
	run(1200)
	commitGroupOffsets(t, addr, "state-only", partitions, 1_000_000) // ahead of the state
	produceEvents(context.Background(), t, addr, "events", 300, 100000)
	run(1500)

	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.checkpointed) != 1500 {
		t.Fatalf("%d events checkpointed, want 1500", len(l.checkpointed))
	}
	for at, by := range l.checkpointed {
		if len(by) != 1 {
			t.Fatalf("event %+v checkpointed %d times", at, len(by))
		}
	}
	for at, by := range l.handled {
		if len(by) != 1 {
			t.Fatalf("event %+v handled %d times", at, len(by))
		}
	}
}
