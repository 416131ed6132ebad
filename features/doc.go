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
//     "name=value" is hashed into a space of 2^HashBits indices placed after
//     the numeric slots.
//
// Invariants: a Transformer never produces NaN or Inf from finite input;
// prediction (Dot) never changes state, only Update does; slot numbers never
// change once assigned, so weights stay aligned across restarts.
//
// This package is a leaf: it imports only the standard library and gonum.
//
// # Concurrency
//
// A Transformer is owned by one goroutine while it learns. A copy made with
// Clone is immutable by convention and may be read (Dot, Transform) by any
// number of goroutines at once.
package features
