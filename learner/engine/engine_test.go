package engine

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

var discardLogger = slog.New(slog.DiscardHandler)

// openTestStore opens a real Pebble store in dir and closes it when the test
// ends, unless the test closed it first with the returned function (to
// reopen the same directory, as a restarted process would).
func openTestStore(tb testing.TB, dir string) (*store.Store, func()) {
	tb.Helper()
	return openTestStoreWith(tb, dir, nil)
}

// openTestStoreWith is openTestStore with store options.
func openTestStoreWith(tb testing.TB, dir string, opts *store.Options) (*store.Store, func()) {
	tb.Helper()
	store, err := store.Open(dir, discardLogger, opts)
	if err != nil {
		tb.Fatal(err)
	}
	var once sync.Once
	closeStore := func() {
		once.Do(func() {
			if err := store.Close(); err != nil {
				tb.Error(err)
			}
		})
	}
	tb.Cleanup(closeStore)
	return store, closeStore
}

// snapshotRecorder collects the snapshots an Engine publishes.
type snapshotRecorder struct{ published []*learner.Snapshot }

func (r *snapshotRecorder) publish(s *learner.Snapshot) { r.published = append(r.published, s) }

// take returns the snapshots published since the last call.
func (r *snapshotRecorder) take() []*learner.Snapshot {
	out := r.published
	r.published = nil
	return out
}

// newTestEngine builds an Engine on store with its own registry. A nil
// recorder discards published snapshots.
func newTestEngine(tb testing.TB, store *store.Store, cfg Config, rec *snapshotRecorder) (*Engine, *prometheus.Registry) {
	tb.Helper()
	if rec == nil {
		rec = &snapshotRecorder{}
	}
	reg := prometheus.NewRegistry()
	e, err := New(cfg, store, rec.publish, reg, discardLogger)
	if err != nil {
		tb.Fatal(err)
	}
	return e, reg
}

// tickingClock makes e's clock advance by a millisecond at every reading,
// so that a tiny PromoteInterval has always elapsed by the next checkpoint.
func tickingClock(e *Engine) {
	now := e.promoted
	e.now = func() time.Time {
		now = now.Add(time.Millisecond)
		return now
	}
}

func processAll(tb testing.TB, e *Engine, topic string, data []example) {
	tb.Helper()
	for i, ex := range data {
		if err := e.Process(topic, labeled(ex.Fields, ex.Y)); err != nil {
			tb.Fatalf("example %d: %v", i, err)
		}
	}
}

func checkpoint(tb testing.TB, e *Engine, offsets ...Offset) {
	tb.Helper()
	if err := e.Checkpoint(offsets); err != nil {
		tb.Fatal(err)
	}
}

func eventsOffset(partition int, next int64) Offset {
	return Offset{TopicPartition: TopicPartition{Topic: "events", Partition: partition}, Next: next}
}

// metricValue returns the value of the counter or gauge name with exactly
// the given labels, or 0 if the registry has no such series.
func metricValue(tb testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
		for _, m := range family.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	got := make(map[string]string)
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	return maps.Equal(got, want)
}

// probes are fixed inputs for comparing scores.
var probes = [][]features.Field{
	{numField("amount", 10), numField("age", 30), boolField("is_new", true), strField("country", "in"), strField("device", "web")},
	{numField("amount", 250), numField("age", 70), boolField("is_new", false), strField("country", "jp")},
	{strField("country", "unseen"), numField("amount", 0)},
	{},
}

// noKey adapts a snapshot's Score to events without an entity key.
func noKey(score func([]byte, []features.Field) (float64, int32, error)) func([]features.Field) (float64, int32) {
	return func(f []features.Field) (float64, int32) {
		p, label, err := score(nil, f)
		if err != nil {
			panic(err) // these models derive nothing from histories: unreachable
		}
		return p, label
	}
}

func scores(score func([]features.Field) (float64, int32)) []float64 {
	out := make([]float64, len(probes))
	for i, p := range probes {
		out[i], _ = score(p)
	}
	return out
}

var fraudConfig = Config{Models: []learner.ModelConfig{{Name: "fraud", Topic: "events", Task: learner.Binary}}}

