// Package engine runs eddy's models on a stream of events and keeps
// everything they know in a store (package learner/store): the weights and
// feature state of each model, its per-entity history, the events waiting
// for delayed labels, the drift monitor, the immutable snapshots it serves,
// and the next Kafka offset of every partition.
//
// An Engine drives a set of models (package learner). Process takes one
// event as an Example: for a labeled one each model first predicts, scores
// the prediction (prequential, or "test-then-train" evaluation) and only
// then learns; an unlabeled one is scored and, with a labels topic, waits
// for its label (Label). A Checkpoint writes the state of every model
// together with the next offsets in ONE synced batch, so the stored offsets
// always describe exactly the examples the stored state has learned: after
// a crash or restart, consumption resumes at those offsets and every
// example is learned exactly once.
//
// Per-entity histories live in the store; memory holds at most
// max_entities_in_memory of them after each checkpoint (the least recently
// used leave, only once stored), and one not in memory is read back when
// its entity's next event, label or Predict needs it (features.History).
// A restart reads none of them: learning resumes as soon with ten million
// entities stored as with one. Entities only stored are swept for
// entity_ttl too, 10,000 of them per checkpoint (entities.go). A history
// the store cannot give back fails the event (Process returns the error,
// nothing learned) and the Predict (UNAVAILABLE), never an empty history.
//
// Snapshots are immutable, versioned copies of a model. The Engine creates
// one when the promotion policy says so (periodically without a drift
// detector; with one, when the live model or a post-drift challenger beats
// the served champion), stores it in the checkpoint batch, and hands it to a
// publish callback once the batch is durable. Retention keeps a snapshot
// while it is among the newest Config.Retain or younger than RetainFor, and
// never more than MaxRetained per model; the served one is never deleted.
//
// Admin commands (Promote, Rollback, Release) may come from any goroutine
// and run on the engine's; one whose context ends before the engine picks
// it up never runs, and each answers only once a checkpoint has stored it.
// Promote and Rollback pin the champion: it serves, across restarts, until
// Release, while automatic promotion keeps creating (but not serving)
// snapshots. Release serves the newest snapshot and resumes automatic
// promotion. Snapshots lists snapshot metadata from one point-in-time view
// of the store without reading weights. Each command, done or refused, is
// an entry of the model's audit log (Audit), with the actor its context
// names (WithActor), written in the batch that stores its effect; the log
// is part of the unit's state and outlives Reset. Inspect describes a
// model or a stored snapshot from the store.
//
// Units of ownership (Unit: the models that share a topic) let several
// instances share the models: Export returns a unit's whole state (models,
// histories, waiting events, monitors, detections, the served and newest
// snapshots, offsets) as of the last checkpoint; Acquire makes the engine
// its owner in a new epoch, keeping the newer, by (epoch, sequence), of the
// local and an exported state; Relinquish frees it; Follow holds it as a
// standby that learns without snapshotting or publishing, to keep its
// histories current for serving. Holds, Owns, Epoch and Following say how
// a unit is held. An engine that no consumer drives holds every unit
// (restored from its store) and learns them all.
//
// The files follow the concerns: ownership.go (units, export, acquire,
// follow), engine.go (events), entities.go (histories in the store),
// checkpoint.go,
// promotion.go (the policy and serving), monitor.go (drift monitor wiring
// and detection records), labels.go and pending.go (delayed labels),
// admin.go, audit.go, inspect.go, snapshots.go (listing, snapshot infos), retention.go,
// restore.go, keys.go (the key layout), metrics.go, stats.go (Stats, the
// engine's numbers as plain values).
//
// Invariants: a checkpoint is computed, committed, then applied to memory,
// so one that fails to commit leaves both the store and the engine's record
// of it (snapshot versions, retention, entities to write or evict, events
// waiting or expiring, offsets) as they were, and a retry writes what one
// successful checkpoint would have; admin commands answer only once
// stored. Events waiting for a label expire oldest first, at checkpoints,
// and expiry looks only at the events due. A published snapshot never
// changes. What a model refuses to learn leaves no trace in it (package
// learner).
//
// # Concurrency
//
// An Engine and its models are owned by one goroutine (the consumer's
// processing loop): Process, Label and Checkpoint must not be called
// concurrently, and the models Models returns are read there only.
// Promote, Rollback, Release, Snapshots, Snapshot, SnapshotData,
// Detections, Stats, Wake, Live, Holds and Owns are safe to call from any
// goroutine; Acquire, Relinquish, Follow and Export are the consumer's. A published *learner.Snapshot is
// immutable and safe for any number of goroutines.
package engine
