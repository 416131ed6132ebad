package engine

import (
	"bytes"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// TestAKeyFieldModelNeverWritesIntoTheMessageKey runs three history models
// on one topic: the first and the third take the entity from the message
// key, the second from the "user" field. The second model's key must not be
// written into the message's bytes, so the third stores its history under
// the message key exactly and the message is left as it arrived.
func TestAKeyFieldModelNeverWritesIntoTheMessageKey(t *testing.T) {
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	lag := []features.LagConfig{{Field: "x", Lags: []int{1}}}
	cfg := Config{Models: []learner.ModelConfig{
		{Name: "by-message-1", Topic: "events", Features: features.Config{Lags: lag}},
		{Name: "by-user", Topic: "events", Features: features.Config{Key: "user", Lags: lag}},
		{Name: "by-message-2", Topic: "events", Features: features.Config{Lags: lag}},
	}}
	e, _ := newTestEngine(t, store, cfg, nil)
	value := []byte(`{"user":"bob","x":7}`) // what the fields alias in production
	messageKey := []byte("AAAAAAAA")
	fields := []features.Field{
		{Name: value[2:6], Kind: features.String, Str: value[9:12]},
		{Name: value[15:16], Kind: features.Number, Num: 7},
	}
	keyBefore, valueBefore := bytes.Clone(messageKey), bytes.Clone(value)
	if err := e.Process("events", &Example{Key: messageKey, Fields: fields, Label: 1, HasLabel: true}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(messageKey, keyBefore) || !bytes.Equal(value, valueBefore) {
		t.Errorf("the message changed: key %q (was %q), value %q (was %q)", messageKey, keyBefore, value, valueBefore)
	}
	checkpoint(t, e, eventsOffset(0, 1))
	closeStore()

	reopened, _ := openTestStore(t, dir)
	e2, _ := newTestEngine(t, reopened, cfg, nil)
	for i, want := range []string{"AAAAAAAA", "bob", "AAAAAAAA"} {
		h := e2.states[i].hist
		got, err := h.Derive([]byte(want), time.Time{}, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		stored := 0
		if err := reopened.Scan(historyKey(cfg.Models[i].Name, nil), func(_, _ []byte) error { stored++; return nil }); err != nil {
			t.Fatal(err)
		}
		if stored != 1 || len(got) != 1 || got[0].Num != 7 {
			t.Errorf("model %s after a restart: %d entities stored, entity %q derives %v; want exactly that entity with x_lag1 = 7",
				cfg.Models[i].Name, stored, want, got)
		}
	}
}

// metricType returns the type of the metric family name, or "" if absent.
func metricType(tb testing.TB, reg *prometheus.Registry, name string) string {
	tb.Helper()
	families, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			return f.GetType().String()
		}
	}
	return ""
}

// timeWindowEngine is an engine with one model of a one-minute time window
// whose clock reads *now.
func timeWindowEngine(t *testing.T, now *time.Time) (*Engine, *prometheus.Registry) {
	t.Helper()
	store, _ := openTestStore(t, t.TempDir())
	cfg := Config{Models: []learner.ModelConfig{{Name: "m", Topic: "events", Features: features.Config{
		Windows: []features.WindowConfig{{Field: "x", Duration: time.Minute, Aggs: []string{"count"}}}}}}}
	e, reg := newTestEngine(t, store, cfg, nil)
	e.now = func() time.Time { return *now }
	return e, reg
}

func sendAt(t *testing.T, e *Engine, at time.Time, offset int64) {
	t.Helper()
	ex := &Example{Offset: offset, Key: []byte("k"), ID: []byte("id"), Time: at, Fields: []features.Field{{Name: []byte("x"), Kind: features.Number, Num: 1}}, Label: 1, HasLabel: true}
	if err := e.Process("events", ex); err != nil {
		t.Fatal(err)
	}
}

func TestLateEventsAreCountedByACounterThatOnlyGrows(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	e, reg := timeWindowEngine(t, &now)
	const name = "eddy_history_late_events_total"
	sendAt(t, e, now, 0)
	sendAt(t, e, now.Add(-time.Minute), 1) // behind the watermark: late
	checkpoint(t, e, eventsOffset(0, 2))
	if typ := metricType(t, reg, name); typ != "COUNTER" {
		t.Fatalf("%s is a %q, want a COUNTER", name, typ)
	}
	sendAt(t, e, now.Add(-2*time.Minute), 2)
	sendAt(t, e, now.Add(-3*time.Minute), 3)
	checkpoint(t, e, eventsOffset(0, 4))
	checkpoint(t, e, eventsOffset(0, 4)) // nothing new: the count stays
	if got := metricValue(t, reg, name, map[string]string{"model": "m"}); got != 3 {
		t.Fatalf("%s = %v, want 3", name, got)
	}
	if typ := metricType(t, reg, "eddy_history_late_events"); typ != "" {
		t.Errorf("the old gauge eddy_history_late_events is still exported")
	}
}

// TestAFarFutureEventIsCountedAndLeavesTheEntityOnTime: one event stamped a
// year ahead of the engine's clock is counted as a future event, and the
// entity's next events, on time, are neither late nor missing from its
// window.
func TestAFarFutureEventIsCountedAndLeavesTheEntityOnTime(t *testing.T) {
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	e, reg := timeWindowEngine(t, &now)
	sendAt(t, e, now, 0)
	sendAt(t, e, now.Add(365*24*time.Hour), 1)
	now = now.Add(time.Second)
	sendAt(t, e, now, 2)
	checkpoint(t, e, eventsOffset(0, 3))
	labels := map[string]string{"model": "m"}
	if got := metricValue(t, reg, "eddy_history_future_events_total", labels); got != 1 {
		t.Errorf("eddy_history_future_events_total = %v, want 1", got)
	}
	if got := metricValue(t, reg, "eddy_history_late_events_total", labels); got != 0 {
		t.Errorf("eddy_history_late_events_total = %v, want 0: the future event made on-time events late", got)
	}
	got, err := e.states[0].hist.Derive([]byte("k"), now.Add(time.Second), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Num != 2 {
		t.Errorf("the entity's window: %v, want x_t1m0s_count = 2 (the two on-time events)", got)
	}
}

// TestTheLiveModelPredictsWhatTheServedSnapshotScores: for a model whose
// features include windows and lags of the entity named by a field, the
// live model's Predict (what a Go program embedding the model calls) and
// the published snapshot's Score (what the serving endpoint answers) agree
// for every entity, right after the checkpoint that took the snapshot:
// both derive the history features as learning does, from the same
// history, at the same time.
func TestTheLiveModelPredictsWhatTheServedSnapshotScores(t *testing.T) {
	store, _ := openTestStore(t, t.TempDir())
	cfg := Config{Models: []learner.ModelConfig{{Name: "m", Topic: "events", Features: features.Config{
		Key: "user",
		Windows: []features.WindowConfig{
			{Field: "amount", Size: 3, Aggs: []string{"mean", "max"}},
			{Field: "amount", Duration: time.Minute, Aggs: []string{"count", "sum"}},
		},
		Lags: []features.LagConfig{{Field: "age", Lags: []int{1}, Diff: true}},
	}}}}
	rec := &snapshotRecorder{}
	e, _ := newTestEngine(t, store, cfg, rec)
	clock := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	e.now = func() time.Time { return clock }
	users := []string{"ann", "bob", "cem", "dan"}
	for i, ex := range paymentEvents(43, 800) {
		clock = clock.Add(time.Second)
		fields := append([]features.Field{strField("user", users[i%len(users)])}, ex.Fields...)
		if err := e.Process("events", &Example{Time: clock, Fields: fields, Label: ex.Y, HasLabel: true}); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint(t, e, eventsOffset(0, 800))
	published := rec.take()
	if len(published) != 1 {
		t.Fatalf("%d snapshots published, want 1", len(published))
	}
	served, live := published[0], e.Models()[0]
	clock = clock.Add(30 * time.Second)
	var scores []float64
	for _, user := range users {
		probe := []features.Field{strField("user", user), numField("amount", 40), numField("age", 30), strField("country", "de")}
		want, _, _ := served.Score(nil, probe)
		if got := live.Predict(nil, probe); math.Abs(got-want) > 1e-12 {
			t.Errorf("user %s: Predict %v, the served snapshot's Score %v", user, got, want)
		}
		scores = append(scores, want)
	}
	if slices.Min(scores) == slices.Max(scores) {
		t.Errorf("every user scores %v on the same fields: the history features were not derived", scores[0])
	}
}
