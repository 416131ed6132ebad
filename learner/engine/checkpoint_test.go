package engine

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// failingStore is a real store whose commits fail while *fail is set, at the
// store's own commit seam.
func failingStore(t *testing.T, fail *bool) *store.Store {
	t.Helper()
	s, _ := openTestStoreWith(t, t.TempDir(), &store.Options{FailCommit: func() error {
		if *fail {
			return errDiskFull
		}
		return nil
	}})
	return s
}

var errDiskFull = errors.New("disk full")

// contents returns every key and value of s.
func contents(t *testing.T, s *store.Store) map[string]string {
	t.Helper()
	out := make(map[string]string)
	if err := s.ScanRange(nil, nil, func(key, value []byte) error { out[string(key)] = string(value); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// historyAndLabelsConfig has a model with entity histories that expire
// after a minute idle, delayed labels that expire after a minute, a
// promotion a minute, and retention of the newest snapshot alone (and the
// served one).
var historyAndLabelsConfig = Config{
	PromoteInterval: time.Minute, Retain: 1, RetainFor: time.Nanosecond,
	Models: []learner.ModelConfig{{
		Name: "m", Topic: "events", LabelsTopic: "labels", LabelTTL: time.Minute,
		Features: features.Config{Lags: []features.LagConfig{{Field: "x", Lags: []int{1}}}, EntityTTL: time.Minute},
	}},
}

func event(key, id string, x float64, label float64, hasLabel bool) *Example {
	ex := &Example{Key: []byte(key), Fields: []features.Field{numField("x", x)}, Label: label, HasLabel: hasLabel}
	if id != "" {
		ex.ID = []byte(id)
	}
	return ex
}

// TestAFailedCheckpointLeavesTheEngineAsStoredAndARetryStoresEverything runs
// two engines on the same events and clock. The first checkpoint of the
// second phase, which is due to promote a snapshot (and retire one), evict
// an idle entity, expire a waiting event and store changed entities, new
// and learned waiting events and offsets, fails to commit on one of them:
// its memory must still describe exactly what is stored (versions, the
// retention index, entities, waiting events, offsets, the champion), and
// its retry must store exactly what the other engine's single checkpoint
// stores.
func TestAFailedCheckpointLeavesTheEngineAsStoredAndARetryStoresEverything(t *testing.T) {
	fail := false
	failingRec, twinRec := &snapshotRecorder{}, &snapshotRecorder{}
	failing, _ := newTestEngine(t, failingStore(t, &fail), historyAndLabelsConfig, failingRec)
	twinStore, _ := openTestStore(t, t.TempDir())
	twin, _ := newTestEngine(t, twinStore, historyAndLabelsConfig, twinRec)
	clock := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	for _, e := range []*Engine{failing, twin} {
		e.now = func() time.Time { return clock }
		e.promoted = clock
	}
	both := func(do func(*Engine) error) {
		t.Helper()
		for _, e := range []*Engine{failing, twin} {
			if err := do(e); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Phase 1, stored: entities idle and busy, an event waiting for a label.
	both(func(e *Engine) error { return e.Process("events", event("idle", "", 1, 1, true)) })
	both(func(e *Engine) error { return e.Process("events", event("busy", "", 2, 0, true)) })
	both(func(e *Engine) error { return e.Process("events", event("busy", "old", 3, 0, false)) })
	both(func(e *Engine) error { return e.Checkpoint([]Offset{eventsOffset(0, 3)}) })
	failingRec.take()
	twinRec.take()

	// Phase 2, two minutes later: idle is due for eviction, old for expiry,
	// a periodic promotion is due; busy learns, new-1 waits, new-2 waits
	// and is labeled.
	clock = clock.Add(2 * time.Minute)
	both(func(e *Engine) error { return e.Process("events", event("busy", "", 4, 1, true)) })
	both(func(e *Engine) error { return e.Process("events", event("busy", "new-1", 5, 0, false)) })
	both(func(e *Engine) error { return e.Process("events", event("busy", "new-2", 6, 0, false)) })
	both(func(e *Engine) error { return e.Label("labels", []byte("new-2"), 1) })
	offsets := []Offset{eventsOffset(0, 6)}

	fail = true
	if err := failing.Checkpoint(offsets); !errors.Is(err, errDiskFull) {
		t.Fatalf("Checkpoint on a failing store = %v, want the store's error", err)
	}
	u, stored := failing.states[0], contents(t, failing.store)
	if got := failingRec.take(); len(got) != 0 {
		t.Errorf("the failed checkpoint published v%d", got[0].Version())
	}
	storedModel, _, err := learner.DecodeModel(u.cfg, failing.cfg.RollingWindow, []byte(stored[string(modelKey("m"))]))
	if err != nil {
		t.Fatal(err)
	}
	if u.model.Version() != 1 || storedModel.Version() != 1 {
		t.Errorf("after the failure the model's newest version is v%d, the stored one v%d; want v1 for both", u.model.Version(), storedModel.Version())
	}
	storedChampion, _, err := learner.MonitorChampion([]byte(stored[string(monitorKey("m"))]))
	if err != nil || u.mon.Champion().Version() != 1 || storedChampion != 1 {
		t.Errorf("after the failure the champion is v%d, the stored one v%d (%v); want v1 for both", u.mon.Champion().Version(), storedChampion, err)
	}
	var kept []uint64
	for _, k := range u.kept {
		kept = append(kept, k.version)
	}
	if versions, err := snapshotVersions(failing.store, "m"); err != nil || !slices.Equal(kept, versions) || !slices.Equal(kept, []uint64{1}) {
		t.Errorf("after the failure the retention index holds %v, the store %v (%v); want [1] for both", kept, versions, err)
	}
	if got := failing.NextOffsets("events"); !maps.Equal(got, map[int]int64{0: 3}) {
		t.Errorf("after the failure NextOffsets = %v, want the stored {0: 3}", got)
	}
	if n := u.hist.Entities(); n != 2 {
		t.Errorf("after the failure %d entities in memory, want 2: idle is evicted only once the eviction is stored", n)
	}
	for id, want := range map[string]bool{"old": true, "new-1": true, "new-2": false} {
		if waiting := waits(t, failing, id); waiting != want {
			t.Errorf("after the failure event %s waits: %v, want %v", id, waiting, want)
		}
	}
	if _, ok := stored[string(pendingKey("m", []byte("old")))]; !ok {
		t.Error("the failed checkpoint removed the expired event from the store")
	}

	fail = false
	if err := failing.Checkpoint(offsets); err != nil {
		t.Fatalf("the retry: %v", err)
	}
	if err := twin.Checkpoint(offsets); err != nil {
		t.Fatal(err)
	}
	retried, once := contents(t, failing.store), contents(t, twinStore)
	if !maps.Equal(retried, once) {
		for k := range maps.Keys(once) {
			if retried[k] != once[k] {
				t.Errorf("key %q differs after the retry", k)
			}
		}
		for k := range maps.Keys(retried) {
			if _, ok := once[k]; !ok {
				t.Errorf("key %q is stored after the retry, not by a checkpoint that never failed", k)
			}
		}
		t.Fatal("the retried checkpoint stored something else than a checkpoint that never failed")
	}
	got, want := failingRec.take(), twinRec.take()
	if len(got) != 1 || len(want) != 1 || got[0].Version() != 2 || want[0].Version() != 2 {
		t.Fatalf("the retry published %d snapshots, the twin %d; want v2 from each", len(got), len(want))
	}
	if !bytes.Equal(u.model.AppendState(nil), twin.states[0].model.AppendState(nil)) ||
		!bytes.Equal(u.mon.AppendState(nil), twin.states[0].mon.AppendState(nil)) ||
		u.hist.Entities() != 1 || u.pending.waiting != 1 || !maps.Equal(failing.NextOffsets("events"), map[int]int64{0: 6}) {
		t.Errorf("after the retry the engine differs from one whose checkpoint never failed")
	}
}

// TestAnAdminCommandWhoseCheckpointFailsIsAnsweredByTheRetry: a command
// that ran but whose checkpoint failed is not stored, so it is not answered
// (neither as done nor as failed, since the retry stores it); the retry
// answers it.
func TestAnAdminCommandWhoseCheckpointFailsIsAnsweredByTheRetry(t *testing.T) {
	fail := false
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	e, _ := newTestEngine(t, failingStore(t, &fail), cfg, nil)
	tickingClock(e)
	promoteEvery(t, e, 3)

	done := make(chan error, 1)
	go func() {
		v, err := e.Rollback(context.Background(), "fraud")
		if err == nil && v != 2 {
			err = errors.New("rolled back to another version than v2")
		}
		done <- err
	}()
	<-e.Wake()
	fail = true
	if err := e.Checkpoint(nil); !errors.Is(err, errDiskFull) {
		t.Fatalf("Checkpoint = %v, want the store's error", err)
	}
	select {
	case err := <-done:
		t.Fatalf("the rollback was answered (%v) by a checkpoint that did not store it", err)
	case <-time.After(50 * time.Millisecond):
	}
	fail = false
	checkpoint(t, e)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	assertPinned(t, e, 2)
}

// TestTheStoredMonitorIsTheOneInMemoryAfterEveryCheckpoint: a promotion
// restarts the champion/challenger comparisons in memory once it commits;
// the monitor the same checkpoint stored must already be the restarted one,
// or a crash right after a promotion restores comparisons against the old
// champion.
func TestTheStoredMonitorIsTheOneInMemoryAfterEveryCheckpoint(t *testing.T) {
	s, _ := openTestStore(t, t.TempDir())
	cfg := Config{PromoteInterval: time.Nanosecond, Models: []learner.ModelConfig{{
		Name: "m", Topic: "events", Drift: learner.DriftConfig{Detector: "adwin", Window: 50, MinExamples: 10},
	}}}
	e, _ := newTestEngine(t, s, cfg, nil)
	tickingClock(e)
	next := int64(0)
	for round := range 6 {
		n := 300
		if round == 0 {
			n = 3 // the first champion knows little: the live model soon beats it
		}
		for i := range n {
			x := float64((i*7+round)%10) / 10
			y := 0.0
			if x > 0.45 {
				y = 1
			}
			if err := e.Process("events", labeled([]features.Field{numField("x", x)}, y)); err != nil {
				t.Fatal(err)
			}
			next++
		}
		checkpoint(t, e, eventsOffset(0, next))
		t.Logf("checkpoint %d: champion v%d", round+1, e.states[0].mon.Champion().Version())
		stored := contents(t, s)[string(monitorKey("m"))]
		if inMemory := e.states[0].mon.AppendState(nil); stored != string(inMemory) {
			t.Fatalf("after checkpoint %d (champion v%d) the stored monitor differs from the one in memory", round+1, e.states[0].mon.Champion().Version())
		}
	}
}
