// Package features turns an event's raw fields into the numeric vector a
// linear model learns from, with exactly the same code at training time and at
// prediction time.
//
// A Transformer owns the feature state of one model:
//
//   - numeric fields (and booleans, as 0/1) get a dense slot the first time
//     the model learns from them, and are standardised online with Welford's
//     algorithm using the population variance; a feature whose variance is
//     still 0 transforms to 0 (River's StandardScaler semantics);
//   - categorical (string) fields are one-hot encoded with the hashing trick:
//     "name=value" is hashed (xxhash) into a space of 2^HashBits indices
//     placed after the numeric slots, as are quadratic interactions between
//     namespaces.
//
// A History keeps each entity's recent values and labels and derives window
// aggregates (by count or event time, with watermarks), lags and past-label
// aggregates from the events before the current one. Window sums are
// compensated (Neumaier) and variances computed in two passes, so
// aggregates of large values (epoch milliseconds, 1e12) are exact where the
// float64 result can be. An event time more than Config.MaxFuture (default
// 1h) ahead of the processing clock enters no time window and never moves
// its entity's watermark; such events are counted (History.Future), as
// late ones are (History.Late).
//
// A History backed by a store (SetLoader: the engine's Pebble) is a cache
// of it: an entity not in memory is read back when its next event (Fetch,
// Observe) or a prediction (Derive, which reads without keeping it) needs
// it, and derives exactly what it would have in memory. Only once a
// checkpoint has stored every change (ApplyChanges) do entities leave
// memory, least recently used first, down to Config.MaxEntitiesInMemory:
// an entity never leaves memory with a change the store lacks, so the
// store and memory never disagree. Cache counts hits, misses (store
// reads) and entities unloaded; EstimatedBytes the memory held.
//
// A Vector with Trace on records where each entry came from (its field, or
// the two entries an interaction crosses, and the full hash of a hashed
// one), so that Terms can name every entry of a transformed event for an
// explanation; without it Transform records nothing and costs the same.
//
// Invariants: a Transformer never produces NaN or Inf from finite input;
// Transform never changes state, only Update does (and Rollback undoes it);
// slot numbers never change once assigned, so weights stay aligned across
// restarts (SetMaxNumeric moves hashed indices by a known offset, Reindex,
// and keeps interactions in their buckets).
//
// A Transformer's state (AppendState, DecodeTransformer) and an entity's
// history (TakeDirty, Load) are encoded with the primitives of package
// features/codec, in versioned layouts that older releases' states still
// decode from.
//
// This package is a leaf: it imports only the standard library, gonum,
// xxhash and its own codec (standard library only).
//
// # Concurrency
//
// A Transformer is owned by one goroutine while it learns. A copy made with
// Clone is immutable by convention and may be read (Transform) by any number
// of goroutines at once. A History is written by one goroutine (Fetch,
// Observe, Load, ApplyChanges) and read by any (Derive) under its own
// read-write lock; a Derive that reads the store holds the read lock
// meanwhile, so the entity cannot be loaded, changed and unloaded under it;
// TakeDirty swaps out the set of changed entities under the write lock and
// encodes them under the read lock, so it may run on any goroutine and
// hands each change to exactly one call. WriteChanges and ApplyChanges are
// the two phases of a checkpoint (hand the changes out without forgetting
// them; forget them once durable) and belong to the writing goroutine.
package features
