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
// Batch; a commit leaves a free-space reserve on the file system (else a
// *NoSpaceError, Temporary). Nothing in the package panics on a storage
// error: an error Pebble declares fatal (Pebble calls it Fatalf) becomes a
// *FatalError, returned by the call that met it and by every later one,
// and Failed is closed; the store cannot be used again, and its owner
// should stop (Close then returns at once) and be started again. Damaged
// data read is a *CorruptionError naming the directory and the way out.
// Options.FailCommit and Options.FS (Pebble's vfs, for errorfs) are the
// seams through which tests make a real store fail.
//
// # Concurrency
//
// A Store and a View are safe for concurrent use; a Batch is owned by the
// goroutine that writes it. Readers may use Get, Scan and NewView from any
// goroutine while a Batch commits.
package store
