// Package serving is eddy's gRPC edge: the Inference service (Predict), the
// Admin service (list snapshots, promote or roll back to one and pin it,
// release the pin; optionally behind a token), gRPC health checking, server
// reflection, optional TLS.
//
// Each configured model has one published Snapshot, held in an atomic
// pointer: Publish swaps it (promotion), Predict loads it once per request,
// so a request is always answered entirely by one immutable snapshot, and
// every response names that snapshot's version. serving never sees live
// models; it depends only on the small Snapshot interface defined here and
// on the raw field type of package features.
//
// Errors become gRPC status codes here and nowhere else: InvalidArgument for
// malformed requests (naming the problem), NotFound for unknown models,
// Unavailable while a model has no snapshot yet. Internal errors are logged
// here, once, and answered with a generic message: their text may name
// keys and paths.
//
// # Concurrency
//
// A Server is safe for concurrent use: Predict runs on gRPC's goroutines,
// Publish on the learner's. Snapshots must be immutable.
package serving
