package learner

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/floats"

	"github.com/eddyhq/eddy/features"
)

// ErrInvalidExample is wrapped by every error that rejects one example (a
// label of the wrong kind, a value that would make state non-finite, too many
// features). The example is not learned; the model is unchanged.
var ErrInvalidExample = errors.New("learner: invalid example")

// RejectError says why an example was rejected. Reason is a bounded code,
// safe as a metric label; Detail is for humans.
type RejectError struct {
	Reason string
	Detail string
}

func (e *RejectError) Error() string { return "learner: " + e.Detail }

// Unwrap lets errors.Is(err, ErrInvalidExample) match.
func (e *RejectError) Unwrap() error { return ErrInvalidExample }

// Reject reasons.
const (
	ReasonInvalidLabel      = "invalid_label"
	ReasonNonFinite         = "non_finite"
	ReasonTooManyFeatures   = "too_many_features"
	ReasonNonFiniteGradient = "non_finite_step"
	ReasonOutOfRange        = "out_of_range"
)

func reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Model is the live, learning state of one model: its feature pipeline, its
// linear weights and its prequential metrics.
type Model struct {
	cfg       ModelConfig
	tr        *features.Transformer
	w         []float64 // indexed like features.Vector; grows on demand up to tr.Dim()
	intercept float64
	eval      prequential
	learned   uint64 // examples learned over the model's whole life
	version   uint64 // version of the newest snapshot
	vec       features.Vector
}

func newModel(cfg ModelConfig, window int) *Model {
	return &Model{cfg: cfg, tr: features.New(cfg.Features), eval: newPrequential(cfg.Task, window)}
}

// Name returns the model's name.
func (m *Model) Name() string { return m.cfg.Name }

// Learned returns how many examples the model has learned in its whole life.
func (m *Model) Learned() uint64 { return m.learned }

// Metrics returns the prequential metrics so far.
func (m *Model) Metrics() Metrics { return m.eval.metrics() }

// Intercept returns the intercept.
func (m *Model) Intercept() float64 { return m.intercept }

// Predict returns the model's current score for fields: the probability of
// label 1 for Binary, the value for Regression.
func (m *Model) Predict(fields []features.Field) float64 {
	return link(m.cfg.Task, m.tr.Dot(fields, m.w, m.intercept))
}

// LearnOne scores the current prediction for fields against label y, then
// learns from the example (River's order: update the scaler, transform, take
// the gradient step). It returns the prediction made before learning. On
// error nothing was learned and the metrics are unchanged.
func (m *Model) LearnOne(fields []features.Field, y float64) (float64, error) {
	if err := m.checkLabel(y); err != nil {
		return 0, err
	}
	p := m.Predict(fields)
	if err := m.tr.Update(fields); err != nil {
		switch {
		case errors.Is(err, features.ErrTooManyFeatures):
			return 0, reject(ReasonTooManyFeatures, "model %s: %v", m.cfg.Name, err)
		case errors.Is(err, features.ErrOutOfRange):
			return 0, reject(ReasonOutOfRange, "model %s: %v (the limit is ±%g)", m.cfg.Name, err, features.MaxAbs)
		}
		return 0, reject(ReasonNonFinite, "model %s: %v", m.cfg.Name, err)
	}
	m.tr.Transform(fields, &m.vec)
	if err := m.step(y); err != nil {
		m.tr.Rollback() // a refused example leaves no trace
		return 0, err
	}
	m.eval.update(y, p)
	m.learned++
	return p, nil
}

func (m *Model) checkLabel(y float64) error {
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return reject(ReasonNonFinite, "model %s: label %g is not finite", m.cfg.Name, y)
	}
	if m.cfg.Task == Binary && y != 0 && y != 1 {
		return reject(ReasonInvalidLabel, "model %s: label %g of a binary model must be 0 or 1 (or false/true)", m.cfg.Name, y)
	}
	return nil
}

