// Package stream moves events from Kafka into eddy: it consumes topics with a
// kafka-go consumer group, decodes each message as a JSON event (see Event
// and Decoder for the contract), routes invalid events to a dead-letter topic
// with the reason, and tracks the next offset of every partition it owns.
//
// stream knows nothing about models. It calls a Handler, defined here, from a
// single goroutine: Handle for every valid event and Checkpoint with the next
// offsets that exactly reflect the events handled so far. The Handler stores
// those offsets with its state.
//
// A Handler that is an Owner splits its state into units (Unit: models and
// every topic they read). The group then uses a UnitBalancer, which gives
// every partition of a unit to one member and keeps units where they are
// across rebalances; positions come only from the handler's state
// (NextOffsets), never from the group's committed offsets (advisory, for
// lag), and a partition without one starts at ConsumerConfig.Start. When a
// member takes a unit over it reads the unit's newest exported state from
// ConsumerConfig.StateTopic (a StateLog: chunked, fenced by owner epoch,
// safe under compaction), lets the handler keep the newer of that and its
// local state (Owner.Acquire), and exports it at once under its new epoch;
// it exports every StateInterval and whenever ownership ends. A member
// follows, as a standby (Owner.Follow), the units it does not own whose
// Unit.Standby is set; with ConsumerConfig.FollowOnly it joins no group and
// follows them all (a serve-only replica).
//
// A rebalance hands partitions over exactly: the processing loop runs inside
// the generation (kafka-go's Generation.Start), so the final checkpoint, the
// export and the commit finish before this member rejoins and before the
// group can complete the rebalance; a revoked partition's buffered messages
// are dropped at once, unhandled. A handler that is not an Owner keeps the
// old rule: its stored offset, unless the group's committed offset is further
// along.
//
// Bus is a single-partition topic through which instances send each other
// small messages (admin commands for a model another instance learns).
//
// Between generations (during a rebalance or a broker outage) the Consumer
// still serves the Handler's Waker, calling Checkpoint(nil): admin commands
// never wait for the group.
//
// Dead-lettered events are written to "<topic>.dlq" (configurable suffix)
// with headers eddy-reason (a bounded code), eddy-detail (a message),
// eddy-source-topic, eddy-source-partition and eddy-source-offset. They are
// flushed, acknowledged by all in-sync replicas, before each checkpoint, so a
// bad event is never lost (after a crash it may be dead-lettered twice).
//
// Every id, key, feature name and categorical value an accepted event
// carries is valid UTF-8 (ReasonInvalidUTF8 otherwise), so whatever is
// learned can be named in a protobuf response.
//
// Producers write events with AppendEvent, the decoder's inverse: what it
// writes decodes to the same event (FuzzEncodeDecode checks both ways), and
// it refuses, with the decoder's Reason, what a consumer would dead-letter.
// CSVReader reads CSV rows as events by the rules eddy's produce and
// evaluate commands share, so that a row means one event to both.
//
// Topics listed as label topics carry delayed labels, {"id": ..., "label":
// ...}, handed to Handler.HandleLabel. Labels are parsed by the event
// decoder (Decoder.DecodeLabel), so a label is invalid for exactly the
// reasons an event is, with the same Reason codes. The Consumer probes its brokers every
// second and reports an outage (BrokerDownSince, a gauge, one log line each
// way); a failing group join is likewise logged once per outage.
//
// The package also creates topics (EnsureTopics) and waits for a broker
// (WaitForBroker). The development broker (kfake) lives in stream/devbroker,
// which this package does not import.
//
// # Concurrency
//
// A Consumer runs one fetch goroutine per assigned or followed partition, a
// broker prober, and one processing goroutine at a time that owns the Decoder and
// calls the Handler (inside a generation the generation's loop, between
// generations Run itself); the Handler therefore needs no locks. Run returns
// only after every goroutine it started has stopped, and closes its group
// within about 3.5 s whatever the group is doing. Stats, CaughtUp and
// BrokerDownSince may be called from any goroutine; a StateLog, a Bus and a
// UnitBalancer are safe for concurrent use as their docs say.
package stream
