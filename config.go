package eddy

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"gopkg.in/yaml.v3"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream"
)

// Config configures a Service. The zero value of every field but DataDir
// and Learner.Models means its documented default; Validate rejects the
// rest of what cannot work.
type Config struct {
	// Brokers are the bootstrap addresses of the Kafka cluster. Empty
	// starts the embedded development broker (kfake) on EmbeddedAddr
	// instead: convenient, not for production.
	Brokers []string
	// EmbeddedAddr is where the embedded broker listens when Brokers is
	// empty: 127.0.0.1:PORT, PORT 0 picking a free port (Service.Brokers
	// names it). The default is 127.0.0.1:9092.
	EmbeddedAddr string
	// Ephemeral keeps the embedded broker's data in memory only; otherwise
	// it persists under DataDir/kafka. The store is under DataDir either way.
	Ephemeral bool
	// DataDir holds everything the service knows: the Pebble store in
	// DataDir/pebble and the embedded broker's data in DataDir/kafka.
	// Required.
	DataDir string
	// MinFreeBytes is the free space a checkpoint leaves on the file system
	// of DataDir: with less, checkpoints fail and learning pauses
	// (predictions go on, /healthz answers 503 naming the cause) until an
	// operator frees space, and resumes by itself. The default, 0, is 64
	// MiB; negative disables the check.
	MinFreeBytes int64
	// Kafka secures every connection to the brokers (TLS, SASL); the zero
	// value is plaintext. See KafkaConfig.
	Kafka KafkaConfig
	// CreateTopics says whether eddy creates the models' topics (events,
	// labels) when they are missing. The default, nil, creates them on the
	// embedded broker only: on a real cluster a missing topic is then an
	// error naming it, as topics there are usually an operator's. eddy's
	// internal topics (dead letters, state, snapshots, commands) are
	// created when missing either way.
	CreateTopics *bool
	// ReplicationFactor is the replica count of the topics eddy creates;
	// the default, 0, is the broker's default.replication.factor.
	ReplicationFactor int
	// KafkaWait bounds how long Run waits for Kafka to become usable at
	// start (it probes every bootstrap broker with backoff, serving stored
	// snapshots and answering /healthz 503 with the reason meanwhile);
	// then Run fails. The default, 0, waits as long as it takes.
	KafkaWait time.Duration
	// ResetModels names models to start afresh on purpose (eddy serve
	// --reset-model): their local state is deleted before the service
	// starts, and once this instance acquires them their fresh state
	// replaces the one in the group's state topic (see engine.Reset).
	// Models that share a topic are one unit and must be named together.
	// Needs the learn role.
	ResetModels []string
	// storeFS, if set, is the file system Pebble uses (tests inject I/O
	// errors through it; see export_test.go).
	storeFS vfs.FS
	// Group is the Kafka consumer group. The default is "eddy".
	Group string
	// Role is "learn" (the default): the instance joins the group and
	// learns the models the group assigns it, serving every model; or
	// "serve": a serve-only replica that joins no group, serves every
	// model's champion from the group's snapshots topic, follows the topics
	// of models with entity histories to keep them current, and reports
	// NOT_SERVING on gRPC health until it has caught up.
	Role string
	// Partitions is the partition count of the topics the service creates
	// (each model's topic, labels topic and their dead-letter topics);
	// existing topics are left as they are. The default is 1.
	Partitions int
	// GRPCAddr is the listen address of the gRPC server (Inference, Admin,
	// health, reflection); port 0 picks a free port (Service.GRPCAddr names
	// it). The default is 127.0.0.1:50051.
	GRPCAddr string
	// MetricsAddr is the listen address of the HTTP server of /metrics,
	// /healthz and the live page (/ui, /ui/data.json). The default, empty, serves neither: a program embedding the
	// service may serve its registry itself.
	MetricsAddr string
	// MetricsIdleTimeout is how long the metrics server keeps an idle
	// keep-alive connection. The default (also for a negative value) is 2m:
	// longer than Prometheus's default scrape interval (1m), so that scrapes
	// reuse their connection.
	MetricsIdleTimeout time.Duration
	// MetricsTLS, when set, serves /metrics and /healthz over TLS only.
	MetricsTLS *tls.Config
	// Pprof serves Go's profiles (net/http/pprof: CPU, heap, goroutines,
	// allocations, blocking, traces) under /debug/pprof/ on the metrics
	// listener. Off by default: a profile shows the program's internals
	// and a CPU profile or trace costs CPU while it runs, so turn it on
	// only where the metrics address is reachable by operators alone (or
	// with MetricsTLS).
	Pprof bool
	// Learner configures the models (at least one) and their promotion and
	// retention; see engine.Config for its defaults.
	Learner engine.Config
	// Consumer configures how the service consumes and checkpoints.
	Consumer ConsumerConfig
	// Serving configures the gRPC server: admin token, TLS, request and
	// connection limits; see serving.Config for its defaults.
	Serving serving.Config
}

