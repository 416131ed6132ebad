package learner

import (
	"time"

	"github.com/eddyhq/eddy/features"
)

// Snapshot is an immutable, versioned copy of a model: its feature state,
// weights and the metrics it had when it was taken. It is safe for concurrent
// use; nothing ever modifies it after creation.
type Snapshot struct {
	model     string
	task      Task
	version   uint64
	created   time.Time
	reason    string
	learned   uint64
	metrics   Metrics
	tr        *features.Transformer
	w         []float64
	intercept float64
}

// newSnapshot copies m, so the snapshot shares nothing with the live model.
func newSnapshot(m *Model, meta snapshotMeta) *Snapshot {
	return &Snapshot{
		model:     m.cfg.Name,
		task:      m.cfg.Task,
		version:   m.version,
		created:   meta.created,
		reason:    meta.reason,
		learned:   m.learned,
		metrics:   m.eval.metrics(),
		tr:        m.tr.Clone(),
		w:         append([]float64(nil), m.w...),
		intercept: m.intercept,
	}
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

// Score returns the snapshot's prediction for raw fields: the probability of
// label 1 for a Binary model, the value for a Regression model. It computes
// features with exactly the code the live model learns with, and allocates
// nothing.
func (s *Snapshot) Score(fields []features.Field) float64 {
	return link(s.task, s.tr.Dot(fields, s.w, s.intercept))
}

// IsBinary reports whether the model is a binary classifier (its score is a
// probability) rather than a regressor.
func (s *Snapshot) IsBinary() bool { return s.task == Binary }