func TestCheckpointThenReopenRestoresTheModelExactly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	events := paymentEvents(10, 500)
	// A window shorter than what is learned after the restart makes the
	// restored window's contents matter.
	cfg := fraudConfig
	cfg.RollingWindow = 64
	store, closeStore := openTestStore(t, dir)
	neverRestarted, _ := newTestEngine(t, store, cfg, nil)
	processAll(t, neverRestarted, "events", events[:300])
	checkpoint(t, neverRestarted, eventsOffset(0, 180), eventsOffset(2, 121))
	closeStore()

	reopened, _ := openTestStore(t, dir)
	restarted, _ := newTestEngine(t, reopened, cfg, nil)
	requireSameModel(t, restarted.Models()[0], neverRestarted.Models()[0])
	if got, want := restarted.NextOffsets("events"), map[int]int64{0: 180, 2: 121}; !maps.Equal(got, want) {
		t.Errorf("NextOffsets(events) = %v, want %v", got, want)
	}
	if got := restarted.NextOffsets("clicks"); len(got) != 0 {
		t.Errorf("NextOffsets(clicks) = %v, want none", got)
	}

	processAll(t, restarted, "events", events[300:])
	processAll(t, neverRestarted, "events", events[300:])
	requireSameModel(t, restarted.Models()[0], neverRestarted.Models()[0])
}

func TestExamplesAfterTheLastCheckpointAreNotStored(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	events := paymentEvents(11, 450)
	store, closeStore := openTestStore(t, dir)
	crashed, _ := newTestEngine(t, store, fraudConfig, nil)
	processAll(t, crashed, "events", events[:300])
	checkpoint(t, crashed, eventsOffset(0, 300))
	weights, intercept := crashed.Models()[0].Weights()
	processAll(t, crashed, "events", events[300:])
	closeStore() // a crash: no checkpoint for events[300:]

	reopened, _ := openTestStore(t, dir)
	restarted, _ := newTestEngine(t, reopened, fraudConfig, nil)
	m := restarted.Models()[0]
	if m.Learned() != 300 || m.Metrics().N != 300 {
		t.Fatalf("restored model learned %d and scored %d examples, want the 300 checkpointed", m.Learned(), m.Metrics().N)
	}
	if w, b := m.Weights(); !sameBits(w, weights) || b != intercept {
		t.Fatalf("restored weights are not the checkpointed ones")
	}
	if got := restarted.NextOffsets("events"); !maps.Equal(got, map[int]int64{0: 300}) {
		t.Fatalf("NextOffsets(events) = %v, want resumption at 300", got)
	}
	// Resuming at the stored offset learns every example exactly once.
	processAll(t, restarted, "events", events[300:])
	requireSameModel(t, m, crashed.Models()[0])
}

func TestTheFirstCheckpointAfterLearningPublishesVersionOne(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	rec := &snapshotRecorder{}
	cfg := fraudConfig
	cfg.PromoteInterval = time.Hour
	e, _ := newTestEngine(t, store, cfg, rec)
	events := paymentEvents(12, 100)

	checkpoint(t, e)
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("a model that learned nothing published %d snapshots", len(got))
	}
	processAll(t, e, "events", events[:50])
	checkpoint(t, e)
	got := rec.take()
	if len(got) != 1 {
		t.Fatalf("the first checkpoint after learning published %d snapshots, want 1 (well before the promote interval)", len(got))
	}
	s := got[0]
	if s.Model() != "fraud" || s.Version() != 1 || s.Learned() != 50 || s.Reason() != "initial" || s.TaskName() != "binary" {
		t.Errorf("published %s v%d (learned %d, reason %q, binary %v), want fraud v1 (learned 50, initial, binary)",
			s.Model(), s.Version(), s.Learned(), s.Reason(), s.TaskName() == "binary")
	}
	processAll(t, e, "events", events[50:])
	checkpoint(t, e)
	if got := rec.take(); len(got) != 0 {
		t.Errorf("a checkpoint before the promote interval published version %d", got[0].Version())
	}
	if versions, err := snapshotVersions(store, "fraud"); err != nil || !slices.Equal(versions, []uint64{1}) {
		t.Errorf("SnapshotVersions = %v, %v; want [1]", versions, err)
	}
}

