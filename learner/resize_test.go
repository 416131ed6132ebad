package learner

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

// TestRaisingMaxNumericFeaturesOnAStoredModel fills a model's numeric
// slots with a flood of feature names, so that an event with a new feature
// is refused, then restores its state with four times the slots: every
// prediction (numeric, hashed and crossed features) is bitwise the one
// before, and the refused event is learned. Binary with SGD and multiclass
// with Adam (three columns per weight).
func TestRaisingMaxNumericFeaturesOnAStoredModel(t *testing.T) {
	layout := features.Config{MaxNumeric: 64, HashBits: 10,
		Namespaces:   map[string][]string{"user": {"country"}, "item": {"shop"}},
		Interactions: [][2]string{{"user", "item"}}}
	event := func(i int, extra string) []features.Field {
		f := []features.Field{
			{Name: []byte("amount"), Kind: features.Number, Num: float64(i%13) * 1.5},
			{Name: []byte("country"), Kind: features.String, Str: []byte([]string{"DE", "FR", "US"}[i%3])},
			{Name: []byte("shop"), Kind: features.String, Str: []byte("s" + strconv.Itoa(i%7))},
		}
		if extra != "" {
			f = append(f, features.Field{Name: []byte(extra), Kind: features.Number, Num: 1})
		}
		return f
	}
	for _, tc := range []struct {
		name string
		mc   ModelConfig
		y    func(i int) float64
	}{
		{"binary, sgd", ModelConfig{Task: Binary}, func(i int) float64 { return float64(i % 2) }},
		{"multiclass, adam", ModelConfig{Task: Multiclass, Optimizer: OptimizerConfig{Kind: Adam}}, func(i int) float64 { return float64(i % 3) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mc := tc.mc
			mc.Name, mc.Features = "m", layout
			m, err := NewModel(mc, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 200 { // the flood: 63 new names fit beside amount
				if _, err := m.LearnEvent(nil, time.Time{}, event(i, "junk"+strconv.Itoa(i)), tc.y(i)); err != nil && i < 63 {
					t.Fatalf("event %d: %v", i, err)
				}
			}
			if m.NumericSlots() != 64 {
				t.Fatalf("%d numeric slots used, want all 64", m.NumericSlots())
			}
			refused := event(1, "new_signal")
			if _, err := m.LearnEvent(nil, time.Time{}, refused, 1); !isReject(err, ReasonTooManyFeatures) {
				t.Fatalf("a new feature in a full model: %v, want a too_many_features rejection", err)
			}
			before := make([]Prediction, 50)
			for i := range before {
				before[i] = m.PredictDerived(event(i, "junk"+strconv.Itoa(i)))
			}

			raised := mc
			raised.Features.MaxNumeric = 256
			r, _, err := DecodeModel(raised, 0, m.AppendState(nil))
			if err != nil {
				t.Fatal(err)
			}
			if r.StoredMaxNumeric() != 64 || r.Config().Features.MaxNumeric != 256 {
				t.Fatalf("stored %d, configured %d: want 64 and 256", r.StoredMaxNumeric(), r.Config().Features.MaxNumeric)
			}
			for i, want := range before {
				if got := r.PredictDerived(event(i, "junk"+strconv.Itoa(i))); math.Float64bits(got.Score) != math.Float64bits(want.Score) || got.Output != want.Output {
					t.Fatalf("event %d: %+v after raising max_numeric_features, %+v before", i, got, want)
				}
			}
			snap := newSnapshot(r, snapshotMeta{reason: "test"}) // what serving scores with
			for i, want := range before {
				if got, _, _ := snap.Score(nil, event(i, "junk"+strconv.Itoa(i))); math.Float64bits(got) != math.Float64bits(want.Score) {
					t.Fatalf("event %d: a snapshot of the resized model scores %v, the model before %v", i, got, want.Score)
				}
			}
			if _, err := r.LearnEvent(nil, time.Time{}, refused, 1); err != nil {
				t.Fatalf("the refused event after raising max_numeric_features: %v", err)
			}
			again, _, err := DecodeModel(raised, 0, r.AppendState(nil))
			if err != nil {
				t.Fatal(err)
			}
			requireSamePredictions(t, again, r, event)
			t.Logf("%s: 64 slots full, new_signal refused; at 256 slots the 50 predictions are bitwise the same and new_signal is learned (%d slots)", tc.name, again.NumericSlots())

			lowered := mc
			lowered.Features.MaxNumeric = 32
			if _, _, err := DecodeModel(lowered, 0, m.AppendState(nil)); err == nil || !strings.Contains(err.Error(), "max_numeric_features 32") || !strings.Contains(err.Error(), "64 numeric features") {
				t.Fatalf("lowering below the slots in use: %v, want an error naming both", err)
			}
		})
	}
}

// TestLoweringMaxNumericFeaturesToTheSlotsInUse shrinks an unused numeric
// block: a model with 2 features and 1,024 slots keeps its predictions with
// 8 slots.
func TestLoweringMaxNumericFeaturesToTheSlotsInUse(t *testing.T) {
	mc := ModelConfig{Name: "m", Task: Binary}
	m, err := NewModel(mc, 0)
	if err != nil {
		t.Fatal(err)
	}
	event := func(i int, _ string) []features.Field {
		return []features.Field{
			{Name: []byte("a"), Kind: features.Number, Num: float64(i % 5)},
			{Name: []byte("b"), Kind: features.Number, Num: float64(i % 3)},
			{Name: []byte("tag"), Kind: features.String, Str: []byte("t" + strconv.Itoa(i%4))},
		}
	}
	for i := range 300 {
		if _, err := m.LearnEvent(nil, time.Time{}, event(i, ""), float64(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	lowered := mc
	lowered.Features.MaxNumeric = 8
	r, _, err := DecodeModel(lowered, 0, m.AppendState(nil))
	if err != nil {
		t.Fatal(err)
	}
	requireSamePredictions(t, r, m, event)
}

func isReject(err error, reason string) bool {
	var re *RejectError
	return errors.As(err, &re) && re.Reason == reason
}

func requireSamePredictions(t *testing.T, got, want *Model, event func(int, string) []features.Field) {
	t.Helper()
	for i := range 50 {
		g, w := got.PredictDerived(event(i, "")), want.PredictDerived(event(i, ""))
		if math.Float64bits(g.Score) != math.Float64bits(w.Score) || g.Output != w.Output {
			t.Fatalf("event %d: %+v, want %+v", i, g, w)
		}
	}
}
