// Package learner owns eddy's models and everything they know: incremental
// linear models (binary, regression, multiclass; SGD, AdaGrad, Adam,
// FTRL-Proximal), their prequential evaluation, their per-entity feature
// history, the events waiting for delayed labels, drift monitoring with
// champion/challenger promotion, their immutable snapshots, and the Pebble
// store that holds all of it.
//
// An Engine drives a set of models. For every labeled example it first
// predicts, scores the prediction (prequential, or "test-then-train"
// evaluation) and only then learns. A Checkpoint writes the state of every
// model (weights, optimizer and feature state, entity histories, waiting
// events, drift monitor, metrics) together with the next Kafka offset of
// every partition in ONE synced Pebble batch, so the stored offsets always
// describe exactly the examples the stored state has learned: after a crash
// or restart, consumption resumes at those offsets and every example is
// learned exactly once.
//
// Snapshots are immutable, versioned copies of a model. The Engine creates one
// when the promotion policy says so (periodically without a drift detector;
// with one, when the live model or a post-drift challenger beats the served
// champion), stores it in the checkpoint batch, and hands it to a publish
// callback once the batch is durable. Retention keeps a snapshot while it is
// among the newest EngineConfig.Retain or younger than RetainFor, and never
// more than MaxRetained per model; the served one is never deleted.
//
// Admin commands (Promote, Rollback, Release) may come from any goroutine
// and run on the engine's; one whose context ends before the engine picks
// it up never runs, and each answers only once a checkpoint has stored it.
// Promote and Rollback pin the champion: it serves, across restarts, until
// Release, while automatic promotion keeps creating (but not serving)
// snapshots. Release serves the newest snapshot and resumes automatic
// promotion. Snapshots lists snapshot metadata from one point-in-time view
// of the store without reading weights.
//
// Invariants: a model's weights are always finite (a step that would make one
// NaN or Inf is refused and reported as an invalid example); a refused
// example leaves no trace in the model, neither in its feature statistics nor
// as a class it would have introduced; a snapshot never changes after it is
// published. Events waiting for a label expire oldest first, at checkpoints,
// and expiry looks only at the events due, not at every event waiting.
//
// # Concurrency
//
// An Engine and its Models are owned by one goroutine (the consumer's
// processing loop): Process and Checkpoint must not be called concurrently.
// A *Snapshot is immutable and safe for concurrent use by any number of
// goroutines. A Store is safe for concurrent use. Promote, Rollback, Release,
// Snapshots and Detections are safe to call from any goroutine.
package learner
