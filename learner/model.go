package learner

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/eddyhq/eddy/features"
)

// ErrInvalidExample is wrapped by every error that rejects one example (a
// label of the wrong kind, a value out of range, too many features or
// classes, a step that would make a weight non-finite). The example is not
// learned; the model is unchanged.
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

// RejectReason returns the bounded reason code (it lets the consumer
// dead-letter the example without knowing this package).
func (e *RejectError) RejectReason() string { return e.Reason }

// Reject reasons.
const (
	ReasonInvalidLabel      = "invalid_label"
	ReasonNonFinite         = "non_finite"
	ReasonTooManyFeatures   = "too_many_features"
	ReasonTooManyClasses    = "too_many_classes"
	ReasonNonFiniteGradient = "non_finite_step"
	ReasonOutOfRange        = "out_of_range"
)

func reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Model is the live, learning state of one model: its feature pipeline, its
// linear core and optimizer state, and its prequential metrics.
type Model struct {
	cfg     ModelConfig
	tr      *features.Transformer
	lin     *linear
	classes []int // Multiclass: the label of each output, in order of first sight
	eval    prequential
	learned uint64 // examples learned over the model's whole life
	version uint64 // version of the newest snapshot
	vec     features.Vector
	lastErr float64  // prequential error of the last example learned
	mon     *monitor // champion/challenger state; nil for a challenger itself

	hist    *features.History // per-entity history (windows, lags, targets); nil when unused; shared with challengers and snapshots
	derived []features.Field  // scratch: an event's fields plus its derived features
	pending *pendingSet       // events waiting for a delayed label; nil without a labels topic
}

func newModel(cfg ModelConfig, window int) *Model {
	tr := features.New(cfg.Features)
	return &Model{cfg: cfg, tr: tr, lin: newLinear(cfg, tr.Dim()), eval: newPrequential(cfg.Task, window), hist: features.NewHistory(cfg.Features)}
}

// withHistory returns fields plus the features derived from the history of
// entity key before this event (fields itself when the model derives
// nothing). The result is valid until the next call.
func (m *Model) withHistory(key []byte, at time.Time, fields []features.Field) []features.Field {
	if m.hist == nil {
		return fields
	}
	m.derived = append(m.derived[:0], fields...)
	m.derived = m.hist.Derive(key, at, fields, m.derived)
	return m.derived
}

// LearnEvent is LearnOne for an event of entity key at event time at (zero:
// none; time windows then see nothing): derived features come
// from the entity's history, which then records the event. Use it for
// models with windows, lags or targets (it is LearnOne for the others).
func (m *Model) LearnEvent(key []byte, at time.Time, fields []features.Field, y float64) (float64, error) {
	p, err := m.LearnOne(m.withHistory(key, at, fields), y)
	if err == nil && m.hist != nil {
		m.hist.Observe(key, at, fields, y, true)
	}
	return p, err
}

// History returns the model's per-entity history, or nil.
func (m *Model) History() *features.History { return m.hist }

// NewModel returns an untrained model for cfg (defaults applied), keeping
// rolling metrics over the last rollingWindow examples (0: the default).
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

// Name returns the model's name.
func (m *Model) Name() string { return m.cfg.Name }

// Learned returns how many examples the model has learned in its whole life.
func (m *Model) Learned() uint64 { return m.learned }

// Metrics returns the prequential metrics so far.
func (m *Model) Metrics() Metrics { return m.eval.metrics() }

// Intercept returns the intercept (of the first class, for Multiclass).
func (m *Model) Intercept() float64 {
	if len(m.lin.out) == 0 {
		return 0
	}
	return m.lin.out[0].intercept
}

// Weights returns a copy of the weights (of the first class, for Multiclass),
// indexed like features.Vector, and the intercept. For inspection and tests;
// not for the hot path.
func (m *Model) Weights() ([]float64, float64) {
	if len(m.lin.out) == 0 {
		return nil, 0
	}
	o := &m.lin.out[0]
	w := make([]float64, len(o.p)/m.lin.stride)
	for i := range w {
		w[i] = o.p[i*m.lin.stride]
	}
	return w, o.intercept
}

// Predict returns the model's current score for fields: the probability of
// label 1 (Binary), the value (Regression), or the probability of the most
// likely class (Multiclass).
func (m *Model) Predict(fields []features.Field) float64 {
	m.tr.Transform(fields, &m.vec)
	score, _ := m.lin.predict(&m.vec)
	return score
}

// LearnOne scores the current prediction for fields against label y, then
// learns from the example (River's order: update the scaler, transform, take
// the optimizer step). It returns the score predicted before learning. On
// error nothing was learned: the model and its metrics are unchanged.
func (m *Model) LearnOne(fields []features.Field, y float64) (float64, error) {
	class, err := m.checkLabel(y)
	if err != nil {
		return 0, err
	}
	m.tr.Transform(fields, &m.vec)
	score, predicted := m.lin.predict(&m.vec)
	return m.learnScored(fields, y, class, score, predicted, m.probabilityOf(class, score, predicted))
}

