package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream"
)

// serveOptions are the settings of a service, from flags, environment and
// the model configuration file.
type serveOptions struct {
	brokers      string
	embeddedAddr string
	group        string
	dataDir      string
	grpcAddr     string
	metricsAddr  string
	partitions   int
	ephemeral    bool // demo in a temporary directory: the embedded broker keeps no data on disk
	configFile   string
	logLevel     string
	logFormat    string
	adminToken   string
	tlsCert      string
	tlsKey       string
	tlsClientCA  string
	authFile     string
	reflection   bool
	metricsCert  string
	metricsKey   string
	pprof        bool

	grpcIdleTimeout     time.Duration
	grpcMaxRequestBytes int
	metricsIdleTimeout  time.Duration

	checkpointEvery    int
	checkpointInterval time.Duration
	promoteInterval    time.Duration
	retainSnapshots    int
	retainFor          time.Duration
	sessionTimeout     time.Duration
	stateInterval      time.Duration
	start              string
	role               string
	minFreeMiB         int64
	kafkaWait          time.Duration
	createTopics       string
	replicationFactor  int
	resetModels        []string

	model learner.ModelConfig // single model from flags, when no --config
	kafka kafkaOptions
}

const serveUsage = `serve [flags]

Runs eddy: consumes events from Kafka, learns every labeled event the moment
it arrives (predict, score, then learn), checkpoints model state and offsets
to Pebble in one batch, and serves the promoted snapshot of each model over
gRPC with Prometheus metrics beside it.

Without --brokers, eddy starts an embedded Kafka-protocol broker (kfake) on
--embedded-addr: a development default, persisted under --data-dir/kafka.
Models come from --config (YAML, see README.md) or, for one model, from the
--model-* flags. SIGINT/SIGTERM stop it gracefully: gRPC drains, the consumer
writes a final checkpoint, Pebble closes.
`

