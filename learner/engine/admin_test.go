package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/prometheus/client_golang/prometheus"
)

// runCommand runs an admin command the way the consumer does: it waits for
// the engine's wake-up, then checkpoints (which runs the command and makes
// it durable), and returns the command's answer.
func runCommand(t *testing.T, e *Engine, command func(context.Context) (uint64, error)) (uint64, error) {
	t.Helper()
	type answer struct {
		version uint64
		err     error
	}
	done := make(chan answer, 1)
	go func() {
		v, err := command(context.Background())
		done <- answer{v, err}
	}()
	select {
	case <-e.Wake():
	case <-time.After(10 * time.Second):
		t.Fatal("the admin command never woke the engine")
	}
	checkpoint(t, e)
	select {
	case a := <-done:
		return a.version, a.err
	case <-time.After(10 * time.Second):
		t.Fatal("the admin command was not answered after a checkpoint")
	}
	return 0, nil
}

// promoteEvery learns a few examples and checkpoints, n times: with a tiny
// PromoteInterval and a ticking clock, each checkpoint is a periodic
// promotion.
func promoteEvery(t *testing.T, e *Engine, n int) {
	t.Helper()
	events := paymentEvents(21, 20*n)
	for i := range n {
		processAll(t, e, "events", events[i*20:(i+1)*20])
		checkpoint(t, e)
	}
}

func TestARollbackHoldsThroughPeriodicPromotionsAndARestartUntilReleased(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	rec := &snapshotRecorder{}
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	e, _ := newTestEngine(t, store, cfg, rec)
	tickingClock(e)
	promoteEvery(t, e, 3)
	rec.take()

	v, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Rollback(ctx, "fraud") })
	if err != nil || v != 2 {
		t.Fatalf("Rollback from v3 = v%d, %v; want v2", v, err)
	}
	if got := rec.take(); len(got) != 1 || got[0].Version() != 2 {
		t.Fatalf("the rollback published %d snapshots, want v2 alone", len(got))
	}
	promoteEvery(t, e, 3)
	if e.states[0].model.Version() != 6 {
		t.Fatalf("newest version %d after three more periodic checkpoints, want 6 (promotion keeps creating snapshots)", e.states[0].model.Version())
	}
	for _, s := range rec.take() {
		t.Errorf("v%d was published while the operator's v2 is pinned", s.Version())
	}
	assertPinned(t, e, 2)
	closeStore()

	reopened, _ := openTestStore(t, dir)
	e, _ = newTestEngine(t, reopened, cfg, rec)
	tickingClock(e)
	if got := rec.take(); len(got) != 1 || got[0].Version() != 2 {
		t.Fatalf("after a restart %d snapshots were published, want the pinned v2 alone", len(got))
	}
	promoteEvery(t, e, 2)
	for _, s := range rec.take() {
		t.Errorf("after a restart v%d was published while v2 is pinned", s.Version())
	}
	assertPinned(t, e, 2)

	v, err = runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Release(ctx, "fraud") })
	if err != nil || v != 8 {
		t.Fatalf("Release = v%d, %v; want the newest, v8", v, err)
	}
	if got := rec.take(); len(got) != 1 || got[0].Version() != 8 {
		t.Fatalf("the release published %d snapshots, want v8", len(got))
	}
	assertPinned(t, e, 0)
	promoteEvery(t, e, 1)
	if got := rec.take(); len(got) != 1 || got[0].Version() != 9 {
		t.Fatalf("after the release a periodic promotion published %d snapshots, want v9: automatic promotion resumed", len(got))
	}
}

// assertPinned checks that the engine's champion and its listing show
// version pinned (0: nothing pinned).
func assertPinned(t *testing.T, e *Engine, pinned uint64) {
	t.Helper()
	if pinned != 0 && e.states[0].mon.Champion().Version() != pinned {
		t.Errorf("champion v%d, want the pinned v%d", e.states[0].mon.Champion().Version(), pinned)
	}
	infos, err := e.Snapshots("fraud")
	if err != nil {
		t.Fatal(err)
	}
	var listed uint64
	for _, in := range infos {
		if in.Pinned {
			listed = in.Version
		}
	}
	if listed != pinned {
		t.Errorf("Snapshots lists v%d as pinned, want v%d", listed, pinned)
	}
}

