// Package learner is eddy's models, with no I/O: incremental linear models
// (binary, regression, multiclass; squared, absolute, Huber,
// epsilon-insensitive, logistic, hinge and softmax losses; SGD, AdaGrad,
// Adam, FTRL-Proximal), their prequential evaluation, their feature pipeline
// and per-entity history (package features), their immutable snapshots, the
// drift monitor that compares a served champion with challengers (package
// drift), and the binary encodings of all of them. It imports no Pebble and
// no Prometheus: a Go program may embed a model and a detector alone (see
// the example). Package learner/engine runs models on a stream and stores
// them; package learner/store is the store.
//
// A Model learns one example at a time: LearnOne for raw fields, LearnEvent
// for an event of an entity, whose history features (windows, lags, target
// aggregates) it derives and then updates. Predict derives them the same
// way, for an event happening now. Snapshot copies a model into an
// immutable *Snapshot that scores from any goroutine. A Monitor scores the
// champion on every labeled example, feeds a drift detector with its error
// and, after a drift, trains a post-drift challenger that replaces the live
// model once it beats both.
//
// A linear prediction explains itself exactly: Snapshot.Explain (and
// Model.ExplainEvent, offline) gives every term of the transformed event
// (numbers, categories, interactions, derived features) with its value,
// weight and contribution, which with the intercept sum to the margin; the
// explained score is bitwise Score's. Inspect describes what a model has
// learned, its largest weights named through a bounded dictionary of
// hashed buckets (names.go) that the model keeps with its state.
//
// Invariants: a model's weights are always finite (a step that would make
// one NaN or Inf is refused and reported as an invalid example); a refused
// example leaves no trace in the model, neither in its feature statistics
// nor as a class it would have introduced; a snapshot never changes; a
// prediction computes exactly the features learning computes. Encodings are
// versioned: AppendState's output decodes with DecodeModel, and states of
// older layouts still decode.
//
// # Concurrency
//
// A Model and a Monitor are owned by one goroutine; none of their methods
// may run concurrently with another. A *Snapshot is immutable and safe for
// concurrent use by any number of goroutines (its Score reads the model's
// history under the history's own lock). The package has no global state.
package learner