func (o *serveOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&o.brokers, "brokers", "", "comma-separated Kafka bootstrap brokers; empty starts the embedded broker")
	fs.StringVar(&o.embeddedAddr, "embedded-addr", "127.0.0.1:9092", "listen address of the embedded broker (host must be 127.0.0.1)")
	fs.StringVar(&o.group, "group", stream.DefaultGroupID, "Kafka consumer group")
	fs.StringVar(&o.dataDir, "data-dir", "./eddy-data", "directory of the Pebble store (and of the embedded broker's data)")
	fs.StringVar(&o.grpcAddr, "grpc-addr", "127.0.0.1:50051", "gRPC listen address")
	fs.StringVar(&o.metricsAddr, "metrics-addr", "127.0.0.1:9100", "Prometheus /metrics listen address (empty disables)")
	fs.IntVar(&o.partitions, "partitions", 1, "partitions of topics eddy creates (existing topics are left alone)")
	fs.StringVar(&o.configFile, "config", "", "model configuration file (YAML); overrides the --model-* flags")
	fs.StringVar(&o.adminToken, "admin-token", "", "token the Admin RPCs (promote, rollback, list) must send as \"authorization: Bearer <token>\"; empty: no check (keep --grpc-addr on loopback)")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM certificate file: serve gRPC over TLS (with --tls-key)")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "PEM CA file: verify client certificates signed by it (mutual TLS); a certificate whose subject a credential of --auth-file names is that credential")
	fs.StringVar(&o.authFile, "auth-file", "", "YAML file of named credentials with roles (predict, read, admin), reloaded on SIGHUP (see README, \"Lineage and audit\")")
	fs.BoolVar(&o.reflection, "grpc-reflection", true, "serve gRPC server reflection (false in production: clients then need eddy.proto)")
	fs.StringVar(&o.metricsCert, "metrics-tls-cert", "", "PEM certificate file: serve /metrics and /healthz over TLS (with --metrics-tls-key)")
	fs.StringVar(&o.metricsKey, "metrics-tls-key", "", "PEM private key file of --metrics-tls-cert")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go's profiles (net/http/pprof) under /debug/pprof/ on --metrics-addr; for operators only: keep that address private")
	fs.DurationVar(&o.grpcIdleTimeout, "grpc-idle-timeout", serving.DefaultMaxConnectionIdle, "close gRPC connections with no RPC in flight for this long (clients reconnect on their next call)")
	fs.IntVar(&o.grpcMaxRequestBytes, "grpc-max-request-bytes", serving.DefaultMaxRequestBytes, "largest gRPC request accepted, in bytes (RESOURCE_EXHAUSTED beyond)")
	fs.DurationVar(&o.metricsIdleTimeout, "metrics-idle-timeout", eddy.DefaultMetricsIdleTimeout, "close /metrics keep-alive connections idle for this long")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&o.checkpointEvery, "checkpoint-every", stream.DefaultCheckpointEvery, "checkpoint after this many events")
	fs.DurationVar(&o.checkpointInterval, "checkpoint-interval", stream.DefaultCheckpointInterval, "checkpoint at least this often while events flow")
	fs.DurationVar(&o.promoteInterval, "promote-interval", engine.DefaultPromoteInterval, "snapshot and promote each model this often (if it learned)")
	fs.IntVar(&o.retainSnapshots, "retain-snapshots", engine.DefaultRetain, "newest snapshots kept per model whatever their age")
	fs.DurationVar(&o.retainFor, "retain-for", engine.DefaultRetainFor, fmt.Sprintf("snapshots younger than this are kept too: one is deleted only when beyond both --retain-snapshots and --retain-for (never the served one; at most %d per model)", engine.MaxRetained))
	fs.DurationVar(&o.sessionTimeout, "session-timeout", stream.DefaultSessionTimeout, "consumer group session timeout: how long a crashed instance keeps its models before another takes them over")
	fs.DurationVar(&o.stateInterval, "state-interval", stream.DefaultStateInterval, "export each model's state to the group's state topic this often (and at every handover): bounds what a new owner replays after a crash")
	fs.StringVar(&o.role, "role", eddy.RoleLearn, "learn: join the group and learn the models it assigns (serving all); serve: a serve-only replica that learns nothing, serves every model's champion from the snapshots topic and follows the topics of models with entity histories")
	fs.StringVar(&o.start, "start", "earliest", "where a model with no state starts on its topic: earliest or latest (positions never come from the group's committed offsets)")
	o.kafka.register(fs)
	fs.StringVar(&o.createTopics, "create-topics", "auto", "create the models' missing topics: true, false, or auto (only on the embedded broker; on a cluster a missing topic is then an error naming it). eddy's internal topics (dead letters, state, snapshots, commands) are created when missing either way")
	fs.IntVar(&o.replicationFactor, "replication-factor", 0, "replicas of the topics eddy creates (0: the broker's default.replication.factor)")
	fs.DurationVar(&o.kafkaWait, "kafka-wait", 0, "how long to wait at start for Kafka to be usable before giving up (0: as long as it takes; meanwhile stored snapshots are served and /healthz says why)")
	fs.Int64Var(&o.minFreeMiB, "min-free-mib", 64, "free space (MiB) checkpoints leave on the file system of --data-dir: with less, learning pauses (predictions go on, /healthz answers 503) until space is freed, and resumes by itself; 0 disables the check")
	fs.Func("reset-model", "start this model afresh on purpose (comma-separated or repeated): its local state is deleted, it learns again from the start of its topic (--start), and its fresh state replaces the group's checkpoint once this instance owns it; models sharing a topic are reset together", func(s string) error {
		for _, name := range strings.Split(s, ",") {
			if name = strings.TrimSpace(name); name != "" {
				o.resetModels = append(o.resetModels, name)
			}
		}
		return nil
	})
	fs.StringVar(&o.model.Name, "model-name", "default", "name of the single model (without --config)")
	fs.StringVar(&o.model.Topic, "model-topic", learner.DefaultTopic, "topic the single model learns from")
	fs.StringVar((*string)(&o.model.Task), "model-task", string(learner.Binary), "task of the single model: binary, regression or multiclass")
	fs.StringVar((*string)(&o.model.Features.Scaler), "model-scaler", string(features.ScalerStandard), "scaler of the single model: standard or none")
	fs.IntVar(&o.model.Features.HashBits, "model-hash-bits", features.DefaultHashBits, "hashed categorical space of the single model: 2^bits")
	fs.Float64Var(&o.model.Optimizer.LR, "model-lr", learner.DefaultLR, "SGD learning rate of the single model")
	fs.Float64Var(&o.model.Optimizer.InterceptLR, "model-intercept-lr", learner.DefaultLR, "intercept learning rate of the single model")
	fs.StringVar((*string)(&o.model.Loss), "model-loss", "", "loss of the single model (default: log, squared or softmax by task; also hinge, absolute, huber, epsilon_insensitive)")
	fs.StringVar((*string)(&o.model.Optimizer.Kind), "model-optimizer", string(learner.SGD), "optimizer of the single model: sgd, adagrad, adam or ftrl")
	fs.Float64Var(&o.model.Optimizer.L1, "model-l1", 0, "L1 regularisation of the single model")
	fs.Float64Var(&o.model.Optimizer.L2, "model-l2", 0, "L2 regularisation of the single model")
	fs.StringVar(&o.model.Drift.Detector, "model-drift", "", "drift detector of the single model (adwin, page-hinkley, ddm, eddm, kswin); empty: periodic promotion")
	fs.Func("model-drift-param", "a parameter of the single model's drift detector as NAME=VALUE, by River's names (e.g. delta=0.02; repeatable)", func(s string) error {
		name, value, ok := strings.Cut(s, "=")
		x, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			return fmt.Errorf("want NAME=NUMBER, got %q", s)
		}
		if o.model.Drift.Params == nil {
			o.model.Drift.Params = map[string]float64{}
		}
		o.model.Drift.Params[name] = x
		return nil
	})
}