// ConsumerConfig configures the service's Kafka consumer.
type ConsumerConfig struct {
	// CheckpointEvery checkpoints after this many events. The default is
	// 1000.
	CheckpointEvery int
	// CheckpointInterval checkpoints at least this often while events
	// flow. The default is 1s.
	CheckpointInterval time.Duration
	// SessionTimeout is the consumer group session timeout: how long a
	// crashed member keeps its partitions. The default is 10s.
	SessionTimeout time.Duration
	// StateInterval is how often each unit's state is exported to the
	// state topic (Config.StateTopic) while it learns, besides at every
	// handover: it bounds what a new owner replays after a crash. The
	// default is 10s.
	StateInterval time.Duration
	// Start is where a model with no state starts on its topic: "earliest"
	// (the default) or "latest". A model's position comes only from its
	// state, never from the group's committed offsets.
	Start string
}

// StateTopic is the compacted topic that holds each unit's newest exported
// state: the group's name with ".state".
func (c *Config) StateTopic() string { return c.Group + ".state" }

// CommandsTopic carries admin commands to the instance that learns the
// model, and their answers: the group's name with ".commands".
func (c *Config) CommandsTopic() string { return c.Group + ".commands" }

// SnapshotsTopic is the compacted topic that carries every model's
// champions to every instance: the group's name with ".snapshots".
func (c *Config) SnapshotsTopic() string { return c.Group + ".snapshots" }

// Roles of an instance (Config.Role).
const (
	RoleLearn = "learn"
	RoleServe = "serve"
)

// Defaults of Config.
const (
	DefaultEmbeddedAddr       = "127.0.0.1:9092"
	DefaultGRPCAddr           = "127.0.0.1:50051"
	DefaultPartitions         = 1
	DefaultMetricsIdleTimeout = 2 * time.Minute
)

// ErrInvalidConfig is wrapped by the errors of Config.Validate that are the
// service's own (those of learner and serving settings keep their own
// errors).
var ErrInvalidConfig = errors.New("eddy: invalid config")

