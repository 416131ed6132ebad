package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// handoffConfig has one model with an entity history (a lag) and a labels
// topic, so that an exported state carries weights, history and waiting
// events, and a second model on another topic: two units.
func handoffConfig() Config {
	return Config{Models: []learner.ModelConfig{
		{Name: "fraud", Topic: "events", LabelsTopic: "labels", LabelTTL: time.Hour, Features: features.Config{
			Key: "user", Lags: []features.LagConfig{{Field: "amount", Lags: []int{1}}}}},
		{Name: "churn", Topic: "other"},
	}, PromoteInterval: time.Nanosecond}
}

// feed processes events [from, to) of data on "events", each with a user
// key; every tenth event has no label but an ID, and gets it on "labels"
// five events later.
func feed(t *testing.T, e *Engine, data []example, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		ex := &Example{Partition: 0, Offset: int64(i), Fields: append(data[i].Fields, strField("user", fmt.Sprint("u", i%7))),
			Label: data[i].Y, HasLabel: i%10 != 3}
		if !ex.HasLabel {
			ex.ID = fmt.Appendf(nil, "e%d", i)
		}
		if err := e.Process("events", ex); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if j := i - 5; j >= 0 && j%10 == 3 {
			if err := e.Label("labels", fmt.Appendf(nil, "e%d", j), data[j].Y); err != nil {
				t.Fatalf("label %d: %v", j, err)
			}
		}
	}
}

func TestAUnitMovesToAnotherEngineAndContinuesExactlyWhereItStood(t *testing.T) {
	data := paymentEvents(11, 600)
	cfg := handoffConfig()

	// The reference: one engine learns all 600 events, checkpointing once
	// on the way.
	refStore, _ := openTestStore(t, t.TempDir())
	ref, _ := newTestEngine(t, refStore, cfg, nil)
	feed(t, ref, data, 0, 296)
	checkpoint(t, ref, eventsOffset(0, 296)) // where A hands over: same snapshots
	feed(t, ref, data, 296, 600)
	checkpoint(t, ref, eventsOffset(0, 600))

	// A learns the first 296 and hands the unit over; B, with its own empty
	// disk, continues.
	aStore, _ := openTestStore(t, t.TempDir())
	a, _ := newTestEngine(t, aStore, cfg, nil)
	if err := a.Acquire("fraud", nil, 3); err != nil {
		t.Fatal(err)
	}
	feed(t, a, data, 0, 296)
	checkpoint(t, a, eventsOffset(0, 296))
	st, err := a.Export("fraud")
	if err != nil {
		t.Fatal(err)
	}
	if st.Epoch != 3 || st.Seq == 0 {
		t.Fatalf("exported epoch %d seq %d, want epoch 3 and a sequence above 0", st.Epoch, st.Seq)
	}
	if err := a.Relinquish("fraud"); err != nil {
		t.Fatal(err)
	}
	if err := a.Process("events", labeled(data[0].Fields, 1)); err != nil || a.Stats().Models[0].Model != "churn" {
		t.Fatalf("after Relinquish the engine still holds fraud (stats %+v, err %v)", a.Stats().Models, err)
	}
	if _, err := a.Export("fraud"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("Export of a released unit: %v, want ErrNotHeld", err)
	}

	bStore, _ := openTestStore(t, t.TempDir())
	b, _ := newTestEngine(t, bStore, cfg, nil)
	if err := b.Acquire("fraud", st, 4); err != nil {
		t.Fatal(err)
	}
	if next := b.NextOffsets("events")[0]; next != 296 {
		t.Fatalf("the new owner resumes at offset %d, want 296 (the state's own offset)", next)
	}
	if n := b.states[0].pending.waiting; n == 0 {
		t.Fatal("the waiting events did not move with the unit")
	}
	feed(t, b, data, 296, 600)
	checkpoint(t, b, eventsOffset(0, 600))
	requireSameModel(t, b.Models()[0], ref.Models()[0])
	if got, want := b.states[0].mon.AppendState(nil), ref.states[0].mon.AppendState(nil); string(got) != string(want) {
		t.Error("the monitor differs from the uninterrupted run's")
	}
	if b.Epoch("fraud") != 4 || b.Epoch("churn") != 0 {
		t.Errorf("epochs fraud %d churn %d, want 4 (acquired) and 0 (never acquired)", b.Epoch("fraud"), b.Epoch("churn"))
	}
}