// engineConfig builds the learner configuration from the options: the
// --config file's, with the promotion and retention flags for what the file
// leaves out, or the single model of the --model-* flags.
func (o *serveOptions) engineConfig() (engine.Config, error) {
	cfg := engine.Config{Models: []learner.ModelConfig{o.model}, PromoteInterval: o.promoteInterval, Retain: o.retainSnapshots, RetainFor: o.retainFor}
	if o.configFile != "" {
		var err error
		if cfg, err = eddy.LoadConfigFile(o.configFile); err != nil {
			return cfg, err
		}
		if cfg.PromoteInterval == 0 {
			cfg.PromoteInterval = o.promoteInterval
		}
		if cfg.Retain == 0 {
			cfg.Retain = o.retainSnapshots
		}
		if cfg.RetainFor == 0 {
			cfg.RetainFor = o.retainFor
		}
	}
	cfg.EnsureDefaults()
	return cfg, cfg.Validate()
}

// serviceConfig maps the options onto the service's configuration, loading
// the files they name (model configuration, TLS certificate).
func (o *serveOptions) serviceConfig() (eddy.Config, error) {
	engineCfg, err := o.engineConfig()
	if err != nil {
		return eddy.Config{}, err
	}
	kafkaCfg, err := o.kafka.config(o.configFile)
	if err != nil {
		return eddy.Config{}, err
	}
	cfg := eddy.Config{
		Kafka:              kafkaCfg,
		KafkaWait:          o.kafkaWait,
		ReplicationFactor:  o.replicationFactor,
		EmbeddedAddr:       o.embeddedAddr,
		Ephemeral:          o.ephemeral,
		DataDir:            o.dataDir,
		MinFreeBytes:       minFreeBytes(o.minFreeMiB),
		ResetModels:        o.resetModels,
		Group:              o.group,
		Role:               o.role,
		Partitions:         o.partitions,
		GRPCAddr:           o.grpcAddr,
		MetricsAddr:        o.metricsAddr,
		MetricsIdleTimeout: o.metricsIdleTimeout,
		Pprof:              o.pprof,
		Learner:            engineCfg,
		Consumer: eddy.ConsumerConfig{
			CheckpointEvery:    o.checkpointEvery,
			CheckpointInterval: o.checkpointInterval,
			SessionTimeout:     o.sessionTimeout,
			StateInterval:      o.stateInterval,
			Start:              o.start,
		},
		Serving: serving.Config{AdminToken: o.adminToken, MaxConnectionIdle: o.grpcIdleTimeout, MaxRequestBytes: o.grpcMaxRequestBytes},
	}
	switch strings.ToLower(o.createTopics) {
	case "", "auto":
	case "true":
		yes := true
		cfg.CreateTopics = &yes
	case "false":
		no := false
		cfg.CreateTopics = &no
	default:
		return cfg, fmt.Errorf("--create-topics %q: want true, false or auto", o.createTopics)
	}
	if o.brokers != "" {
		cfg.Brokers = strings.Split(o.brokers, ",")
	} else if _, err := loopbackPort("--embedded-addr", o.embeddedAddr); err != nil {
		return cfg, err
	}
	if o.tlsCert != "" || o.tlsKey != "" {
		if o.tlsCert == "" || o.tlsKey == "" {
			return cfg, errors.New("--tls-cert and --tls-key go together")
		}
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return cfg, fmt.Errorf("TLS: %w", err)
		}
		cfg.Serving.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if o.tlsClientCA != "" {
		if cfg.Serving.TLS == nil {
			return cfg, errors.New("--tls-client-ca needs --tls-cert and --tls-key: client certificates are verified over TLS")
		}
		pem, err := os.ReadFile(o.tlsClientCA)
		if err != nil {
			return cfg, fmt.Errorf("--tls-client-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return cfg, fmt.Errorf("--tls-client-ca %s: no PEM certificate in it", o.tlsClientCA)
		}
		cfg.Serving.TLS.ClientCAs, cfg.Serving.TLS.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	if o.metricsCert != "" || o.metricsKey != "" {
		if o.metricsCert == "" || o.metricsKey == "" {
			return cfg, errors.New("--metrics-tls-cert and --metrics-tls-key go together")
		}
		cert, err := tls.LoadX509KeyPair(o.metricsCert, o.metricsKey)
		if err != nil {
			return cfg, fmt.Errorf("metrics TLS: %w", err)
		}
		cfg.MetricsTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	cfg.Serving.NoReflection = !o.reflection
	if o.authFile != "" {
		a, err := eddy.LoadAuthFile(o.authFile)
		if err != nil {
			return cfg, err
		}
		cfg.Serving.Access = a
	}
	return cfg, nil
}

// reloadAccessOnHangup reloads --auth-file into svc on each SIGHUP until
// ctx ends; a file that does not load is logged and changes nothing.
func reloadAccessOnHangup(ctx context.Context, o serveOptions, svc *eddy.Service, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if o.authFile == "" {
				log.Warn("SIGHUP ignored: there is no --auth-file to reload")
				continue
			}
			a, err := eddy.LoadAuthFile(o.authFile)
			if err == nil {
				err = svc.SetAccess(a)
			}
			if err != nil {
				log.Error("auth file not reloaded; the previous credentials stay in force", "file", o.authFile, "err", err)
			}
		}
	}()
}

// minFreeBytes maps --min-free-mib onto Config.MinFreeBytes, where 0 is
// the default and negative disables the check.
func minFreeBytes(mib int64) int64 {
	if mib <= 0 {
		return -1
	}
	return mib << 20
}

func runServe(ctx context.Context, env *environment, args []string) error {
	var o serveOptions
	fs := newFlagSet(env, "serve", serveUsage)
	o.register(fs)
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	log, err := newLogger(env.stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	svc, err := startService(ctx, o, log, newRegistry())
	if err != nil {
		return err
	}
	reloadAccessOnHangup(ctx, o, svc, log)
	return svc.Run(ctx)
}

// startService maps the options onto a Service and builds it.
func startService(ctx context.Context, o serveOptions, log *slog.Logger, reg *prometheus.Registry) (*eddy.Service, error) {
	cfg, err := o.serviceConfig()
	if err != nil {
		return nil, err
	}
	return eddy.New(ctx, cfg, log, reg)
}

// newRegistry returns the process's Prometheus registry: the service's
// metrics beside the Go runtime's and the process's.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// loadConfigFile reads a model configuration file (eddy.LoadConfigFile),
// for evaluate.
func loadConfigFile(path string) (*engine.Config, error) {
	cfg, err := eddy.LoadConfigFile(path)
	if err != nil {
		return nil, err
	}
	return &cfg, nil
}