// EnsureDefaults fills zero fields with their defaults, including those of
// Learner, Consumer and Serving.
func (c *Config) EnsureDefaults() {
	if c.EmbeddedAddr == "" {
		c.EmbeddedAddr = DefaultEmbeddedAddr
	}
	if c.Group == "" {
		c.Group = stream.DefaultGroupID
	}
	if c.Role == "" {
		c.Role = RoleLearn
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.GRPCAddr == "" {
		c.GRPCAddr = DefaultGRPCAddr
	}
	if c.MetricsIdleTimeout <= 0 {
		c.MetricsIdleTimeout = DefaultMetricsIdleTimeout
	}
	c.Learner.EnsureDefaults()
	if c.Consumer.CheckpointEvery == 0 {
		c.Consumer.CheckpointEvery = stream.DefaultCheckpointEvery
	}
	if c.Consumer.CheckpointInterval == 0 {
		c.Consumer.CheckpointInterval = stream.DefaultCheckpointInterval
	}
	if c.Consumer.SessionTimeout == 0 {
		c.Consumer.SessionTimeout = stream.DefaultSessionTimeout
	}
	if c.Consumer.StateInterval == 0 {
		c.Consumer.StateInterval = stream.DefaultStateInterval
	}
	if c.Consumer.Start == "" {
		c.Consumer.Start = "earliest"
	}
	c.Serving.EnsureDefaults()
}

// Validate reports the first invalid setting. Zero values are valid where
// they stand for defaults.
func (c *Config) Validate() error {
	switch {
	case c.DataDir == "":
		return fmt.Errorf("%w: DataDir is required", ErrInvalidConfig)
	case c.Partitions < 0:
		return fmt.Errorf("%w: Partitions is negative (%d)", ErrInvalidConfig, c.Partitions)
	case c.ReplicationFactor < 0:
		return fmt.Errorf("%w: ReplicationFactor is negative (%d)", ErrInvalidConfig, c.ReplicationFactor)
	case c.Consumer.CheckpointEvery < 0 || c.Consumer.CheckpointInterval < 0 || c.Consumer.SessionTimeout < 0 || c.Consumer.StateInterval < 0:
		return fmt.Errorf("%w: checkpoint, state and session settings must not be negative", ErrInvalidConfig)
	case c.Role != "" && c.Role != RoleLearn && c.Role != RoleServe:
		return fmt.Errorf("%w: role %q: want %s or %s", ErrInvalidConfig, c.Role, RoleLearn, RoleServe)
	case len(c.ResetModels) > 0 && c.Role == RoleServe:
		return fmt.Errorf("%w: a serve-only replica learns nothing and cannot reset a model: reset it on a learning instance (role learn)", ErrInvalidConfig)
	case c.Consumer.Start != "" && c.Consumer.Start != "earliest" && c.Consumer.Start != "latest":
		return fmt.Errorf("%w: start %q: want earliest or latest", ErrInvalidConfig, c.Consumer.Start)
	case c.Pprof && c.MetricsAddr == "":
		return fmt.Errorf("%w: Pprof serves profiles on the metrics listener: set MetricsAddr too", ErrInvalidConfig)
	}
	if len(c.Brokers) == 0 && c.EmbeddedAddr != "" {
		if _, err := loopbackPort(c.EmbeddedAddr); err != nil {
			return fmt.Errorf("%w: EmbeddedAddr %w", ErrInvalidConfig, err)
		}
	}
	if err := c.Learner.Validate(); err != nil {
		return err
	}
	return c.Serving.Validate()
}

// loopbackPort returns the port of addr, which must be 127.0.0.1:PORT with
// PORT a number (0: any free port): the embedded broker is for this machine
// alone.
func loopbackPort(addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && host == "127.0.0.1" {
		if n, perr := strconv.ParseUint(port, 10, 16); perr == nil {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%q: want 127.0.0.1:PORT, PORT a number from 0 (any free port) to 65535", addr)
}

// fileConfig is the model configuration file's format, kept apart from
// engine.Config so that a new engine setting is not a file key by
// accident.
type fileConfig struct {
	Models          []learner.ModelConfig `yaml:"models"`
	PromoteInterval time.Duration         `yaml:"promote_interval"`
	RetainSnapshots int                   `yaml:"retain_snapshots"`
	RetainFor       time.Duration         `yaml:"retain_for"`
	RollingWindow   int                   `yaml:"rolling_window"`
	Kafka           KafkaConfig           `yaml:"kafka"`
}

// LoadConfigFile reads a model configuration file (YAML, documented in
// README.md: models, promote_interval, retain_snapshots, retain_for,
// rolling_window) into a learner configuration. Unknown keys are errors; a
// file without models is one too. Defaults are not applied, so that a
// caller can tell which settings the file left out.
func LoadConfigFile(path string) (engine.Config, error) {
	fc, err := readConfigFile(path)
	if err != nil {
		return engine.Config{}, err
	}
	if len(fc.Models) == 0 {
		return engine.Config{}, fmt.Errorf("config %s: no models (want a top-level \"models:\" list)", path)
	}
	return engine.Config{Models: fc.Models, PromoteInterval: fc.PromoteInterval, Retain: fc.RetainSnapshots, RetainFor: fc.RetainFor, RollingWindow: fc.RollingWindow}, nil
}

// LoadKafkaConfigFile reads the "kafka:" section of a configuration file
// (the zero KafkaConfig if it has none).
func LoadKafkaConfigFile(path string) (KafkaConfig, error) {
	fc, err := readConfigFile(path)
	return fc.Kafka, err
}

// LoadAuthFile reads an auth file: who may call which RPC (see
// serving.Access), as YAML:
//
//	require_predict: true     # Predict needs a credential too
//	credentials:
//	  - {name: alice, token: "<32+ random characters>", roles: [admin]}
//	  - {name: dashboards, token: "...", roles: [read]}
//	  - {name: scorer, token: "...", roles: [predict]}
//	  - {name: ops, subject: "CN=ops,O=Example", roles: [admin]}  # a client certificate (mutual TLS)
//
// Unknown keys, unknown roles, duplicate names or tokens and tokens under 16
// characters are errors naming the credential.
func LoadAuthFile(path string) (serving.Access, error) {
	f, err := os.Open(path)
	if err != nil {
		return serving.Access{}, fmt.Errorf("auth file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var a serving.Access
	if err := dec.Decode(&a); err != nil && !errors.Is(err, io.EOF) {
		return serving.Access{}, fmt.Errorf("auth file %s: %w", path, err)
	}
	if err := a.Validate(); err != nil {
		return serving.Access{}, fmt.Errorf("auth file %s: %w", path, err)
	}
	return a, nil
}

func readConfigFile(path string) (fileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return fileConfig{}, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return fileConfig{}, fmt.Errorf("config %s: %w", path, err)
	}
	return fc, nil
}
