package learner

import (
	"sync"
	"time"

	"github.com/eddyhq/eddy/features"
)

// Snapshot is an immutable, versioned copy of a model: its feature state,
// weights and the metrics it had when it was taken. It is safe for concurrent
// use; nothing ever modifies it after creation.
type Snapshot struct {
	model    string
	task     Task
	version  uint64
	created  time.Time
	reason   string
	learned  uint64
	metrics  Metrics
	tr       *features.Transformer
	lin      *linear // weights and intercepts only
	classes  []int
	hist     *features.History // the live per-entity history (read-only here); nil when unused
	keyField string            // features.Config.Key
	schema   *features.Schema  // nil without one
	skew     *Skew             // the live model's; Score feeds its serving side; nil without feature drift
	cfg      ModelConfig       // for Inspect
	names    *bucketNames      // bucket names for Inspect: only a decoded snapshot's (DecodeStoredSnapshot) and Model.Inspect's; nil otherwise
	scratch  sync.Pool         // *scoreScratch, so that Score allocates nothing
}

type scoreScratch struct {
	vec        features.Vector
	raw, probs []float64
	fields     []features.Field
	key        []byte
	checker    *features.Checker // the schema's, one per scratch; nil without a schema
}

// newSnapshot copies m, so the snapshot shares nothing with the live model
// but the per-entity history, which it only reads.
func newSnapshot(m *Model, meta snapshotMeta) *Snapshot {
	return &Snapshot{
		model:    m.cfg.Name,
		task:     m.cfg.Task,
		version:  m.version,
		created:  meta.created,
		reason:   meta.reason,
		learned:  m.learned,
		metrics:  m.eval.metrics(),
		tr:       m.tr.Clone(),
		lin:      m.lin.clonePredictor(),
		classes:  append([]int(nil), m.classes...),
		hist:     m.hist,
		keyField: m.cfg.Features.Key,
		schema:   m.schema,
		skew:     m.skew,
		cfg:      m.cfg,
	}
}

// Snapshot returns an immutable copy of m as its snapshot version, taken at
// created for reason (a Reason constant, or any short word). It shares
// nothing with m but the per-entity history, which it only reads (Score
// derives features from the live history). m does not change: recording
// version as m's newest (SetVersion) is the caller's, once the snapshot is
// stored.
func (m *Model) Snapshot(version uint64, created time.Time, reason string) *Snapshot {
	s := newSnapshot(m, snapshotMeta{created: created, reason: reason})
	s.version = version
	return s
}

// Model returns the name of the model.
func (s *Snapshot) Model() string { return s.model }

// Task returns what the model predicts.
func (s *Snapshot) Task() Task { return s.task }

// Version returns the snapshot's version: 1 for a model's first snapshot,
// increasing by one with each new snapshot.
func (s *Snapshot) Version() uint64 { return s.version }

// Created returns when the snapshot was taken.
func (s *Snapshot) Created() time.Time { return s.created }

// Reason returns why the snapshot was taken (e.g. "periodic").
func (s *Snapshot) Reason() string { return s.reason }

// Learned returns how many examples the model had learned.
func (s *Snapshot) Learned() uint64 { return s.learned }

// Metrics returns the model's prequential metrics at snapshot time.
func (s *Snapshot) Metrics() Metrics { return s.metrics }

// Score returns the snapshot's prediction for the raw fields of an event of
// entity key (nil when there is none) and the predicted label: for Binary, the probability of label 1 and the label (1 when the
// probability is above 0.5); for Regression, the value (label 0); for
// Multiclass, the probability of the most likely class and that class's
// label (-1 while the model knows no class). It computes features, including
// those derived from the entity's live history, with exactly the code the
// live model learns with, is safe for concurrent use, and allocates nothing
// in steady state. The error is a failure to read the entity's history
// from the store (features.History.Derive); there is no score then.
func (s *Snapshot) Score(key []byte, fields []features.Field) (float64, int32, error) {
	sc := s.scratchBuffers()
	defer s.scratch.Put(sc)
	raw := fields
	if sc.checker != nil {
		// As learning does: declared categories that came as numbers are
		// their text; what the schema would not learn from is left out.
		fields, _, _ = sc.checker.Check(fields)
	}
	if s.skew != nil {
		s.skew.observe(raw, fields, false)
	}
	return s.scoreEvent(sc, key, fields)
}

// ScoreChecked is Score that also appends to dst how fields break the
// model's schema (nothing without one), checking them once: what Predict
// needs for its warnings. Safe for concurrent use.
func (s *Snapshot) ScoreChecked(key []byte, fields []features.Field, dst []features.Violation) (float64, int32, []features.Violation, error) {
	sc := s.scratchBuffers()
	defer s.scratch.Put(sc)
	raw := fields
	if sc.checker != nil {
		var viol []features.Violation
		fields, viol, _ = sc.checker.Check(fields)
		dst = append(dst, viol...)
	}
	if s.skew != nil {
		s.skew.observe(raw, fields, false)
	}
	score, label, err := s.scoreEvent(sc, key, fields)
	return score, label, dst, err
}

// scoreEvent scores checked raw fields, deriving the entity's history
// features first.
func (s *Snapshot) scoreEvent(sc *scoreScratch, key []byte, fields []features.Field) (float64, int32, error) {
	if s.hist != nil {
		sc.fields = append(sc.fields[:0], fields...)
		sc.key = features.EntityKey(s.keyField, fields, key, sc.key)
		var err error
		sc.fields, err = s.hist.Derive(sc.key, s.hist.Now(), fields, sc.fields) // a prediction is an event happening now, by the history's clock
		if err != nil {
			return 0, 0, err
		}
		fields = sc.fields
	}
	score, label := s.score(sc, fields)
	return score, label, nil
}

func (s *Snapshot) scratchBuffers() *scoreScratch {
	sc, _ := s.scratch.Get().(*scoreScratch)
	if sc == nil {
		sc = &scoreScratch{raw: make([]float64, len(s.lin.out)), probs: make([]float64, len(s.lin.out)), checker: newChecker(s.schema, s.tr)}
	}
	return sc
}

// StrictSchema reports whether Predict must refuse a request that breaks
// the schema (features.Schema.Strict) rather than answer with warnings.
func (s *Snapshot) StrictSchema() bool { return s.schema != nil && s.schema.Strict }

// scoreDerived scores fields that already include the derived features.
func (s *Snapshot) scoreDerived(fields []features.Field) (float64, int32) {
	sc := s.scratchBuffers()
	defer s.scratch.Put(sc)
	return s.score(sc, fields)
}

func (s *Snapshot) score(sc *scoreScratch, fields []features.Field) (float64, int32) {
	s.tr.Transform(fields, &sc.vec)
	score, k := s.lin.scores(&sc.vec, sc.raw, sc.probs)
	if s.task == Multiclass {
		if k < 0 {
			return score, -1
		}
		return score, int32(s.classes[k])
	}
	return score, int32(k)
}

// TaskName returns "binary", "regression" or "multiclass".
func (s *Snapshot) TaskName() string { return string(s.task) }