// learnDelayed learns an example whose label arrived after the event: the
// prediction made at event time (score, predicted) is what prequential
// evaluation scores.
func (m *Model) learnDelayed(fields []features.Field, y, score float64, predicted int) error {
	class, err := m.checkLabel(y)
	if err != nil {
		return err
	}
	pTrue := 0.0
	if m.cfg.Task == Multiclass && class >= 0 && class == predicted {
		pTrue = score
	}
	m.tr.Transform(fields, &m.vec) // learnScored's Retransform starts from here
	_, err = m.learnScored(fields, y, class, score, predicted, pTrue)
	return err
}

// learnScored updates the features and the weights after the prediction
// (score, predicted) was made, then scores it. m.vec must hold the Transform
// of fields with the current statistics.
func (m *Model) learnScored(fields []features.Field, y float64, class int, score float64, predicted int, pTrue float64) (float64, error) {
	if err := m.tr.Update(fields); err != nil {
		switch {
		case errors.Is(err, features.ErrTooManyFeatures):
			return 0, reject(ReasonTooManyFeatures, "model %s: %v", m.cfg.Name, err)
		case errors.Is(err, features.ErrOutOfRange):
			return 0, reject(ReasonOutOfRange, "model %s: %v (the limit is ±%g)", m.cfg.Name, err, features.MaxAbs)
		}
		return 0, reject(ReasonNonFinite, "model %s: %v", m.cfg.Name, err)
	}
	m.tr.Retransform(fields, &m.vec)
	target := y
	added := false // a class first seen in this example: its output joins the softmax of the step
	if m.cfg.Task == Multiclass {
		if class < 0 {
			class, added = m.addClass(int(y)), true
		}
		target = float64(class)
	}
	if !m.lin.learn(&m.vec, target) {
		// A refused example leaves no trace: not its feature statistics,
		// not the class it would have introduced.
		m.tr.Rollback()
		if added {
			m.removeLastClass()
		}
		return 0, reject(ReasonNonFiniteGradient, "model %s: the update would make a weight non-finite", m.cfg.Name)
	}
	m.score(y, score, predicted, class, pTrue)
	m.learned++
	return score, nil
}

// checkLabel validates y and, for Multiclass, returns its output index (-1
// for a class not seen yet).
func (m *Model) checkLabel(y float64) (int, error) {
	if math.IsNaN(y) || math.IsInf(y, 0) {
		return 0, reject(ReasonNonFinite, "model %s: label %g is not finite", m.cfg.Name, y)
	}
	switch m.cfg.Task {
	case Binary:
		if y != 0 && y != 1 {
			return 0, reject(ReasonInvalidLabel, "model %s: label %g of a binary model must be 0 or 1 (or false/true)", m.cfg.Name, y)
		}
	case Multiclass:
		if y < 0 || y >= 1<<31 || y != math.Trunc(y) {
			return 0, reject(ReasonInvalidLabel, "model %s: label %g of a multiclass model must be a class number, an integer in [0, 2^31)", m.cfg.Name, y)
		}
		for k, c := range m.classes {
			if c == int(y) {
				return k, nil
			}
		}
		if len(m.classes) >= m.cfg.MaxClasses {
			return 0, reject(ReasonTooManyClasses, "model %s: class %g would be number %d, the limit is max_classes=%d", m.cfg.Name, y, len(m.classes)+1, m.cfg.MaxClasses)
		}
		return -1, nil
	}
	return 0, nil
}

func (m *Model) addClass(label int) int {
	m.classes = append(m.classes, label)
	m.lin.addOutput()
	return len(m.classes) - 1
}

// removeLastClass undoes addClass.
func (m *Model) removeLastClass() {
	m.classes = m.classes[:len(m.classes)-1]
	m.lin.removeLastOutput()
}

// probabilityOf returns the probability the prediction gave the true class
// (Multiclass; 0 for a class never seen before).
func (m *Model) probabilityOf(class int, score float64, predicted int) float64 {
	if m.cfg.Task != Multiclass || class < 0 {
		return 0
	}
	return m.lin.probs[class]
}

// score updates the prequential metrics with the prediction made before
// learning.
func (m *Model) score(y, score float64, predicted, class int, pTrue float64) {
	switch m.cfg.Task {
	case Regression:
		m.lastErr = math.Abs(y - score)
		m.eval.regress(y, score)
	case Binary:
		if y == 1 {
			pTrue = score
		} else {
			pTrue = 1 - score
		}
		m.lastErr = boolErr((score > 0.5) == (y == 1))
		m.eval.classify((score > 0.5) == (y == 1), pTrue)
	case Multiclass:
		m.lastErr = boolErr(predicted >= 0 && predicted == class)
		m.eval.classify(predicted >= 0 && predicted == class, pTrue)
	}
}

func boolErr(correct bool) float64 {
	if correct {
		return 0
	}
	return 1
}

// adopt makes the post-drift challenger c the live model: its features and
// weights replace m's; m keeps its identity, life-long learned count and
// prequential record (which from now on is c's).
func (m *Model) adopt(c *Model) {
	m.tr, m.lin, m.classes = c.tr, c.lin, c.classes
}