// step takes one SGD step on m.vec towards y. It refuses (with an error) a
// step that would make the intercept or any weight non-finite.
func (m *Model) step(y float64) error {
	v := &m.vec
	oldLen := len(m.w)
	m.grow()
	raw := m.intercept + floats.Dot(m.w[:len(v.Dense)], v.Dense)
	for i, idx := range v.Index {
		raw += m.w[idx] * v.Value[i]
	}
	g := gradient(m.cfg.Task, y, raw)
	g = min(max(g, -m.cfg.Optimizer.ClipGradient), m.cfg.Optimizer.ClipGradient)
	lr := m.cfg.Optimizer.LR
	newIntercept := m.intercept - m.cfg.Optimizer.InterceptLR*g
	if !m.stepFinite(newIntercept, -lr*g) {
		m.w = m.w[:oldLen] // the grown tail is all zeros; drop it again
		return reject(ReasonNonFiniteGradient, "model %s: the update would make a weight non-finite (gradient %g)", m.cfg.Name, g)
	}
	m.intercept = newIntercept
	floats.AddScaled(m.w[:len(v.Dense)], -lr*g, v.Dense)
	for i, idx := range v.Index {
		m.w[idx] -= lr * g * v.Value[i]
	}
	return nil
}

func (m *Model) stepFinite(newIntercept, scale float64) bool {
	if !isFinite(newIntercept) || !isFinite(scale) {
		return false
	}
	for i, x := range m.vec.Dense {
		if !isFinite(m.w[i] + scale*x) {
			return false
		}
	}
	for i, idx := range m.vec.Index {
		if !isFinite(m.w[idx] + scale*m.vec.Value[i]) {
			return false
		}
	}
	return true
}

// grow makes w long enough for every index in m.vec. Models that never see a
// categorical feature keep a weight vector as short as their numeric slots.
func (m *Model) grow() {
	need := len(m.vec.Dense)
	if len(m.vec.Index) > 0 {
		need = m.tr.Dim()
	}
	if need > len(m.w) {
		m.w = append(m.w, make([]float64, need-len(m.w))...)
	}
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// link maps a raw dot product to a score.
func link(task Task, raw float64) float64 {
	if task == Binary {
		return sigmoid(raw)
	}
	return raw
}

// sigmoid is River's: saturated beyond ±30.
func sigmoid(x float64) float64 {
	switch {
	case x < -30:
		return 0
	case x > 30:
		return 1
	}
	return 1 / (1 + math.Exp(-x))
}

// gradient is the derivative of the loss with respect to the raw prediction.
// Binary: River's log loss on labels mapped to ±1, with the margin clamped
// at ±18. Regression: River's squared loss (y_pred - y)^2, gradient 2(y_pred - y).
func gradient(task Task, y, raw float64) float64 {
	if task == Regression {
		return 2 * (raw - y)
	}
	sign := 2*y - 1
	z := raw * sign
	switch {
	case z > 18:
		return math.Exp(-z) * -sign
	case z < -18:
		return -sign
	}
	return -sign / (math.Exp(z) + 1)
}

// RejectReason returns the bounded reason code (it lets the consumer
// dead-letter the example without knowing this package).
func (e *RejectError) RejectReason() string { return e.Reason }

// Weights returns a copy of the weights, indexed like features.Vector, and
// the intercept. For inspection and tests; not for the hot path.
func (m *Model) Weights() ([]float64, float64) {
	return append([]float64(nil), m.w...), m.intercept
}

// NewModel returns an untrained model for cfg (defaults applied), keeping
// rolling metrics over the last rollingWindow examples (0: the default).
// Models learn from one goroutine; see the package documentation.
func NewModel(cfg ModelConfig, rollingWindow int) (*Model, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rollingWindow == 0 {
		rollingWindow = DefaultRollingWindow
	}
	return newModel(cfg, rollingWindow), nil
}
