package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"
	"gopkg.in/yaml.v3"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
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

	grpcIdleTimeout     time.Duration
	grpcMaxRequestBytes int
	metricsIdleTimeout  time.Duration

	checkpointEvery    int
	checkpointInterval time.Duration
	promoteInterval    time.Duration
	retainSnapshots    int
	retainFor          time.Duration
	sessionTimeout     time.Duration

	model learner.ModelConfig // single model from flags, when no --config
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
	fs.DurationVar(&o.grpcIdleTimeout, "grpc-idle-timeout", serving.DefaultMaxConnectionIdle, "close gRPC connections with no RPC in flight for this long (clients reconnect on their next call)")
	fs.IntVar(&o.grpcMaxRequestBytes, "grpc-max-request-bytes", serving.DefaultMaxRequestBytes, "largest gRPC request accepted, in bytes (RESOURCE_EXHAUSTED beyond)")
	fs.DurationVar(&o.metricsIdleTimeout, "metrics-idle-timeout", defaultMetricsIdleTimeout, "close /metrics keep-alive connections idle for this long")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.IntVar(&o.checkpointEvery, "checkpoint-every", stream.DefaultCheckpointEvery, "checkpoint after this many events")
	fs.DurationVar(&o.checkpointInterval, "checkpoint-interval", stream.DefaultCheckpointInterval, "checkpoint at least this often while events flow")
	fs.DurationVar(&o.promoteInterval, "promote-interval", engine.DefaultPromoteInterval, "snapshot and promote each model this often (if it learned)")
	fs.IntVar(&o.retainSnapshots, "retain-snapshots", engine.DefaultRetain, "newest snapshots kept per model whatever their age")
	fs.DurationVar(&o.retainFor, "retain-for", engine.DefaultRetainFor, fmt.Sprintf("snapshots younger than this are kept too: one is deleted only when beyond both --retain-snapshots and --retain-for (never the served one; at most %d per model)", engine.MaxRetained))
	fs.DurationVar(&o.sessionTimeout, "session-timeout", stream.DefaultSessionTimeout, "consumer group session timeout")
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

// fileConfig is the YAML model configuration file.
type fileConfig struct {
	Models          []learner.ModelConfig `yaml:"models"`
	PromoteInterval time.Duration         `yaml:"promote_interval"`
	RetainSnapshots int                   `yaml:"retain_snapshots"`
	RetainFor       time.Duration         `yaml:"retain_for"`
	RollingWindow   int                   `yaml:"rolling_window"`
}