func TestPromoteAndRollbackPinAndReleaseOfAnUnpinnedModelChangesNothing(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	e, _ := newTestEngine(t, store, cfg, nil)
	tickingClock(e)
	promoteEvery(t, e, 4)

	for _, tc := range []struct {
		name    string
		command func(context.Context) (uint64, error)
		want    uint64
		pinned  uint64
		err     error
	}{
		{"release of an unpinned model", func(ctx context.Context) (uint64, error) { return e.Release(ctx, "fraud") }, 4, 0, nil},
		{"promote v1", func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 1) }, 1, 1, nil},
		{"rollback from the oldest", func(ctx context.Context) (uint64, error) { return e.Rollback(ctx, "fraud") }, 0, 1, ErrNoPreviousVersion},
		{"promote a version never taken", func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 9) }, 0, 1, ErrSnapshotNotFound},
		{"promote v3", func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 3) }, 3, 3, nil},
		{"rollback from a pinned v3", func(ctx context.Context) (uint64, error) { return e.Rollback(ctx, "fraud") }, 2, 2, nil},
		{"promote of an unknown model", func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "spam", 1) }, 0, 2, ErrSnapshotNotFound},
		{"release", func(ctx context.Context) (uint64, error) { return e.Release(ctx, "fraud") }, 4, 0, nil},
	} {
		v, err := runCommand(t, e, tc.command)
		if v != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("%s = v%d, %v; want v%d, %v", tc.name, v, err, tc.want, tc.err)
		}
		assertPinned(t, e, tc.pinned)
	}
}

func TestAnAdminRequestWhoseContextEndedBeforePickupIsNeverRun(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	e, _ := newTestEngine(t, store, cfg, nil)
	tickingClock(e)
	promoteEvery(t, e, 3)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := e.Rollback(ctx, "fraud"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Rollback with no engine goroutine running = %v, want DeadlineExceeded", err)
	}
	// The engine's goroutine comes back (the broker returned, say).
	checkpoint(t, e)
	if champ := e.states[0].mon.Champion().Version(); champ != 3 {
		t.Fatalf("champion v%d: a rollback the client was told had failed ran later", champ)
	}
}

func TestListingSnapshotsWhilePromotionsAndRetentionRunNeverFails(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	cfg.Retain = 2
	cfg.RetainFor = time.Nanosecond // every promotion deletes a snapshot
	e, _ := newTestEngine(t, store, cfg, nil)
	tickingClock(e)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var lists int
	var failure error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			infos, err := e.Snapshots("fraud")
			if err != nil {
				failure = err
				return
			}
			for i := 1; i < len(infos); i++ {
				if infos[i].Version <= infos[i-1].Version || infos[i].Learned < infos[i-1].Learned {
					failure = errors.New("a listing is not one consistent, ordered view")
					return
				}
			}
			lists++
		}
	}()
	promoteEvery(t, e, 200)
	close(stop)
	wg.Wait()
	if failure != nil {
		t.Fatalf("ListSnapshots failed while promotions and retention ran (after %d good listings): %v", lists, failure)
	}
	t.Logf("%d listings during 200 promotions", lists)
}

// minuteClock makes e's clock stand still until advanced by a minute.
type minuteClock struct{ now time.Time }

func (c *minuteClock) install(e *Engine) {
	c.now = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return c.now }
	e.promoted = c.now
}

func (c *minuteClock) tick() { c.now = c.now.Add(time.Minute) }

func storedVersions(t *testing.T, e *Engine) []uint64 {
	t.Helper()
	infos, err := e.Snapshots("fraud")
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, in := range infos {
		out = append(out, in.Version)
	}
	stored, err := snapshotVersions(e.store, "fraud")
	if err != nil || !slices.Equal(stored, out) {
		t.Fatalf("stored snapshots %v, %v; listed %v: infos and snapshots must go together", stored, err, out)
	}
	return out
}

func versionRange(from, to uint64) []uint64 {
	var out []uint64
	for v := from; v <= to; v++ {
		out = append(out, v)
	}
	return out
}

