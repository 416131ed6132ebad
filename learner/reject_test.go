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
		{[]features.Field{numField("z", 1e-160)}, 0},
		{[]features.Field{numField("z", 2e-160)}, 1},
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
