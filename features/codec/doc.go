// Package codec is the small binary codec that eddy's state encodings
// (feature state, entity histories, drift detectors, models, monitors,
// snapshots, waiting events) are written with: Append functions for
// uvarints, length-prefixed strings and bytes, booleans and floats (their 8
// little-endian IEEE 754 bytes, so a decoded float is bit for bit the
// encoded one), and a Reader that reads them back.
//
// The package fixes primitives only; each encoding owns its layout and its
// version byte. Changing what a function here writes would change every
// stored format, so it never does.
//
// Invariants: a Reader never panics and never allocates more than its
// input's length, whatever the input; its first failure wraps the sentinel
// the caller gave (a package's "corrupt state" error) and every later read
// returns the zero value.
//
// This package is a leaf: the standard library only.
//
// # Concurrency
//
// The Append functions are safe for concurrent use on distinct buffers. A
// Reader is owned by the goroutine decoding with it.
package codec