func TestAcquireKeepsTheNewerOfTheLocalAndTheExportedState(t *testing.T) {
	data := paymentEvents(12, 400)
	cfg := handoffConfig()
	dir := t.TempDir()
	s, closeStore := openTestStore(t, dir)
	e, _ := newTestEngine(t, s, cfg, nil)
	if err := e.Acquire("fraud", nil, 1); err != nil {
		t.Fatal(err)
	}
	feed(t, e, data, 0, 200)
	checkpoint(t, e, eventsOffset(0, 200))
	older, err := e.Export("fraud")
	if err != nil {
		t.Fatal(err)
	}
	// An operator's copy of the data directory, taken now (with the store
	// closed, as a file copy needs).
	closeStore()
	copied := t.TempDir()
	if err := os.CopyFS(copied, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	s, closeStore = openTestStore(t, dir)
	e, _ = newTestEngine(t, s, cfg, nil)
	if err := e.Acquire("fraud", older, 1); err != nil {
		t.Fatal(err)
	}
	feed(t, e, data, 200, 400)
	checkpoint(t, e, eventsOffset(0, 400))
	newer, err := e.Export("fraud")
	if err != nil {
		t.Fatal(err)
	}
	closeStore()

	// A restart whose local state is newer than the exported one keeps it.
	s, closeStore = openTestStore(t, dir)
	e, _ = newTestEngine(t, s, cfg, nil)
	if err := e.Acquire("fraud", older, 2); err != nil {
		t.Fatal(err)
	}
	if got := e.NextOffsets("events")[0]; got != 400 || e.Models()[0].Learned() != newer.learnedOf(t, cfg) {
		t.Fatalf("with a newer local state: offset %d, learned %d; want 400 and the local state", got, e.Models()[0].Learned())
	}
	closeStore()

	// A local state rolled back to an older copy loses to the export: the
	// model resumes from the export's own offsets, nothing skipped.
	rs, _ := openTestStore(t, copied)
	re, _ := newTestEngine(t, rs, cfg, nil)
	if got := re.NextOffsets("events")[0]; got != 200 {
		t.Fatalf("the copy holds offset %d, want 200", got)
	}
	if err := re.Acquire("fraud", newer, 5); err != nil {
		t.Fatal(err)
	}
	if got := re.NextOffsets("events")[0]; got != 400 {
		t.Fatalf("after a rollback of local state the model resumes at %d, want the export's 400", got)
	}
	// An export of an older epoch never replaces a newer owner's state,
	// however many checkpoints it made (a zombie's).
	zombie := &UnitState{Epoch: 4, Seq: 1 << 40, Data: older.Data}
	if err := re.Acquire("fraud", zombie, 6); err != nil {
		t.Fatal(err)
	}
	if got := re.NextOffsets("events")[0]; got != 400 {
		t.Fatalf("a zombie's export of epoch 4 replaced the state of epoch 5: offset %d", got)
	}
}

// learnedOf decodes the learned count of the first model in s.
func (s *UnitState) learnedOf(t *testing.T, cfg Config) uint64 {
	t.Helper()
	st, _ := openTestStore(t, t.TempDir())
	e, _ := newTestEngine(t, st, cfg, nil)
	if err := e.Acquire("fraud", s, s.Epoch+1); err != nil {
		t.Fatal(err)
	}
	return e.Models()[0].Learned()
}

func TestUnitsGroupModelsThatShareATopic(t *testing.T) {
	models := []learner.ModelConfig{
		{Name: "a", Topic: "t1"},
		{Name: "b", Topic: "t2", LabelsTopic: "l"},
		{Name: "c", Topic: "t3"},
		{Name: "d", Topic: "t1", LabelsTopic: "l"}, // joins a and b
	}
	for i := range models {
		models[i].EnsureDefaults()
	}
	parts, err := unitsOf(models)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range parts {
		names = append(names, fmt.Sprintf("%s%v", p.Name, p.Topics))
	}
	if got, want := fmt.Sprint(names), "[a+b+d[t1 t2 l] c[t3]]"; got != want {
		t.Fatalf("units %s, want %s", got, want)
	}
	changed := append([]learner.ModelConfig(nil), models...)
	changed[2].Epsilon = 0.5
	again, _ := unitsOf(changed)
	if again[0].Hash != parts[0].Hash || again[1].Hash == parts[1].Hash {
		t.Errorf("hashes %s %s vs %s %s: want the first equal and the second changed with c's learning rate", again[0].Hash, again[1].Hash, parts[0].Hash, parts[1].Hash)
	}
}

func TestAnExportCarriesTheServedAndTheNewestSnapshotsOnly(t *testing.T) {
	cfg := Config{Models: []learner.ModelConfig{{Name: "m", Topic: "events"}}, PromoteInterval: time.Nanosecond, Retain: 100}
	s, _ := openTestStore(t, t.TempDir())
	e, _ := newTestEngine(t, s, cfg, nil)
	tickingClock(e)
	data := paymentEvents(13, 40*10)
	for round := range 40 {
		processAll(t, e, "events", data[round*10:round*10+10])
		checkpoint(t, e, eventsOffset(0, int64(round*10+10)))
	}
	if _, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "m", 3) }); err != nil {
		t.Fatal(err)
	}
	st, err := e.Export("m")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := openTestStore(t, t.TempDir())
	b, _ := newTestEngine(t, other, cfg, nil)
	if err := b.Acquire("m", st, st.Epoch+1); err != nil {
		t.Fatal(err)
	}
	infos, err := b.Snapshots("m")
	if err != nil {
		t.Fatal(err)
	}
	versions, _ := snapshotVersions(other, "m")
	if len(infos) != ExportedSnapshots+1 || len(versions) != len(infos) || versions[0] != 3 || versions[len(versions)-1] != 40 {
		t.Fatalf("the new owner holds snapshots %v (infos %d), want the pinned v3 and the newest %d, up to v40", versions, len(infos), ExportedSnapshots)
	}
	if c := b.states[0].mon.Champion(); c == nil || c.Version() != 3 || !b.states[0].mon.Pinned() {
		t.Fatalf("the new owner serves %v, want the pinned v3", c)
	}
}