func TestEachPromotionPublishesTheNextVersionAndRetiresTheOldest(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	rec := &snapshotRecorder{}
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	cfg.Retain = 3
	cfg.RetainFor = time.Nanosecond // retention by count alone
	e, reg := newTestEngine(t, store, cfg, rec)
	tickingClock(e)
	events := paymentEvents(13, 240)

	var newest *learner.Snapshot
	for v := uint64(1); v <= 6; v++ {
		processAll(t, e, "events", events[(v-1)*40:v*40])
		checkpoint(t, e, eventsOffset(0, int64(v*40)))
		got := rec.take()
		if len(got) != 1 || got[0].Version() != v || got[0].Learned() != v*40 {
			t.Fatalf("checkpoint %d published %d snapshots, want version %d having learned %d", v, len(got), v, v*40)
		}
		newest = got[0]
		loaded, err := e.Snapshot("fraud", v)
		if err != nil {
			t.Fatal(err)
		}
		if !sameBits(scores(noKey(loaded.Score)), scores(noKey(newest.Score))) {
			t.Errorf("stored version %d scores %v, published one %v", v, scores(noKey(loaded.Score)), scores(noKey(newest.Score)))
		}

		// Unlabeled events move the offset (so this checkpoint is written)
		// but teach the model nothing.
		for _, ex := range events[:5] {
			if err := e.Process("events", unlabeled(ex.Fields)); err != nil {
				t.Fatal(err)
			}
		}
		checkpoint(t, e, eventsOffset(0, int64(v*40+5)))
		if got := rec.take(); len(got) != 0 {
			t.Fatalf("a checkpoint with nothing learned published version %d", got[0].Version())
		}
	}

	if versions, err := snapshotVersions(store, "fraud"); err != nil || !slices.Equal(versions, []uint64{4, 5, 6}) {
		t.Errorf("SnapshotVersions with retain 3 = %v, %v; want [4 5 6]", versions, err)
	}
	for _, tc := range []struct {
		name    string
		model   string
		version uint64
	}{
		{"a retired version", "fraud", 1},
		{"a version never taken", "fraud", 7},
		{"an unknown model", "spam", 6},
	} {
		if _, err := e.Snapshot(tc.model, tc.version); !errors.Is(err, ErrSnapshotNotFound) {
			t.Errorf("Snapshot of %s = %v, want ErrSnapshotNotFound", tc.name, err)
		}
	}
	initial := metricValue(t, reg, "eddy_snapshots_promoted_total", map[string]string{"model": "fraud", "reason": "initial"})
	periodic := metricValue(t, reg, "eddy_snapshots_promoted_total", map[string]string{"model": "fraud", "reason": "periodic"})
	if initial != 1 || periodic != 5 {
		t.Errorf("eddy_snapshots_promoted_total: initial %v, periodic %v; want 1 and 5", initial, periodic)
	}
	closeStore()

	reopened, _ := openTestStore(t, dir)
	newEngine, _ := newTestEngine(t, reopened, cfg, rec)
	got := rec.take()
	if len(got) != 1 || got[0].Version() != 6 {
		t.Fatalf("reopening published %d snapshots, want version 6 alone", len(got))
	}
	if !sameBits(scores(noKey(got[0].Score)), scores(noKey(newest.Score))) {
		t.Errorf("version 6 after reopening scores %v, before %v", scores(noKey(got[0].Score)), scores(noKey(newest.Score)))
	}
	// The restored engine knows version 6 covers everything learned.
	checkpoint(t, newEngine)
	if got := rec.take(); len(got) != 0 {
		t.Errorf("a checkpoint right after reopening published version %d of an unchanged model", got[0].Version())
	}
}

