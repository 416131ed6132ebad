package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// waitForLabels makes e's model score n events without labels, ids
// <prefix>0..<prefix>n-1, one per clock tick of step.
func waitForLabels(tb testing.TB, e *Engine, clock *time.Time, prefix string, n int, step time.Duration) {
	tb.Helper()
	fields := []features.Field{{Name: []byte("x"), Kind: features.Number, Num: 1}}
	for i := range n {
		if err := e.Process("events", &Example{Offset: int64(i), ID: fmt.Appendf(nil, "%s%d", prefix, i), Fields: fields}); err != nil {
			tb.Fatal(err)
		}
		*clock = clock.Add(step)
	}
}

// BenchmarkExpiryOfWaitingLabels measures the expiry part of a checkpoint
// (Engine.writePending) with many events waiting for a label and none due:
// its cost must not grow with the number waiting.
func BenchmarkExpiryOfWaitingLabels(b *testing.B) {
	for _, waiting := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("waiting=%d", waiting), func(b *testing.B) {
			store, _ := openTestStore(b, b.TempDir())
			cfg := Config{Models: []learner.ModelConfig{{Name: "late", Topic: "events", LabelsTopic: "labels", LabelTTL: time.Hour}}}
			e, _ := newTestEngine(b, store, cfg, nil)
			clock := time.Unix(1000, 0)
			e.now = func() time.Time { return clock }
			waitForLabels(b, e, &clock, "e", waiting, time.Millisecond)
			checkpoint(b, e, eventsOffset(0, int64(waiting)))
			u := e.states[0]
			batch := store.NewBatch()
			defer batch.Close()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.writePending(batch, u, clock); err != nil {
					b.Fatal(err)
				}
			}
			if n := len(u.pending.events); n != waiting {
				b.Fatalf("%d events waiting, want %d", n, waiting)
			}
		})
	}
}

// TestEventsWaitingAcrossARestartExpireOldestFirst restores waiting events
// (stored in id order, not arrival order) and checks that expiry still
// takes exactly the ones past their TTL, at each checkpoint.
func TestEventsWaitingAcrossARestartExpireOldestFirst(t *testing.T) {
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	cfg := Config{Models: []learner.ModelConfig{{Name: "late", Topic: "events", LabelsTopic: "labels", LabelTTL: time.Minute}}}
	e, _ := newTestEngine(t, store, cfg, nil)
	clock := time.Unix(1000, 0)
	e.now = func() time.Time { return clock }
	// Stored in id order, z10 and z11 come before z2. One event a second.
	waitForLabels(t, e, &clock, "z", 12, time.Second)
	checkpoint(t, e, eventsOffset(0, 12)) // at 12s: none expires
	closeStore()

	reopened, _ := openTestStore(t, dir)
	e2, reg := newTestEngine(t, reopened, cfg, nil)
	start := time.Unix(1000, 0)
	e2.now = func() time.Time { return clock }
	labels := map[string]string{"model": "late"}
	next := int64(12)
	for _, step := range []struct {
		at      time.Duration // since the first event
		expired float64       // in total
	}{{60500 * time.Millisecond, 1}, {60500 * time.Millisecond, 1}, {63500 * time.Millisecond, 4}, {72 * time.Second, 12}} {
		clock = start.Add(step.at)
		next++ // other events keep arriving: an idle checkpoint writes nothing
		checkpoint(t, e2, eventsOffset(0, next))
		if got := metricValue(t, reg, "eddy_labels_expired_total", labels); got != step.expired {
			t.Fatalf("at %v: %v events expired, want %v", step.at, got, step.expired)
		}
		// The oldest still waiting (z<expired>) can be labeled; the newest
		// expired one cannot.
		if n := int(step.expired); n < 12 {
			if p := e2.states[0].pending.events[fmt.Sprintf("z%d", n)]; p == nil {
				t.Fatalf("at %v: z%d no longer waits", step.at, n)
			}
		}
		if p := e2.states[0].pending.events[fmt.Sprintf("z%d", int(step.expired)-1)]; p != nil {
			t.Fatalf("at %v: z%d still waits", step.at, int(step.expired)-1)
		}
	}
	if got := metricValue(t, reg, "eddy_labels_pending", labels); got != 0 {
		t.Errorf("eddy_labels_pending = %v, want 0", got)
	}
}

// TestWaitingEventsExpireWhenNothingElseHappens lets the label TTL pass on
// an idle stream: idle checkpoints, which write nothing else, must still
// expire the waiting events (they used to wait until the next event).
func TestWaitingEventsExpireWhenNothingElseHappens(t *testing.T) {
	store, _ := openTestStore(t, t.TempDir())
	cfg := Config{Models: []learner.ModelConfig{{Name: "late", Topic: "events", LabelsTopic: "labels", LabelTTL: time.Minute}}}
	e, reg := newTestEngine(t, store, cfg, nil)
	clock := time.Unix(1000, 0)
	e.now = func() time.Time { return clock }
	waitForLabels(t, e, &clock, "q", 3, time.Second)
	checkpoint(t, e, eventsOffset(0, 3))
	clock = clock.Add(2 * time.Minute)
	checkpoint(t, e, eventsOffset(0, 3)) // the same offsets: an idle tick
	labels := map[string]string{"model": "late"}
	if got := metricValue(t, reg, "eddy_labels_expired_total", labels); got != 3 {
		t.Fatalf("%v events expired on an idle stream, want 3", got)
	}
	if got := metricValue(t, reg, "eddy_labels_pending", labels); got != 0 {
		t.Fatalf("eddy_labels_pending = %v, want 0", got)
	}
}
