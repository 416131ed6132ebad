// Package drift detects concept drift in a stream of numbers, typically a
// model's prequential error: ADWIN, Page-Hinkley and friends, as pure
// detectors with an Update(x float64) bool style API that match River's
// published behaviour.
//
// This package is a leaf: standard library and gonum only, no I/O.
//
// # Concurrency
//
// A detector is owned by one goroutine (the one that owns its model).
package drift