func TestAnIdleCheckpointPromotesWhatWasLearnedBeforeIt(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	rec := &snapshotRecorder{}
	cfg := fraudConfig
	cfg.PromoteInterval = time.Minute
	e, reg := newTestEngine(t, store, cfg, rec)
	now := e.promoted
	e.now = func() time.Time { return now }
	events := paymentEvents(18, 100)
	written := func() float64 { return histogramCount(t, reg, "eddy_checkpoint_duration_seconds") }

	processAll(t, e, "events", events[:50])
	checkpoint(t, e, eventsOffset(0, 50))
	if got := rec.take(); len(got) != 1 || got[0].Version() != 1 {
		t.Fatalf("the first checkpoint published %d snapshots, want version 1", len(got))
	}
	processAll(t, e, "events", events[50:])
	checkpoint(t, e, eventsOffset(0, 100))
	if got := rec.take(); len(got) != 0 {
		t.Fatalf("a checkpoint within the promote interval published version %d", got[0].Version())
	}

	// Events stop. Ticks before the interval write and publish nothing.
	now = now.Add(30 * time.Second)
	before := written()
	checkpoint(t, e, eventsOffset(0, 100))
	if got := rec.take(); len(got) != 0 || written() != before {
		t.Fatalf("an idle tick within the interval published %d snapshots and wrote %v checkpoints", len(got), written()-before)
	}
	// The first tick after the interval promotes the last 50 examples.
	now = now.Add(30 * time.Second)
	checkpoint(t, e, eventsOffset(0, 100))
	got := rec.take()
	if len(got) != 1 || got[0].Version() != 2 || got[0].Learned() != 100 {
		t.Fatalf("the idle tick after the interval published %d snapshots, want version 2 having learned 100", len(got))
	}
	if versions, err := snapshotVersions(store, "fraud"); err != nil || !slices.Equal(versions, []uint64{1, 2}) {
		t.Errorf("SnapshotVersions = %v, %v; want [1 2]", versions, err)
	}
	now = now.Add(time.Hour)
	before = written()
	checkpoint(t, e, eventsOffset(0, 100))
	if got := rec.take(); len(got) != 0 || written() != before {
		t.Errorf("an idle tick with everything promoted published %d snapshots and wrote %v checkpoints", len(got), written()-before)
	}
}

func histogramCount(tb testing.TB, reg *prometheus.Registry, name string) float64 {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, family := range families {
		if family.GetName() == name {
			return float64(family.GetMetric()[0].GetHistogram().GetSampleCount())
		}
	}
	return 0
}

func TestAPublishedSnapshotNeverChanges(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	rec := &snapshotRecorder{}
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	e, _ := newTestEngine(t, store, cfg, rec)
	tickingClock(e)
	events := paymentEvents(14, 700)
	processAll(t, e, "events", events[:200])
	checkpoint(t, e)
	published := rec.take()[0]
	before, learned, metrics := scores(noKey(published.Score)), published.Learned(), published.Metrics()

	processAll(t, e, "events", events[200:])
	checkpoint(t, e)
	if got := rec.take(); len(got) != 1 || got[0].Version() != 2 {
		t.Fatalf("the second promotion published %d snapshots, want version 2", len(got))
	}

	if after := scores(noKey(published.Score)); !sameBits(after, before) {
		t.Errorf("version 1 scores changed from %v to %v after the model kept learning", before, after)
	}
	if published.Learned() != learned || published.Metrics() != metrics {
		t.Errorf("version 1 learned/metrics changed from %d/%+v to %d/%+v", learned, metrics, published.Learned(), published.Metrics())
	}
	if live := scores(func(f []features.Field) (float64, int32) { return e.Models()[0].Predict(nil, f), 0 }); sameBits(live, before) {
		t.Errorf("the live model scores %v like version 1: it did not keep learning, so this test proves nothing", live)
	}
}

// withFields returns a copy of fields with each of extra replacing the field
// of the same name or, absent one, appended.
func withFields(fields []features.Field, extra ...features.Field) []features.Field {
	out := slices.Clone(fields)
	for _, f := range extra {
		i := slices.IndexFunc(out, func(g features.Field) bool { return string(g.Name) == string(f.Name) })
		if i < 0 {
			out = append(out, f)
		} else {
			out[i] = f
		}
	}
	return out
}

type rejectionCase struct {
	name   string
	model  learner.ModelConfig
	before []example // learned first, all valid
	bad    example
	reason string
}

