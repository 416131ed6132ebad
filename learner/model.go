package learner

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
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
	// ReasonSchemaViolation is the reject reason of an event that breaks
	// the model's schema under a dead_letter policy; the detail names each
	// feature.
	ReasonSchemaViolation = "schema_violation"
	// ReasonUnknownID is the reject reason of a delayed label whose event
	// is not waiting: never seen, already learned (a duplicate label) or
	// expired.
	ReasonUnknownID = "unknown_id"
)

func reject(reason, format string, args ...any) error {
	return &RejectError{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Model is the live, learning state of one model: its feature pipeline, its
// linear core and optimizer state, its prequential metrics and, when its
// features use windows, lags or targets, its per-entity history.
type Model struct {
	cfg     ModelConfig
	window  int // examples the rolling metrics cover
	tr      *features.Transformer
	lin     *linear
	classes []int // Multiclass: the label of each output, in order of first sight
	eval    prequential
	learned uint64 // examples learned over the model's whole life
	version uint64 // version of the newest snapshot
	vec     features.Vector
	lastErr float64 // prequential error of the last example learned

	hist    *features.History // per-entity history (windows, lags, targets); nil when unused; shared with challengers and snapshots
	derived []features.Field  // scratch: an event's fields plus its derived features
	entity  []byte            // scratch: the entity key of an event (owned: never the event's bytes)
	checker *features.Checker // the schema's; nil without one

	schema    *features.Schema    // in force: cfg.Schema, or the one inferred from it
	inference *features.Inference // learning the schema's kinds (Schema.Infer); nil when not
	frozen    bool                // the inference has just ended (TakeInferred)
	skew      *Skew               // training/serving skew of the watched features; nil without feature drift

	storedMaxNumeric int // max_numeric_features the decoded state was stored with

	names *bucketNames // readable names of hashed buckets (HashNames); nil when kept off
}

// StoredMaxNumeric returns the max_numeric_features of the state m was
// decoded from: another value than its configuration's means the weights
// were re-indexed to the configured number of numeric slots. A new model
// returns its configuration's.
func (m *Model) StoredMaxNumeric() int {
	if m.storedMaxNumeric == 0 {
		return m.cfg.Features.MaxNumeric
	}
	return m.storedMaxNumeric
}

func newModel(cfg ModelConfig, window int) *Model {
	tr := features.New(cfg.Features)
	m := &Model{cfg: cfg, window: window, tr: tr, lin: newLinear(cfg, tr.Dim()), eval: newPrequential(cfg.Task, window),
		hist: features.NewHistory(cfg.Features), schema: cfg.Schema, skew: newSkew(cfg), names: newBucketNames(cfg.hashNames())}
	if s := cfg.Schema; s != nil && s.Infer > 0 {
		m.inference = features.NewInference(s.Infer)
		base := *s
		base.Infer = 0
		m.schema = &base // the declared features are checked meanwhile
	}
	m.checker = newChecker(m.schema, tr)
	return m
}

// InferenceProgress returns how many of the events a schema inference
// wants it has seen, and whether it is still running.
func (m *Model) InferenceProgress() (seen, want int, inferring bool) {
	if m.inference == nil {
		if m.cfg.Schema != nil {
			return m.cfg.Schema.Infer, m.cfg.Schema.Infer, false
		}
		return 0, 0, false
	}
	return m.inference.Seen, m.inference.Want, true
}

// Schema returns the schema in force: the configured one, or, once its
// inference is done, the one inferred from it (nil without a schema).
func (m *Model) Schema() *features.Schema { return m.schema }

// TakeInferred returns the schema the model has just inferred, once: true
// the first time it is asked after the inference ended.
func (m *Model) TakeInferred() (*features.Schema, bool) {
	if !m.frozen {
		return nil, false
	}
	m.frozen = false
	return m.schema, true
}

// schemaState is what the store keeps of a model's schema inference.
type schemaState struct {
	Inference *features.Inference `json:"inference,omitempty"`
	Frozen    *features.Schema    `json:"frozen,omitempty"`
}

// AppendSchemaState returns what must be stored of the model's schema
// inference (its progress, or the schema it inferred), or nil when the
// schema is not inferred.
func (m *Model) AppendSchemaState() ([]byte, error) {
	if m.cfg.Schema == nil || m.cfg.Schema.Infer == 0 {
		return nil, nil
	}
	st := schemaState{Inference: m.inference}
	if m.inference == nil {
		st.Frozen = m.schema
	}
	return json.Marshal(st)
}

// RestoreSchemaState restores what AppendSchemaState returned.
func (m *Model) RestoreSchemaState(data []byte) error {
	var st schemaState
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%w: model %s: schema state: %v", ErrCorrupt, m.cfg.Name, err)
	}
	switch {
	case st.Frozen != nil:
		if err := st.Frozen.Validate(); err != nil {
			return fmt.Errorf("%w: model %s: inferred schema: %v", ErrCorrupt, m.cfg.Name, err)
		}
		m.schema, m.inference = st.Frozen, nil
	case st.Inference != nil:
		m.inference = st.Inference
	}
	m.checker = newChecker(m.schema, m.tr)
	return nil
}

// newChecker returns the checker of schema (nil without one), imputing
// means from tr.
func newChecker(schema *features.Schema, tr *features.Transformer) *features.Checker {
	c := features.NewChecker(schema)
	if c != nil {
		c.SetMean(tr.Mean)
	}
	return c
}

// Check applies the model's schema (ModelConfig.Schema) to an event's
// fields, before anything else sees them: it returns the fields to use
// (declared categories that came as numbers as their text, dropped
// features left out; valid until the next Check), the violations found,
// and, when the event must be dead-lettered, a *RejectError with reason
// schema_violation naming each feature. Without a schema it returns fields
// as they are. One goroutine at a time (the model's).
func (m *Model) Check(fields []features.Field) ([]features.Field, []features.Violation, error) {
	raw := fields
	if m.inference != nil && m.inference.Observe(fields) {
		frozen := m.inference.Schema(*m.cfg.Schema)
		m.schema, m.inference, m.frozen = &frozen, nil, true
		m.checker = newChecker(m.schema, m.tr)
	}
	if m.checker == nil {
		if m.skew != nil {
			m.skew.observe(raw, raw, true)
		}
		return fields, nil, nil
	}
	out, viol, rejected := m.checker.Check(fields)
	if m.skew != nil {
		m.skew.observe(raw, out, true)
	}
	if !rejected {
		return out, viol, nil
	}
	details := make([]string, len(viol))
	for i, v := range viol {
		details[i] = v.Detail
	}
	return out, viol, reject(ReasonSchemaViolation, "the event breaks the schema of model %s: %s", m.cfg.Name, strings.Join(details, "; "))
}

// EntityKey returns the entity an event of message key key with fields
// belongs to: the value of the model's key field (features.Config.Key)
// when it has one, else key. The result is m's own copy, valid until the
// next call; it never aliases key or fields.
func (m *Model) EntityKey(key []byte, fields []features.Field) []byte {
	m.entity = features.EntityKey(m.cfg.Features.Key, fields, key, m.entity)
	return m.entity
}

// Derive returns fields plus the features derived from the history of
// entity (as EntityKey returns it) before an event at time at (fields
// itself when the model derives nothing). The result is valid until the
// next call of Derive, Predict, LearnEvent or PredictEvent. The error is a
// failure to read the entity's history from the store
// (features.History.Derive): a model without one never fails.
func (m *Model) Derive(entity []byte, at time.Time, fields []features.Field) ([]features.Field, error) {
	if m.hist == nil {
		return fields, nil
	}
	m.derived = append(m.derived[:0], fields...)
	var err error
	m.derived, err = m.hist.Derive(entity, at, fields, m.derived)
	return m.derived, err
}

// LearnEvent is LearnOne for an event of message key key at event time at
// (zero: none; time windows then see nothing): derived features come from
// the history of its entity (EntityKey), which then records the event. Use
// it for models with windows, lags or targets (it is LearnOne for the
// others).
func (m *Model) LearnEvent(key []byte, at time.Time, fields []features.Field, y float64) (float64, error) {
	fields, _, err := m.Check(fields)
	if err != nil {
		return 0, err
	}
	if m.hist == nil {
		return m.LearnOne(fields, y)
	}
	entity := m.EntityKey(key, fields)
	all, err := m.Derive(entity, at, fields)
	if err != nil {
		return 0, err
	}
	p, err := m.LearnOne(all, y)
	if err == nil {
		err = m.hist.Observe(entity, at, fields, y, true)
	}
	return p, err
}

// History returns the model's per-entity history, or nil.
func (m *Model) History() *features.History { return m.hist }

// Config returns the model's configuration, defaults applied.
func (m *Model) Config() ModelConfig { return m.cfg }

// Version returns the version of the model's newest snapshot (0: none).
// The engine numbers snapshots with it; it is part of the model's state.
func (m *Model) Version() uint64 { return m.version }

// SetVersion records v as the version of the model's newest snapshot, once
// that snapshot is stored.
func (m *Model) SetVersion(v uint64) { m.version = v }

// LastError returns the prequential error of the last example learned: 0/1
// loss for classifiers, absolute error for regression.
func (m *Model) LastError() float64 { return m.lastErr }

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

// OverflowedFeatures returns how many numeric features of learned events
// got no slot because max_numeric_features was reached (with
// too_many_features: ignore_feature), since the model was loaded.
func (m *Model) OverflowedFeatures() uint64 { return m.tr.Overflowed() }

// NumericSlots returns how many of max_numeric_features' slots the model's
// numeric features use.
func (m *Model) NumericSlots() int { return m.tr.NumericSlots() }

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

// Predict returns the model's current score for the raw fields of an event
// of message key key (nil when there is none): the probability of label 1
// (Binary), the value (Regression), or the probability of the most likely
// class (Multiclass). Features derived from the entity's history are
// computed as learning computes them, for an event happening now by the
// history's clock (features.History.Now), as Snapshot.Score does.
func (m *Model) Predict(key []byte, fields []features.Field) float64 {
	if m.checker != nil {
		fields, _, _ = m.checker.Check(fields) // predict from what the schema lets through (not an event: no inference)
	}
	if m.hist != nil {
		// The engine's models read their histories from a store: one that
		// cannot be read predicts from the event's own fields.
		fields, _ = m.Derive(m.EntityKey(key, fields), m.hist.Now(), fields)
	}
	return m.PredictDerived(fields).Score
}

// Prediction is a model's prediction for one event.
type Prediction struct {
	// Score is the probability of label 1 (Binary), the value
	// (Regression), or the probability of the most likely class
	// (Multiclass).
	Score float64
	// Output is the predicted output: the label for Binary (0 or 1), 0 for
	// Regression, the index of the class in the model's order of first
	// sight for Multiclass (-1 while it knows none). LearnDelayed takes it
	// back.
	Output int
}

// PredictDerived predicts for fields that already include the derived
// features (Derive), without learning: what the engine stores for an event
// waiting for its label.
func (m *Model) PredictDerived(fields []features.Field) Prediction {
	m.tr.Transform(fields, &m.vec)
	score, output := m.lin.predict(&m.vec)
	return Prediction{Score: score, Output: output}
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

// LearnDelayed learns an example whose label y arrived after the event:
// fields (derived features included) and the prediction p made at event time
// (PredictDerived) are what is learned and what prequential evaluation
// scores. On error nothing was learned.
func (m *Model) LearnDelayed(fields []features.Field, y float64, p Prediction) error {
	score, predicted := p.Score, p.Output
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
	if m.names != nil {
		m.names.observe(m.tr, fields, &m.vec, m.lin, m.learned)
	}
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