func TestSnapshotsYoungerThanRetainForAreKeptBeyondTheCountAndAPinnedOneForever(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	cfg.Retain, cfg.RetainFor = 3, time.Hour
	e, _ := newTestEngine(t, store, cfg, nil)
	var clock minuteClock
	clock.install(e)
	events := paymentEvents(5, 20*130)
	promote := func() { // one periodic promotion a minute
		processAll(t, e, "events", events[:20])
		events = events[20:]
		checkpoint(t, e)
		clock.tick()
	}
	for range 5 {
		promote() // v1..v5 at minutes 0..4
	}
	if _, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 2) }); err != nil {
		t.Fatal(err)
	}
	clock.tick()
	for range 120 {
		promote() // v6..v125 at minutes 6..125
	}
	// At minute 125, an hour back reaches minute 66 (v66); v2 is pinned.
	want := append([]uint64{2}, versionRange(66, 125)...)
	if got := storedVersions(t, e); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want the pinned v2 and the last hour, v66..v125", got)
	}
	if _, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Release(ctx, "fraud") }); err != nil {
		t.Fatal(err)
	}
	clock.tick()
	promote() // v126 at minute 127
	if got := storedVersions(t, e); !slices.Equal(got, versionRange(68, 126)) {
		t.Fatalf("after the release kept %v, want v68..v126: v2 is neither pinned nor served any more", got)
	}
}

func TestNoModelKeepsMoreThanTheBoundWhateverRetainForSays(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	cfg.Retain, cfg.RetainFor = 3, 24*time.Hour
	e, _ := newTestEngine(t, store, cfg, nil)
	e.maxRetained = 10
	tickingClock(e)
	promoteEvery(t, e, 4)
	if _, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 1) }); err != nil {
		t.Fatal(err)
	}
	promoteEvery(t, e, 26) // v5..v30, all younger than a day
	want := append([]uint64{1}, versionRange(22, 30)...)
	if got := storedVersions(t, e); !slices.Equal(got, want) {
		t.Fatalf("kept %v, want the pinned v1 and the newest 9 (10 in all)", got)
	}
}

func TestSnapshotsStoredByAnOlderEddyAreListedAndItsMonitorLoads(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	e, _ := newTestEngine(t, store, cfg, nil)
	tickingClock(e)
	promoteEvery(t, e, 3)
	before, err := e.Snapshots("fraud")
	if err != nil || len(before) != 3 {
		t.Fatalf("Snapshots = %v, %v", before, err)
	}
	// Turn the store into what the previous release wrote: no snapshot
	// infos, a version-1 monitor (no pinned byte).
	batch := store.NewBatch()
	for _, in := range before {
		if err := batch.Delete(snapshotInfoKey("fraud", in.Version)); err != nil {
			t.Fatal(err)
		}
	}
	monitor, _, err := store.Get(monitorKey("fraud"))
	if err != nil {
		t.Fatal(err)
	}
	_, n := binary.Uvarint(monitor[1:])
	old := append([]byte{1}, monitor[1:1+n]...)
	old = append(old, monitor[2+n:]...)
	if err := batch.Set(monitorKey("fraud"), old); err != nil {
		t.Fatal(err)
	}
	if err := batch.Commit(); err != nil {
		t.Fatal(err)
	}
	closeStore()

	reopened, _ := openTestStore(t, dir)
	rec := &snapshotRecorder{}
	e, _ = newTestEngine(t, reopened, cfg, rec)
	if got := rec.take(); len(got) != 1 || got[0].Version() != 3 {
		t.Fatalf("reopening an older store published %d snapshots, want its champion v3", len(got))
	}
	after, err := e.Snapshots("fraud")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(after, before) {
		t.Fatalf("listed from an older store:\n%+v\nwant\n%+v", after, before)
	}
	if e.states[0].mon.Pinned() {
		t.Fatal("an older store's champion came back pinned")
	}
}

func TestRoutinePromotionsAreNotLoggedAtInfoButOperatorActionsAre(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	var logged bytes.Buffer
	e, err := New(cfg, store, func(*learner.Snapshot) {}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tickingClock(e)
	promoteEvery(t, e, 40)
	for range 10 { // as a model with a drift detector whose live model keeps beating the champion
		e.states[0].promotion = learner.ReasonChallenger
		promoteEvery(t, e, 1)
	}
	if _, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Rollback(ctx, "fraud") }); err != nil {
		t.Fatal(err)
	}
	promoteEvery(t, e, 5)
	if _, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Release(ctx, "fraud") }); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for line := range strings.Lines(logged.String()) {
		if !strings.Contains(line, "new model") {
			lines = append(lines, line)
		}
	}
	if len(lines) != 3 || !strings.Contains(lines[0], "reason=initial") || !strings.Contains(lines[1], "pinned") || !strings.Contains(lines[2], "released") {
		t.Fatalf("55 periodic and challenger promotions, a rollback and a release logged %d lines at info, want 3 (the first promotion, the pin, the release):\n%s", len(lines), strings.Join(lines, ""))
	}
}
