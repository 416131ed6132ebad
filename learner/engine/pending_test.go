package engine

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

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

// waits reports whether the event id waits for a label in e's first model,
// in memory or only in the store.
func waits(tb testing.TB, e *Engine, id string) bool {
	tb.Helper()
	p, _, err := e.states[0].pending.lookup(id)
	if err != nil {
		tb.Fatal(err)
	}
	return p != nil
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
			if n := u.pending.waiting; n != waiting {
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
			if !waits(t, e2, fmt.Sprintf("z%d", n)) {
				t.Fatalf("at %v: z%d no longer waits", step.at, n)
			}
		}
		if waits(t, e2, fmt.Sprintf("z%d", int(step.expired)-1)) {
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

// TestWaitingEventsBeyondTheBoundWaitInTheStore scores 600 events that
// wait for labels through an engine holding at most 20 of them in memory
// after each checkpoint, and through one holding all; then labels come for
// 500 of them in another order, with checkpoints and a restart between.
// The bounded engine never holds more than 20 (plus those since the last
// checkpoint), counts all 600 waiting, learns each label once, refuses a
// second one, expires the 100 never labeled once their TTL passes although
// they are only stored, and ends with the same model, bit for bit.
func TestWaitingEventsBeyondTheBoundWaitInTheStore(t *testing.T) {
	const bound, events, every = 20, 600, 50
	clock := time.Unix(1000, 0)
	cfg := func(max int) Config {
		return Config{Models: []learner.ModelConfig{{Name: "late", Topic: "events", LabelsTopic: "labels", LabelTTL: time.Hour, MaxPendingInMemory: max}}}
	}
	dirs := [2]string{t.TempDir(), t.TempDir()}
	var engines [2]*Engine
	var regs [2]*prometheus.Registry
	var closers [2]func()
	open := func(i int) {
		st, closeStore := openTestStore(t, dirs[i])
		engines[i], regs[i] = newTestEngine(t, st, cfg([]int{bound, -1}[i]), nil)
		engines[i].now = func() time.Time { return clock }
		closers[i] = closeStore
	}
	open(0)
	open(1)
	labels := map[string]string{"model": "late"}
	for i := range events {
		clock = clock.Add(time.Second)
		ex := &Example{Offset: int64(i), ID: fmt.Appendf(nil, "ev-%d", i), Fields: []features.Field{{Name: []byte("x"), Kind: features.Number, Num: float64(i % 13)}}}
		for _, e := range engines {
			if err := e.Process("events", ex); err != nil {
				t.Fatal(err)
			}
		}
		if i%every == every-1 {
			for _, e := range engines {
				checkpoint(t, e, eventsOffset(0, int64(i+1)))
			}
			if n := len(engines[0].states[0].pending.events); n > bound {
				t.Fatalf("after event %d: %d waiting events in memory, bound %d", i, n, bound)
			}
		}
	}
	if got := metricValue(t, regs[0], "eddy_labels_pending", labels); got != events {
		t.Fatalf("eddy_labels_pending = %v, want %d", got, events)
	}
	if got := metricValue(t, regs[0], "eddy_labels_pending_in_memory", labels); got > bound {
		t.Fatalf("eddy_labels_pending_in_memory = %v, want at most %d", got, bound)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	order := rng.Perm(events)[:500]
	for n, i := range order {
		id := fmt.Appendf(nil, "ev-%d", i)
		for _, e := range engines {
			if err := e.Label("labels", id, float64(i%2)); err != nil {
				t.Fatalf("label %d of ev-%d: %v", n, i, err)
			}
		}
		if n == 250 { // a restart of both, mid-way
			for j, e := range engines {
				checkpoint(t, e, eventsOffset(0, events))
				closers[j]()
				open(j)
			}
			if n := len(engines[0].states[0].pending.events); n != 0 {
				t.Fatalf("after the restart %d waiting events in memory, want none read before their label", n)
			}
		}
	}
	if err := engines[0].Label("labels", fmt.Appendf(nil, "ev-%d", order[0]), 1); err == nil {
		t.Fatal("a second label for an event only stored was learned")
	}
	for _, e := range engines {
		checkpoint(t, e, eventsOffset(0, events))
	}
	if got := metricValue(t, regs[0], "eddy_labels_pending", labels); got != events-500 {
		t.Fatalf("eddy_labels_pending = %v after 500 labels, want %d", got, events-500)
	}
	a, b := engines[0].states[0].model, engines[1].states[0].model
	if a.Learned() != 500 || string(a.AppendState(nil)) != string(b.AppendState(nil)) {
		t.Fatalf("the bounded engine learned %d, the unbounded one %d; want the same 500 and the same model", a.Learned(), b.Learned())
	}
	clock = clock.Add(2 * time.Hour)
	for _, e := range engines {
		checkpoint(t, e, eventsOffset(0, events+1))
	}
	if got := metricValue(t, regs[0], "eddy_labels_expired_total", labels); got != events-500 {
		t.Errorf("eddy_labels_expired_total = %v after the TTL, want %d", got, events-500)
	}
	if got := metricValue(t, regs[0], "eddy_labels_pending", labels); got != 0 {
		t.Errorf("eddy_labels_pending = %v after the TTL, want 0", got)
	}
	left := 0
	for _, prefix := range [][]byte{pendingKey("late", nil), pendingAtPrefix("late")} {
		if err := engines[0].store.Scan(prefix, func(_, _ []byte) error { left++; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if left != 0 {
		t.Errorf("%d keys of waiting events left in the store, want none", left)
	}
}

// TestWaitingEventsOfAnEarlierReleaseAreIndexedOnce: a store whose waiting
// events have no index by time nor count (as an earlier release wrote
// them) gets both when it is opened: the events are counted, labeled and
// expired as if they had been written with them.
func TestWaitingEventsOfAnEarlierReleaseAreIndexedOnce(t *testing.T) {
	dir := t.TempDir()
	st, closeStore := openTestStore(t, dir)
	cfg := Config{Models: []learner.ModelConfig{{Name: "late", Topic: "events", LabelsTopic: "labels", LabelTTL: time.Minute}}}
	e, _ := newTestEngine(t, st, cfg, nil)
	clock := time.Unix(1000, 0)
	e.now = func() time.Time { return clock }
	waitForLabels(t, e, &clock, "old", 5, 10*time.Second) // scored at 0s, 10s, 20s, 30s, 40s
	checkpoint(t, e, eventsOffset(0, 5))
	batch := st.NewBatch()
	if err := batch.Delete(pendingCountKey("late")); err != nil {
		t.Fatal(err)
	}
	if err := st.Scan(pendingAtPrefix("late"), func(key, _ []byte) error { return batch.Delete(key) }); err != nil {
		t.Fatal(err)
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	batch.Close()
	closeStore()

	reopened, _ := openTestStore(t, dir)
	e2, reg := newTestEngine(t, reopened, cfg, nil)
	e2.now = func() time.Time { return clock }
	if n := e2.states[0].pending.waiting; n != 5 {
		t.Fatalf("%d events waiting after indexing, want 5", n)
	}
	if err := e2.Label("labels", []byte("old4"), 1); err != nil {
		t.Fatal(err)
	}
	clock = time.Unix(1000, 0).Add(75 * time.Second) // old0 and old1 are over a minute old
	checkpoint(t, e2, eventsOffset(0, 6))
	labels := map[string]string{"model": "late"}
	if got := metricValue(t, reg, "eddy_labels_expired_total", labels); got != 2 {
		t.Errorf("%v expired, want 2 (old0, old1)", got)
	}
	if got := metricValue(t, reg, "eddy_labels_pending", labels); got != 2 {
		t.Errorf("eddy_labels_pending = %v, want 2 (old2, old3)", got)
	}
}