// TestAResetModelStartsAfreshAndSupersedesTheExportedState resets a model
// that learned and exported: its local state is gone at once, and when it
// is acquired with the exported state it keeps the fresh one, under an
// epoch above the export's, so that the fresh state wins everywhere from
// then on; the other unit is untouched. Resetting one model of a unit
// alone is refused, naming its partners; and a reset that meets another
// owner (Follow) is dropped, not applied later.
func TestAResetModelStartsAfreshAndSupersedesTheExportedState(t *testing.T) {
	data := paymentEvents(13, 300)
	cfg := handoffConfig()
	dir := t.TempDir()
	s, closeStore := openTestStore(t, dir)
	e, _ := newTestEngine(t, s, cfg, nil)
	for _, unit := range []string{"fraud", "churn"} {
		if err := e.Acquire(unit, nil, 3); err != nil {
			t.Fatal(err)
		}
	}
	feed(t, e, data, 0, 300)
	for i := range 50 {
		if err := e.Process("other", labeled(data[i].Fields, data[i].Y)); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint(t, e, eventsOffset(0, 300), Offset{TopicPartition: TopicPartition{Topic: "other"}, Next: 50})
	exported, err := e.Export("fraud")
	if err != nil {
		t.Fatal(err)
	}
	closeStore()

	s, closeStore = openTestStore(t, dir)
	e, _ = newTestEngine(t, s, cfg, nil)
	if err := e.Reset([]string{"nosuch"}); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("reset of an unknown model: %v", err)
	}
	if err := e.Reset([]string{"fraud"}); err != nil {
		t.Fatal(err)
	}
	if got := e.NextOffsets("events"); len(got) != 0 {
		t.Fatalf("after the reset the model still has offsets %v", got)
	}
	if err := e.Acquire("fraud", exported, 4); err != nil {
		t.Fatal(err)
	}
	if learned := e.Models()[0].Learned(); learned != 0 || len(e.NextOffsets("events")) != 0 {
		t.Fatalf("the reset model acquired with an exported state has learned %d and offsets %v; want a fresh model", learned, e.NextOffsets("events"))
	}
	if got := e.Epoch("fraud"); got <= exported.Epoch {
		t.Fatalf("the reset model's epoch is %d, not above the exported state's %d", got, exported.Epoch)
	}
	if got := e.NextOffsets("other")[0]; got != 50 {
		t.Fatalf("the other unit's offset is %d after the reset, want 50", got)
	}
	feed(t, e, data, 0, 100)
	checkpoint(t, e, eventsOffset(0, 100))
	closeStore()
	// The reset is done: a restart acquiring with the old export keeps the
	// fresh state, which is the newer one now.
	s, closeStore = openTestStore(t, dir)
	e, _ = newTestEngine(t, s, cfg, nil)
	if err := e.Acquire("fraud", exported, 5); err != nil {
		t.Fatal(err)
	}
	if got := e.NextOffsets("events")[0]; got != 100 {
		t.Fatalf("after the reset and a restart the model resumes at %d, want 100", got)
	}
	closeStore()

	shared := Config{Models: []learner.ModelConfig{{Name: "a", Topic: "t"}, {Name: "b", Topic: "t"}}}
	s2, _ := openTestStore(t, t.TempDir())
	e2, _ := newTestEngine(t, s2, shared, nil)
	if err := e2.Reset([]string{"a"}); err == nil || !strings.Contains(err.Error(), "a, b") {
		t.Fatalf("reset of one model of a unit alone: %v, want a refusal naming both", err)
	}

	s3, _ := openTestStore(t, t.TempDir())
	e3, _ := newTestEngine(t, s3, cfg, nil)
	if err := e3.Reset([]string{"fraud"}); err != nil {
		t.Fatal(err)
	}
	if err := e3.Follow("fraud", exported); err != nil {
		t.Fatal(err)
	}
	if err := e3.Acquire("fraud", exported, 6); err != nil {
		t.Fatal(err)
	}
	if got := e3.NextOffsets("events")[0]; got != 300 {
		t.Fatalf("a reset dropped on meeting another owner was applied later: offset %d, want the export's 300", got)
	}
}
