package learner

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

type entry struct {
	index int
	value float64
}

func sortedEntries(v *features.Vector) []entry {
	out := make([]entry, len(v.Index))
	for i := range v.Index {
		out[i] = entry{v.Index[i], v.Value[i]}
	}
	slices.SortFunc(out, func(a, b entry) int {
		if a.index != b.index {
			return a.index - b.index
		}
		return int(math.Copysign(1, a.value-b.value))
	})
	return out
}

// TestServingComputesExactlyTheFeaturesTrainingComputes sends the same event
// through the training path (the live model) and the serving path (a
// snapshot answering Predict, with the request's raw fields in another
// order, as a map gives them) and asserts identical feature vectors, for
// every kind of transform: scaled numbers, booleans, hashed categories,
// interactions, count and time windows (every aggregate), lags and
// differences, and target aggregates, for several entities.
//
// Both paths read one injected clock, so the comparison is deterministic:
// predictions happen exactly on a second, where the lower edge of the
// 100 s window falls on an earlier event and some fall on the start of a
// tumbling period, and just before and after one.
func TestServingComputesExactlyTheFeaturesTrainingComputes(t *testing.T) {
	cfg := ModelConfig{Name: "m", Task: Binary, Features: features.Config{
		Namespaces:   map[string][]string{"a": {"x", "colour"}, "b": {"y", "flag"}},
		Interactions: [][2]string{{"a", "b"}},
		Windows: []features.WindowConfig{
			{Field: "x", Size: 4, Aggs: []string{"count", "sum", "mean", "var", "std", "min", "max", "last", "ewma"}},
			{Field: "y", Size: 2},
			{Field: "x", Duration: 100 * time.Second, Aggs: []string{"count", "sum", "mean", "std", "min", "max"}},
			{Field: "y", Duration: 3 * time.Minute, Tumbling: true, Aggs: []string{"sum"}},
		},
		Lags:    []features.LagConfig{{Field: "x", Lags: []int{1, 3}, Diff: true}},
		Targets: []features.TargetConfig{{Size: 1}, {Size: 5}},
	}}
	m, err := NewModel(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	var now time.Time
	m.History().SetClock(func() time.Time { return now })
	rng := rand.New(rand.NewPCG(1, 2))
	event := func() ([]byte, []features.Field) {
		key := []byte{byte('k'), byte('0' + rng.IntN(3))}
		return key, []features.Field{
			{Name: []byte("x"), Kind: features.Number, Num: rng.NormFloat64()},
			{Name: []byte("y"), Kind: features.Number, Num: rng.Float64() * 10},
			{Name: []byte("colour"), Kind: features.String, Str: []byte{byte('a' + rng.IntN(4))}},
			{Name: []byte("flag"), Kind: features.Bool, Num: float64(rng.IntN(2))},
		}
	}
	// One event per second; events 9, 189 and 369 are at the start of a
	// 3-minute tumbling period (10:00, 10:03, 10:06).
	start := time.Date(2026, 11, 20, 9, 59, 51, 0, time.UTC)
	checked, withTimeWindow, periodStarts := 0, 0, 0
	for i := range 500 {
		key, fields := event()
		at := start.Add(time.Duration(i) * time.Second)
		if i%10 == 9 {
			for _, offset := range []time.Duration{0, -time.Nanosecond, 500 * time.Millisecond} {
				now = at.Add(offset)
				// Serving: a snapshot taken now, the fields reversed.
				snap := newSnapshot(m, snapshotMeta{reason: "test"})
				reversed := slices.Clone(fields)
				slices.Reverse(reversed)
				sc := snap.scratchBuffers()
				var err error
				if sc.fields, err = snap.hist.Derive(key, snap.hist.Now(), reversed, append(sc.fields[:0], reversed...)); err != nil {
					t.Fatal(err)
				}
				snap.tr.Transform(sc.fields, &sc.vec)
				served := sortedEntries(&sc.vec)
				// Training: what LearnEvent would compute for this event now.
				var trained features.Vector
				all, err := m.Derive(key, now, fields)
				if err != nil {
					t.Fatal(err)
				}
				m.tr.Transform(all, &trained)
				if want := sortedEntries(&trained); !slices.Equal(served, want) {
					t.Fatalf("event %d of entity %s at %v: serving computed %v, training %v", i, key, now, served, want)
				}
				if len(served) < 20 {
					t.Fatalf("event %d: only %d features; the test must exercise every transform", i, len(served))
				}
				if has(sc.fields, "x_t1m40s_count") {
					withTimeWindow++
				}
				if now.Truncate(3*time.Minute) == now {
					periodStarts++
					if has(sc.fields, "y_tt3m0s_sum") {
						t.Fatalf("event %d at %v, the start of a tumbling period: the period's sum is derived from earlier events", i, now)
					}
				}
				p, _, _ := snap.Score(key, reversed)
				// The live model's Predict derives the history features
				// itself, for an event now, as the snapshot does.
				if live := m.Predict(key, fields); math.Abs(p-live) > 1e-12 {
					t.Fatalf("event %d at %v: served score %v, live %v", i, now, p, live)
				}
				checked++
			}
		}
		if _, err := m.LearnEvent(key, at, fields, float64(rng.IntN(2))); err != nil {
			t.Fatal(err)
		}
	}
	if periodStarts != 3 {
		t.Fatalf("%d predictions at the start of a tumbling period, want 3", periodStarts)
	}
	if withTimeWindow < checked/2 {
		t.Fatalf("only %d of %d predictions had a non-empty time window", withTimeWindow, checked)
	}
	t.Logf("%d predictions compared, each with every transform (%d with a non-empty time window)", checked, withTimeWindow)
}

// has reports whether fields include one named name.
func has(fields []features.Field, name string) bool {
	return slices.ContainsFunc(fields, func(f features.Field) bool { return string(f.Name) == name })
}
