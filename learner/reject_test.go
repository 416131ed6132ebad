package learner

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/eddyhq/eddy/features"
)

// TestARefusedMulticlassStepAddsNoClass: an example of a class the model
// has never seen, whose step would make a weight non-finite, is refused and
// leaves no trace: no new class, no new output, the same stored state; the
// class can still arrive later as a new one.
func TestARefusedMulticlassStepAddsNoClass(t *testing.T) {
	cfg := ModelConfig{Name: "kinds", Task: Multiclass, Features: features.Config{Scaler: features.ScalerNone},
		Optimizer: OptimizerConfig{LR: 1e160}} // the only way left to overflow a step, inputs being bounded
	m, err := NewModel(cfg, 0)
	if err != nil {
		t.Fatal(err)
	}
	learnAll(t, m, []example{
		{Fields: []features.Field{numField("z", 1e-160)}, Y: 0},
		{Fields: []features.Field{numField("z", 2e-160)}, Y: 1},
	})
	before := stateOf(m)
	classes := slices.Clone(m.classes)

	_, err = m.LearnOne([]features.Field{numField("z", 1e-160), numField("x", 1e150)}, 7)
	var rej *RejectError
	if !errors.As(err, &rej) || rej.Reason != ReasonNonFiniteGradient {
		t.Fatalf("LearnOne = %v, want a %s rejection", err, ReasonNonFiniteGradient)
	}
	if !slices.Equal(m.classes, classes) || len(m.lin.out) != len(classes) {
		t.Fatalf("after the refused step: classes %v and %d outputs, want classes %v", m.classes, len(m.lin.out), classes)
	}
	if after := stateOf(m); !after.same(before) {
		t.Fatalf("the refused step changed the model:\n%+v\nwas\n%+v", after, before)
	}
	if _, err := m.LearnOne([]features.Field{numField("z", 3e-160)}, 7); err != nil {
		t.Fatal(err)
	}
	if want := append(classes, 7); !slices.Equal(m.classes, want) || len(m.lin.out) != 3 {
		t.Errorf("after learning class 7: classes %v and %d outputs, want %v", m.classes, len(m.lin.out), want)
	}
}

// modelState is what a model knows, compared as a function: weight vectors
// padded with zeros (grown for an index a refused step touched) are equal.
type modelState struct {
	features   []byte
	classes    []int
	weights    [][]float64
	intercepts []float64
	steps      uint64
	learned    uint64
	metrics    Metrics
}

func stateOf(m *Model) modelState {
	s := modelState{features: m.tr.AppendState(nil), classes: slices.Clone(m.classes), steps: m.lin.t, learned: m.learned, metrics: m.Metrics()}
	for _, o := range m.lin.out {
		w := make([]float64, len(o.p)/m.lin.stride)
		for i := range w {
			w[i] = o.p[i*m.lin.stride]
		}
		s.weights = append(s.weights, w)
		s.intercepts = append(s.intercepts, o.intercept)
	}
	return s
}

func (s modelState) same(o modelState) bool {
	if !bytes.Equal(s.features, o.features) || !slices.Equal(s.classes, o.classes) || len(s.weights) != len(o.weights) ||
		s.steps != o.steps || s.learned != o.learned || s.metrics != o.metrics {
		return false
	}
	for k := range s.weights {
		if !sameWeights(s.weights[k], o.weights[k]) || math.Float64bits(s.intercepts[k]) != math.Float64bits(o.intercepts[k]) {
			return false
		}
	}
	return true
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
	model  ModelConfig
	before []example // learned first, all valid
	bad    example
	reason string
}

func rejectionCases() []rejectionCase {
	payments := paymentEvents(15, 50)
	// An absurd learning rate is the only way left to overflow a step once
	// inputs are bounded by features.MaxAbs.
	regression := ModelConfig{Name: "fraud", Task: Regression, Features: features.Config{Scaler: features.ScalerNone},
		Optimizer: OptimizerConfig{LR: 1e160}}
	return []rejectionCase{
		{
			name:   "a binary label other than 0 or 1 is an invalid label",
			model:  ModelConfig{Name: "fraud", Task: Binary},
			before: payments,
			bad:    example{Fields: payments[0].Fields, Y: 2},
			reason: ReasonInvalidLabel,
		},
		{
			name:   "a NaN label is non-finite",
			model:  ModelConfig{Name: "fraud", Task: Binary},
			before: payments,
			bad:    example{Fields: payments[0].Fields, Y: math.NaN()},
			reason: ReasonNonFinite,
		},
		{
			name:   "an infinite regression label is non-finite",
			model:  ModelConfig{Name: "fraud", Task: Regression},
			before: payments,
			bad:    example{Fields: payments[0].Fields, Y: math.Inf(1)},
			reason: ReasonNonFinite,
		},
		{
			// Squaring it in the variance would overflow.
			name:   "a value beyond ±1e150 is out of range",
			model:  ModelConfig{Name: "fraud", Task: Binary},
			before: payments,
			bad:    example{Fields: withFields(payments[0].Fields, numField("amount", 1e200)), Y: 1},
			reason: ReasonOutOfRange,
		},
		{
			name:   "a value beyond ±1e150 in a new feature is out of range and takes no slot",
			model:  ModelConfig{Name: "fraud", Task: Binary},
			before: []example{{Fields: []features.Field{numField("x", 1)}, Y: 1}},
			bad:    example{Fields: []features.Field{numField("x", 2), numField("y", -1e151)}, Y: 0},
			reason: ReasonOutOfRange,
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
			reason: ReasonNonFiniteGradient,
		},
		{
			name:   "a numeric feature beyond max_numeric_features is too many",
			model:  ModelConfig{Name: "fraud", Task: Binary, Features: features.Config{MaxNumeric: 2}},
			before: []example{{Fields: []features.Field{numField("a", 1), numField("b", 2), strField("c", "x")}, Y: 1}},
			bad:    example{Fields: []features.Field{numField("a", 1), numField("b", 2), numField("c", 3)}, Y: 0},
			reason: ReasonTooManyFeatures,
		},
	}
}

// The package promises that a rejected example leaves the model unchanged;
// that includes the feature state (scaler statistics and numeric slots),
// which decides how every later example is scaled and how many new numeric
// features the model may still accept.
func TestARejectedExampleLeavesTheFeatureStateUnchanged(t *testing.T) {
	t.Parallel()
	for _, tc := range rejectionCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.model
			cfg.EnsureDefaults()
			m := newModel(cfg, DefaultRollingWindow)
			learnAll(t, m, tc.before)
			state := m.tr.AppendState(nil)
			if _, err := m.LearnOne(tc.bad.Fields, tc.bad.Y); err == nil {
				t.Fatal("the example was learned")
			}
			if string(m.tr.AppendState(nil)) != string(state) {
				t.Errorf("the rejected example changed the feature state: now %d numeric slots %v", m.tr.NumericSlots(), m.tr.NumericNames())
			}
		})
	}
}