// engineConfig builds the learner configuration from the options.
func (o *serveOptions) engineConfig() (engine.Config, error) {
	cfg := engine.Config{Models: []learner.ModelConfig{o.model}, PromoteInterval: o.promoteInterval, Retain: o.retainSnapshots, RetainFor: o.retainFor}
	if o.configFile != "" {
		fc, err := loadConfigFile(o.configFile)
		if err != nil {
			return cfg, err
		}
		cfg = engine.Config{Models: fc.Models, PromoteInterval: fc.PromoteInterval, Retain: fc.RetainSnapshots, RetainFor: fc.RetainFor, RollingWindow: fc.RollingWindow}
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

func loadConfigFile(path string) (*fileConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(fc.Models) == 0 {
		return nil, fmt.Errorf("config %s: no models (want a top-level \"models:\" list)", path)
	}
	return &fc, nil
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
	svc, err := startService(ctx, o, log)
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// service is one running eddy: broker (if embedded), store, engine,
// consumer, gRPC server and metrics endpoint.
type service struct {
	opts     serveOptions
	log      *slog.Logger
	registry *prometheus.Registry
	brokers  []string
	broker   *stream.EmbeddedBroker // nil with --brokers
	store    *store.Store
	engine   *engine.Engine
	consumer *stream.Consumer
	server   *serving.Server
	grpcLis  net.Listener
	httpLis  net.Listener // nil when metrics are disabled
}

// startService builds everything and binds the listeners, so that addresses
// are known (and port conflicts reported) before Run. On error, whatever was
// started is stopped again.
func startService(ctx context.Context, o serveOptions, log *slog.Logger) (_ *service, err error) {
	engineCfg, err := o.engineConfig()
	if err != nil {
		return nil, err
	}
	s := &service{opts: o, log: log, registry: prometheus.NewRegistry()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	s.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := s.startBroker(ctx, engineCfg); err != nil {
		return nil, err
	}
	if s.store, err = store.Open(filepath.Join(o.dataDir, "pebble"), log, nil); err != nil {
		return nil, err
	}
	var names []string
	for _, m := range engineCfg.Models {
		names = append(names, m.Name)
	}
	servingCfg := serving.Config{AdminToken: o.adminToken, MaxConnectionIdle: o.grpcIdleTimeout, MaxRequestBytes: o.grpcMaxRequestBytes}
	if o.tlsCert != "" || o.tlsKey != "" {
		if o.tlsCert == "" || o.tlsKey == "" {
			return nil, errors.New("--tls-cert and --tls-key go together")
		}
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		servingCfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if s.server, err = serving.New(servingCfg, names, s.registry, log); err != nil {
		return nil, err
	}
	publish := func(snap *learner.Snapshot) {
		if err := s.server.Publish(snap); err != nil {
			log.Error("publish snapshot", "err", err)
		}
	}
	if s.engine, err = engine.New(engineCfg, s.store, publish, s.registry, log); err != nil {
		return nil, err
	}
	s.server.SetAdmin(engineAdmin{s.engine})
	s.consumer, err = stream.NewConsumer(stream.ConsumerConfig{
		Brokers:            s.brokers,
		Topics:             s.engine.Topics(),
		LabelTopics:        s.engine.LabelTopics(),
		GroupID:            o.group,
		CheckpointEvery:    o.checkpointEvery,
		CheckpointInterval: o.checkpointInterval,
		SessionTimeout:     o.sessionTimeout,
	}, newEngineHandler(s.engine), s.registry, log)
	if err != nil {
		return nil, err
	}
	if s.grpcLis, err = net.Listen("tcp", o.grpcAddr); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if o.metricsAddr != "" {
		if s.httpLis, err = net.Listen("tcp", o.metricsAddr); err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	return s, nil
}

// startBroker starts the embedded broker when no brokers are given, then
// makes sure every topic and dead-letter topic exists.
func (s *service) startBroker(ctx context.Context, cfg engine.Config) error {
	if s.opts.brokers != "" {
		s.brokers = strings.Split(s.opts.brokers, ",")
	} else {
		port, err := loopbackPort("--embedded-addr", s.opts.embeddedAddr)
		if err != nil {
			return err
		}
		brokerDir := filepath.Join(s.opts.dataDir, "kafka")
		if s.opts.ephemeral {
			brokerDir = ""
		}
		s.broker, err = stream.StartEmbeddedBroker(stream.EmbeddedConfig{
			Port:    port,
			DataDir: brokerDir,
		})
		if err != nil {
			return err
		}
		s.brokers = []string{s.broker.Addr()}
		s.log.Warn("started the embedded Kafka-protocol broker (kfake): a development default, not for production; pass --brokers to use a Kafka cluster",
			"addr", s.broker.Addr())
	}
	var topics []stream.TopicSpec
	seen := make(map[string]bool)
	for _, m := range cfg.Models {
		names := []string{m.Topic, m.Topic + stream.DefaultDeadLetterSuffix}
		if m.LabelsTopic != "" {
			names = append(names, m.LabelsTopic, m.LabelsTopic+stream.DefaultDeadLetterSuffix)
		}
		for _, t := range names {
			if !seen[t] {
				seen[t] = true
				topics = append(topics, stream.TopicSpec{Name: t, Partitions: s.opts.partitions})
			}
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := stream.WaitForBroker(tctx, s.brokers[0]); err != nil {
		return err
	}
	return stream.EnsureTopics(tctx, s.brokers, topics)
}

func (s *service) grpcAddr() string { return s.grpcLis.Addr().String() }

func (s *service) metricsAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// Run serves until ctx is done or a component fails, then shuts down in
// order: gRPC stops accepting and drains, the consumer stops and writes its
// final checkpoint, Pebble closes, the embedded broker stops.
func (s *service) Run(ctx context.Context) error {
	defer s.close()
	g, gctx := errgroup.WithContext(ctx)
	consumerCtx, stopConsumer := context.WithCancel(context.Background())
	defer stopConsumer()
	g.Go(func() error {
		defer stopConsumer()
		return s.server.Serve(gctx, s.grpcLis)
	})
	g.Go(func() error {
		if err := s.consumer.Run(consumerCtx); err != nil {
			return fmt.Errorf("consumer stopped: %w", err)
		}
		return nil
	})
	if s.httpLis != nil {
		g.Go(func() error { return s.serveMetrics(gctx) })
	}
	s.log.Info("eddy is running", "brokers", s.brokers, "grpc", s.grpcAddr(), "metrics", s.metricsAddr(), "data_dir", s.opts.dataDir)
	err := g.Wait()
	if err != nil {
		s.log.Error("eddy stopped", "err", err)
		return err
	}
	s.log.Info("eddy stopped cleanly")
	return nil
}

// defaultMetricsIdleTimeout is how long the metrics server keeps an idle
// keep-alive connection: longer than Prometheus's default scrape interval
// (1m), so that scrapes reuse their connection.
const defaultMetricsIdleTimeout = 2 * time.Minute

func (s *service) serveMetrics(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{Registry: s.registry}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if since := s.consumer.BrokerDownSince(); !since.IsZero() {
			// Predictions are still served from snapshots; learning waits.
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "kafka unreachable since %s: not learning (predictions still served)\n", since.UTC().Format(time.RFC3339))
			return
		}
		fmt.Fprintln(w, "ok")
	})
	idle := s.opts.metricsIdleTimeout
	if idle <= 0 {
		idle = defaultMetricsIdleTimeout
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: idle}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(s.httpLis) }()
	select {
	case err := <-errc:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// close releases what startService acquired; safe on a partial service.
func (s *service) close() {
	if s.grpcLis != nil {
		s.grpcLis.Close()
	}
	if s.httpLis != nil {
		s.httpLis.Close()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.log.Error("close store", "err", err)
		}
		s.store = nil
	}
	if s.broker != nil {
		s.broker.Close()
		s.broker = nil
	}
}
