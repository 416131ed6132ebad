// Package store is eddy's state on disk: one Pebble database under the data
// directory, with the small API the engine needs and nothing more. Writes
// go through a Batch (Set, Delete, DeleteRange), applied atomically and
// synced to disk by Commit, all of them or none; reads through Get and Scan,
// or through a View, a point-in-time view for listings that must not mix two
// states. The package knows nothing of what is stored: the key layout and
// the encodings belong to the engine (package learner/engine).
//
// Invariants: a Batch that fails to commit wrote nothing; a committed Batch
// survives a crash (the commit is synced); a View never sees part of a
// Batch. Options.FailCommit is the one seam through which tests make a real
// store fail a commit.
//
// # Concurrency
//
// A Store and a View are safe for concurrent use; a Batch is owned by the
// goroutine that writes it. Readers may use Get, Scan and NewView from any
// goroutine while a Batch commits.
package store