func rejectionCases() []rejectionCase {
	payments := paymentEvents(15, 50)
	// An absurd learning rate is the only way left to overflow a step once
	// inputs are bounded by features.MaxAbs.
	regression := learner.ModelConfig{Name: "fraud", Task: learner.Regression, Features: features.Config{Scaler: features.ScalerNone},
		Optimizer: learner.OptimizerConfig{LR: 1e160}}
	return []rejectionCase{
		{
			name:   "a binary label other than 0 or 1 is an invalid label",
			model:  learner.ModelConfig{Name: "fraud", Task: learner.Binary},
			before: payments,
			bad:    example{Fields: payments[0].Fields, Y: 2},
			reason: learner.ReasonInvalidLabel,
		},
		{
			name:   "a NaN label is non-finite",
			model:  learner.ModelConfig{Name: "fraud", Task: learner.Binary},
			before: payments,
			bad:    example{Fields: payments[0].Fields, Y: math.NaN()},
			reason: learner.ReasonNonFinite,
		},
		{
			name:   "an infinite regression label is non-finite",
			model:  learner.ModelConfig{Name: "fraud", Task: learner.Regression},
			before: payments,
			bad:    example{Fields: payments[0].Fields, Y: math.Inf(1)},
			reason: learner.ReasonNonFinite,
		},
		{
			// Squaring it in the variance would overflow.
			name:   "a value beyond ±1e150 is out of range",
			model:  learner.ModelConfig{Name: "fraud", Task: learner.Binary},
			before: payments,
			bad:    example{Fields: withFields(payments[0].Fields, numField("amount", 1e200)), Y: 1},
			reason: learner.ReasonOutOfRange,
		},
		{
			name:   "a value beyond ±1e150 in a new feature is out of range and takes no slot",
			model:  learner.ModelConfig{Name: "fraud", Task: learner.Binary},
			before: []example{{Fields: []features.Field{numField("x", 1)}, Y: 1}},
			bad:    example{Fields: []features.Field{numField("x", 2), numField("y", -1e151)}, Y: 0},
			reason: learner.ReasonOutOfRange,
		},
		{
			name:  "an unscaled value that would step a weight to infinity is refused",
			model: regression,
			before: []example{
				{Fields: []features.Field{numField("z", 1)}, Y: 2},
				{Fields: []features.Field{numField("z", 2)}, Y: 4},
				{Fields: []features.Field{numField("z", 3)}, Y: 6},
			},
			// lr 1e160 × |gradient| clipped at 1e12 × 1e150 overflows.
			bad:    example{Fields: []features.Field{numField("z", 1), numField("x", 1e150)}, Y: 1000},
			reason: learner.ReasonNonFiniteGradient,
		},
		{
			name:   "a numeric feature beyond max_numeric_features is too many",
			model:  learner.ModelConfig{Name: "fraud", Task: learner.Binary, Features: features.Config{MaxNumeric: 2}},
			before: []example{{Fields: []features.Field{numField("a", 1), numField("b", 2), strField("c", "x")}, Y: 1}},
			bad:    example{Fields: []features.Field{numField("a", 1), numField("b", 2), numField("c", 3)}, Y: 0},
			reason: learner.ReasonTooManyFeatures,
		},
	}
}

func TestInvalidExamplesAreRejectedAndCountedWithoutChangingTheModel(t *testing.T) {
	t.Parallel()
	for _, tc := range rejectionCases() {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := openTestStore(t, t.TempDir())
			e, reg := newTestEngine(t, store, Config{Models: []learner.ModelConfig{tc.model}}, nil)
			processAll(t, e, "events", tc.before)
			m := e.Models()[0]
			weights, intercept := m.Weights()
			metrics := m.Metrics()

			err := e.Process("events", labeled(tc.bad.Fields, tc.bad.Y))
			var rej *learner.RejectError
			if !errors.As(err, &rej) || rej.Reason != tc.reason {
				t.Fatalf("Process = %v, want a *learner.RejectError with reason %s", err, tc.reason)
			}
			if !errors.Is(err, learner.ErrInvalidExample) || !strings.Contains(err.Error(), "fraud") {
				t.Errorf("error %q does not match learner.ErrInvalidExample or does not name the model", err)
			}
			if got := m.Metrics(); got != metrics || m.Learned() != uint64(len(tc.before)) {
				t.Errorf("after the rejection: %d learned, metrics %+v; want %d learned, metrics %+v", m.Learned(), got, len(tc.before), metrics)
			}
			if w, b := m.Weights(); !sameWeights(w, weights) || b != intercept {
				t.Errorf("the rejected example changed the weights")
			}
			w0, _ := m.Weights()
			for i, w := range w0 {
				if !isFinite(w) {
					t.Fatalf("weight %d = %v", i, w)
				}
			}
			rejected := metricValue(t, reg, "eddy_examples_rejected_total", map[string]string{"model": "fraud", "reason": tc.reason})
			learned := metricValue(t, reg, "eddy_examples_learned_total", map[string]string{"model": "fraud"})
			if rejected != 1 || learned != float64(len(tc.before)) {
				t.Errorf("eddy_examples_rejected_total = %v, eddy_examples_learned_total = %v; want 1 and %d", rejected, learned, len(tc.before))
			}
		})
	}
}

