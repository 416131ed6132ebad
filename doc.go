// Package eddy is the eddy service as a library: a Go program starts the
// same service `eddy serve` runs, with New and Run.
//
// A Service wires eddy's packages together: a Kafka consumer group
// (package stream) feeds every event to a engine.Engine, which predicts,
// scores and then learns it, watches drift and promotes snapshots; the
// engine checkpoints model state and the next offsets in one Pebble batch
// under Config.DataDir; package serving answers Predict and the Admin RPCs
// over gRPC from the promoted snapshots; /metrics, /healthz and the live
// page (/ui, ui.go: curves sampled every second, admin actions only with an
// auth file's admin credential) are served over HTTP when
// Config.MetricsAddr is set. Without Config.Brokers it starts
// an embedded development broker (kfake, stream/devbroker) on 127.0.0.1.
//
// New builds everything and binds the listeners, so that GRPCAddr,
// MetricsAddr and Brokers are known, and port conflicts reported, before
// Run. Run serves until its context is done or a component fails, then
// shuts down in order: gRPC stops accepting and drains (bounded by
// serving.Config.ShutdownGrace), the consumer stops and writes its final
// checkpoint, Pebble closes, the embedded broker stops.
//
// Invariants, kept by the packages the Service wires together: every
// labeled event is learned exactly once across restarts (consumption
// resumes at the offsets stored with the state); a bad event goes to its
// topic's dead-letter topic with a reason and never reaches a model; every
// Predict answer names the immutable snapshot version it came from.
//
// What a user may touch: Config (zero values are the documented defaults;
// LoadConfigFile reads the YAML model file `eddy serve --config` reads), New,
// Run, the address getters and Stats. The logger and the Prometheus
// registerer are the caller's: New only registers its metrics. The store
// under DataDir belongs to the running Service alone; open it (with
// store.Open) only once Run has returned.
//
// # Concurrency
//
// Run is called once, from one goroutine; it releases everything New
// acquired when it returns (a Service that will not run is released by
// calling Run with a done context). GRPCAddr, MetricsAddr, Brokers and Stats
// are safe for concurrent use at any time after New, also during and after
// Run. Inside, one goroutine (the consumer's) owns the engine and its
// models; gRPC requests read snapshots through atomic pointers.
package eddy
