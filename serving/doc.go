// Package serving is eddy's gRPC edge: the Inference service (Predict and
// PredictBatch, whose every row is answered as Predict answers it), the
// Admin service (list snapshots, promote or roll back to one and pin it,
// release the pin; describe a model, list its audit log), gRPC health
// checking, server
// reflection, optional TLS.
//
// Access (auth.go) decides who may call what: named credentials, bearer
// tokens compared in constant time or verified client certificates, with
// the roles predict, read and admin; SetAccess replaces them while serving.
// Handlers learn the caller from Identity(ctx).
//
// A Snapshot may also implement SchemaChecker (warnings, strict refusals)
// and Explainer (PredictRequest.explain); an Admin may implement
// SchemaAdmin (GetSchema) and InspectAdmin (Inspect). Without them those
// requests are UNIMPLEMENTED.
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
// The work one request can cause is bounded before it is done: a request
// over Config.MaxRequestBytes is refused (ResourceExhausted) before it is
// read, and a Predict request is read from its bytes straight into the
// fields it is scored with (decode.go; protobuf-go's decoder would build a
// map entry and two messages per feature first): its features are counted
// against Config.MaxFeatures and every string (model, entity key, feature
// names, string values) must be valid UTF-8, so an oversized request is
// never decoded and invalid UTF-8 is an InvalidArgument naming the field,
// not gRPC's INTERNAL "failed to unmarshal". A request refused this way
// costs about its own size in memory. FuzzDecodePredict holds the reader to
// protobuf-go's decoder: the same requests accepted, into the same fields.
// A PredictBatch call's rows are counted against Config.MaxBatchRows before
// any is read. The fields view the request's buffer, which is freed when
// the handler returns: nothing a response holds may point into it (model
// names in responses are the configured strings).
//
// Connections are bounded in time: one that has not finished its TLS and
// HTTP/2 handshakes within Config.HandshakeTimeout (10s) is closed, and one
// without an RPC in flight for Config.MaxConnectionIdle (2 minutes) is sent
// GOAWAY and closed (gRPC clients reconnect on their next call).
//
// # Concurrency
//
// A Server is safe for concurrent use: Predict runs on gRPC's stream
// workers (Config.StreamWorkers) or goroutines, Publish on the learner's.
// Snapshots must be immutable. Per-request scratch (predictCall) comes
// from a pool and goes back when the handler returns.
package serving