func TestReopeningWithAChangedLayoutFailsNamingTheModel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	e, _ := newTestEngine(t, store, fraudConfig, nil)
	processAll(t, e, "events", paymentEvents(16, 100))
	checkpoint(t, e)
	closeStore()

	for _, tc := range []struct {
		name    string
		change  func(*learner.ModelConfig)
		setting string
	}{
		{"another task", func(c *learner.ModelConfig) { c.Task = learner.Regression }, "task"},
		{"other hash_bits", func(c *learner.ModelConfig) { c.Features.HashBits = 12 }, "hash_bits"},
		{"max_numeric_features below the slots in use", func(c *learner.ModelConfig) { c.Features.MaxNumeric = 1 }, "max_numeric_features"},
		{"another scaler", func(c *learner.ModelConfig) { c.Features.Scaler = features.ScalerNone }, "scaler"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := openTestStore(t, dir)
			cfg := Config{Models: slices.Clone(fraudConfig.Models)}
			tc.change(&cfg.Models[0])
			_, err := New(cfg, store, func(*learner.Snapshot) {}, prometheus.NewRegistry(), discardLogger)
			if err == nil {
				t.Fatal("NewEngine restored a model stored with another layout")
			}
			if msg := err.Error(); !strings.Contains(msg, "fraud") || !strings.Contains(msg, tc.setting) {
				t.Errorf("error %q should name the model and %s", msg, tc.setting)
			}
		})
	}
}

// TestRaisingMaxNumericFeaturesOnAStoredModel is the way out of a full
// model: restarted with more numeric slots, the model stored in Pebble and
// its served snapshot score every probe bitwise as before, and the event
// that was dead-lettered for too many features is learned.
func TestRaisingMaxNumericFeaturesOnAStoredModel(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	full := Config{Models: []learner.ModelConfig{{Name: "fraud", Topic: "events", Task: learner.Binary,
		Features: features.Config{MaxNumeric: 2}}}}
	events := make([]example, 300)
	for i := range events {
		events[i] = example{Fields: []features.Field{numField("a", float64(i%7)), numField("b", float64(i%5)),
			strField("shop", fmt.Sprint("s", i%9))}, Y: float64(i % 2)}
	}
	refused := labeled([]features.Field{numField("a", 1), numField("b", 2), numField("risk", 3)}, 1)
	store, closeStore := openTestStore(t, dir)
	rec := &snapshotRecorder{}
	e, _ := newTestEngine(t, store, full, rec)
	processAll(t, e, "events", events)
	var rej *learner.RejectError
	if err := e.Process("events", refused); !errors.As(err, &rej) || rej.Reason != learner.ReasonTooManyFeatures {
		t.Fatalf("a third numeric feature with max_numeric_features 2: %v, want too_many_features", err)
	}
	checkpoint(t, e, eventsOffset(0, 300))
	served := rec.take()
	if len(served) != 1 {
		t.Fatalf("%d snapshots published, want 1", len(served))
	}
	probe := func(score func([]byte, []features.Field) float64) []float64 {
		out := make([]float64, 40)
		for i := range out {
			out[i] = score(nil, events[i].Fields)
		}
		return out
	}
	snapshotScore := func(s *learner.Snapshot) func([]byte, []features.Field) float64 {
		return func(key []byte, f []features.Field) float64 { p, _, _ := s.Score(key, f); return p }
	}
	wantModel, wantServed := probe(e.Models()[0].Predict), probe(snapshotScore(served[0]))
	closeStore()

	raised := Config{Models: slices.Clone(full.Models)}
	raised.Models[0].Features.MaxNumeric = 64
	store, _ = openTestStore(t, dir)
	rec = &snapshotRecorder{}
	e, _ = newTestEngine(t, store, raised, rec)
	m := e.Models()[0]
	if !sameBits(probe(m.Predict), wantModel) {
		t.Errorf("the model with 64 numeric slots scores %v, with 2 it scored %v", probe(m.Predict), wantModel)
	}
	if got := rec.take(); len(got) != 1 || !sameBits(probe(snapshotScore(got[0])), wantServed) {
		t.Errorf("the restored champion does not score as the one served before the change")
	}
	if err := e.Process("events", refused); err != nil {
		t.Fatalf("the refused event after raising max_numeric_features: %v", err)
	}
	if m.NumericSlots() != 3 || m.Learned() != 301 {
		t.Errorf("%d numeric slots, %d learned; want 3 and 301", m.NumericSlots(), m.Learned())
	}
}

func TestModelsLearnOnlyFromTheirTopic(t *testing.T) {
	t.Parallel()
	store, _ := openTestStore(t, t.TempDir())
	e, reg := newTestEngine(t, store, Config{Models: []learner.ModelConfig{
		{Name: "fraud", Topic: "events", Task: learner.Binary},
		{Name: "clicks", Topic: "clicks", Task: learner.Binary},
		{Name: "spend", Topic: "events", Task: learner.Regression},
	}}, nil)
	if got := e.Topics(); !slices.Equal(got, []string{"events", "clicks"}) {
		t.Errorf("Topics = %v, want [events clicks]", got)
	}
	events := paymentEvents(17, 200)
	processAll(t, e, "events", events)
	for _, ex := range events[:10] {
		if err := e.Process("events", unlabeled(ex.Fields)); err != nil {
			t.Fatal(err)
		}
	}

	for _, tc := range []struct {
		model     string
		learned   uint64
		unlabeled float64
	}{
		{"fraud", 200, 10},
		{"clicks", 0, 0},
		{"spend", 200, 10},
	} {
		i := slices.IndexFunc(e.Models(), func(m *learner.Model) bool { return m.Name() == tc.model })
		m := e.Models()[i]
		if m.Learned() != tc.learned || m.Metrics().N != tc.learned {
			t.Errorf("%s learned %d and scored %d examples, want %d", tc.model, m.Learned(), m.Metrics().N, tc.learned)
		}
		w, b := m.Weights()
		moved := b != 0 || slices.ContainsFunc(w, func(w float64) bool { return w != 0 })
		if moved != (tc.learned > 0) {
			t.Errorf("%s: weights moved = %v, want %v", tc.model, moved, tc.learned > 0)
		}
		labels := map[string]string{"model": tc.model}
		if got := metricValue(t, reg, "eddy_examples_learned_total", labels); got != float64(tc.learned) {
			t.Errorf("eddy_examples_learned_total{model=%s} = %v, want %d", tc.model, got, tc.learned)
		}
		if got := metricValue(t, reg, "eddy_events_unlabeled_total", labels); got != tc.unlabeled {
			t.Errorf("eddy_events_unlabeled_total{model=%s} = %v, want %v", tc.model, got, tc.unlabeled)
		}
	}
}

func BenchmarkCheckpoint(b *testing.B) {
	store, _ := openTestStore(b, b.TempDir())
	cfg := Config{Models: []learner.ModelConfig{{Name: "bench", Topic: "events", Task: learner.Binary}}, PromoteInterval: time.Hour}
	e, _ := newTestEngine(b, store, cfg, nil)
	data := wideEvents(6, 1024, 8, 0)
	processAll(b, e, "events", data)
	checkpoint(b, e, eventsOffset(0, int64(len(data)))) // the first one also takes snapshot 1
	b.ReportAllocs()
	next := int64(len(data))
	for b.Loop() {
		ex := &data[next%int64(len(data))]
		if err := e.Process("events", labeled(ex.Fields, ex.Y)); err != nil {
			b.Fatal(err)
		}
		next++
		if err := e.Checkpoint([]Offset{eventsOffset(0, next)}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestRegressionLearnsALinearTargetWithinNoise(t *testing.T) {
	t.Parallel()
	// y = 3*x1 - 2*x2 + 5 plus Gaussian noise of standard deviation 0.05,
	// whose own mean absolute error is about 0.04. Tolerance: the rolling
	// MAE over the last 1000 examples must be below 0.2.
	const tolerance = 0.2
	store, _ := openTestStore(t, t.TempDir())
	e, _ := newTestEngine(t, store, Config{
		Models: []learner.ModelConfig{{Name: "price", Task: learner.Regression}},
	}, nil)
	rng := rand.New(rand.NewPCG(42, 42))
	fields := []features.Field{numField("x1", 0), numField("x2", 0)}
	for i := range 20000 {
		x1, x2 := rng.NormFloat64(), rng.Float64()*4-2
		fields[0].Num, fields[1].Num = x1, x2
		y := 3*x1 - 2*x2 + 5 + 0.05*rng.NormFloat64()
		if err := e.Process("events", labeled(fields, y)); err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
	}
	m := e.Models()[0]
	if got := m.Metrics().Rolling; !(got < tolerance) {
		t.Fatalf("rolling MAE after 20000 examples = %.4f, want < %.1f", got, tolerance)
	}
	if got := m.Intercept(); math.Abs(got-5) > 0.2 {
		t.Errorf("intercept = %.4f, want 5 ± 0.2 (both features are centred by the scaler)", got)
	}
}

// BenchmarkRestartWithAMillionEntities measures a restart on a store holding
// the history of 1,000,000 entities, to the first event learned (of a
// stored entity, whose history is then read back): New reads no history
// (run with -benchtime 1x; eddy bench-entities measures it at 10,000,000).
func BenchmarkRestartWithAMillionEntities(b *testing.B) {
	const entities = 1_000_000
	cfg := Config{Models: []learner.ModelConfig{{Name: "m", Topic: "events", Features: features.Config{
		Windows: []features.WindowConfig{{Field: "x", Size: 10, Aggs: []string{"mean", "std", "min", "max"}}},
		Lags:    []features.LagConfig{{Field: "x", Lags: []int{1}, Diff: true}},
		Targets: []features.TargetConfig{{Size: 1}, {Size: 10}},
	}}}}
	dir := b.TempDir()
	store, closeStore := openTestStore(b, dir)
	e, _ := newTestEngine(b, store, cfg, nil)
	key := make([]byte, 0, 16)
	fields := []features.Field{{Name: []byte("x"), Kind: features.Number, Num: 1}}
	for i := range entities {
		key = fmt.Appendf(key[:0], "user-%d", i)
		if err := e.Process("events", &Example{Offset: int64(i), Key: key, Fields: fields, Label: float64(i % 2), HasLabel: true}); err != nil {
			b.Fatal(err)
		}
		if i%100_000 == 99_999 {
			if err := e.Checkpoint([]Offset{{TopicPartition{"events", 0}, int64(i + 1)}}); err != nil {
				b.Fatal(err)
			}
		}
	}
	closeStore()
	b.ResetTimer()
	for b.Loop() {
		reopened, closeAgain := openTestStore(b, dir)
		restarted, _ := newTestEngine(b, reopened, cfg, nil)
		if n := restarted.states[0].hist.Entities(); n != 0 {
			b.Fatalf("restored %d entities into memory, want none before their events", n)
		}
		if err := restarted.Process("events", &Example{Offset: entities, Key: []byte("user-123456"), Fields: fields, Label: 1, HasLabel: true}); err != nil {
			b.Fatal(err)
		}
		if c := restarted.states[0].hist.Cache(); c.Misses != 1 {
			b.Fatalf("%d store reads for the first event, want 1", c.Misses)
		}
		b.StopTimer()
		closeAgain()
		b.StartTimer()
	}
}
