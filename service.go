package eddy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream"
	"github.com/eddyhq/eddy/stream/devbroker"
)

// ErrRunTwice is returned by a second call of Run: a Service runs once.
var ErrRunTwice = errors.New("eddy: Run called twice")

// Service is one running eddy: broker (if embedded), store, engine,
// consumer, gRPC server and metrics endpoint. Create it with New, then call
// Run once; see the package documentation for what is safe to call when.
type Service struct {
	cfg              Config
	log              *slog.Logger
	reg              prometheus.Registerer
	gatherer         prometheus.Gatherer // serves /metrics; nil without MetricsAddr
	cluster          stream.Cluster
	broker           *devbroker.Broker // nil with Config.Brokers
	store            *store.Store
	engine           *engine.Engine
	consumer         *stream.Consumer
	server           *serving.Server
	champs           *champions
	bus              *stream.Bus
	admin            *groupAdmin
	grpcLis          net.Listener
	httpLis          net.Listener // nil when metrics are disabled
	started          atomic.Bool
	dataTopics       []stream.TopicSpec // the models' topics and labels topics
	deadLetterTopics []stream.TopicSpec
	waiting          atomic.Pointer[kafkaWaiting] // set while Run waits for Kafka
	ready            chan struct{}                // closed once Run has connected and created the topics
}

// Connected returns a channel that is closed once Run has found Kafka
// usable and created the missing topics: from then on events produced to
// the models' topics are learned.
func (s *Service) Connected() <-chan struct{} { return s.ready }

// kafkaWaiting is what /healthz says while Run waits for Kafka.
type kafkaWaiting struct {
	since  time.Time
	reason string
}

// New builds a Service from cfg and binds its listeners, so that its
// addresses are known (and port conflicts reported) before Run: it starts
// the embedded broker when cfg.Brokers is empty, opens the store under
// cfg.DataDir and restores every model. It does not contact Kafka: Run
// waits for it (Config.KafkaWait) with gRPC and /healthz already up, then
// creates the missing topics. On error, whatever was started is stopped
// again.
//
// log receives the service's state changes (nil: discarded). Metrics are
// registered with reg (nil: a private registry); with cfg.MetricsAddr, reg
// must also be a prometheus.Gatherer, such as a *prometheus.Registry, whose
// metrics /metrics then serves. The caller owns reg: a process that runs
// one Service usually registers the Go and process collectors in it too.
func New(ctx context.Context, cfg Config, log *slog.Logger, reg prometheus.Registerer) (_ *Service, err error) {
	cfg.Learner.Models = append([]learner.ModelConfig(nil), cfg.Learner.Models...) // never write the caller's slice
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Service{cfg: cfg, log: log, reg: reg, ready: make(chan struct{})}
	if cfg.MetricsAddr != "" {
		g, ok := reg.(prometheus.Gatherer)
		if !ok {
			return nil, fmt.Errorf("%w: MetricsAddr needs a registerer that is also a prometheus.Gatherer (such as *prometheus.Registry)", ErrInvalidConfig)
		}
		s.gatherer = g
	}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if err := s.startBroker(ctx); err != nil {
		return nil, err
	}
	if s.broker != nil {
		// The embedded broker is this process's: its topics exist when New
		// returns, as a program producing to it right away expects.
		if err := s.connect(ctx); err != nil {
			return nil, err
		}
	}
	if s.store, err = store.Open(filepath.Join(cfg.DataDir, "pebble"), log, &store.Options{MinFreeBytes: cfg.MinFreeBytes, FS: cfg.storeFS}); err != nil {
		return nil, err
	}
	var names []string
	for _, m := range cfg.Learner.Models {
		names = append(names, m.Name)
	}
	if s.server, err = serving.New(cfg.Serving, names, reg, log); err != nil {
		return nil, err
	}
	if s.champs, err = newChampions(cfg, s.cluster, s.server, log); err != nil {
		return nil, err
	}
	if s.engine, err = engine.New(cfg.Learner, s.store, s.champs.publish, reg, log); err != nil {
		return nil, err
	}
	if len(cfg.ResetModels) > 0 {
		if err := s.engine.Reset(cfg.ResetModels); err != nil {
			return nil, err
		}
	}
	s.champs.engine = s.engine
	s.engine.SetOnLoad(s.champs.reloaded)
	s.engine.SetVersionFloor(s.champs.highestVersion)
	s.admin = newGroupAdmin(s.engine, s.server, s.bus, log)
	s.server.SetAdmin(s.admin)
	s.consumer, err = stream.NewConsumer(stream.ConsumerConfig{
		Brokers:            s.cluster.Brokers,
		TLS:                s.cluster.TLS,
		SASL:               s.cluster.SASL,
		Topics:             s.engine.Topics(),
		LabelTopics:        s.engine.LabelTopics(),
		GroupID:            cfg.Group,
		CheckpointEvery:    cfg.Consumer.CheckpointEvery,
		CheckpointInterval: cfg.Consumer.CheckpointInterval,
		SessionTimeout:     cfg.Consumer.SessionTimeout,
		StateTopic:         cfg.StateTopic(),
		FollowOnly:         cfg.Role == RoleServe,
		StateInterval:      cfg.Consumer.StateInterval,
		Start:              cfg.Consumer.Start,
	}, newEngineHandler(s.engine), reg, log)
	if err != nil {
		return nil, err
	}
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("gRPC listener: %w", err)
	}
	if cfg.MetricsAddr != "" {
		if s.httpLis, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
	}
	return s, nil
}

// startBroker starts the embedded broker when no brokers are given, then
// makes sure every topic and dead-letter topic exists.
func (s *Service) startBroker(ctx context.Context) error {
	tlsConfig, mechanism, err := s.cfg.Kafka.Security()
	if err != nil {
		return err
	}
	if len(s.cfg.Brokers) == 0 && (tlsConfig != nil || mechanism != nil) {
		return fmt.Errorf("%w: Kafka TLS or SASL settings need brokers (--brokers): the embedded broker is plaintext", ErrInvalidConfig)
	}
	if len(s.cfg.Brokers) > 0 {
		s.cluster = stream.Cluster{Brokers: slices.Clone(s.cfg.Brokers), TLS: tlsConfig, SASL: mechanism}
	} else {
		port, _ := loopbackPort(s.cfg.EmbeddedAddr) // checked by Validate
		brokerDir := filepath.Join(s.cfg.DataDir, "kafka")
		if s.cfg.Ephemeral {
			brokerDir = ""
		}
		s.broker, err = devbroker.Start(devbroker.Config{
			Port:    port,
			DataDir: brokerDir,
		})
		if err != nil {
			return err
		}
		s.cluster = stream.Cluster{Brokers: []string{s.broker.Addr()}}
		s.log.Warn("started the embedded Kafka-protocol broker (kfake): a development default, not for production; pass --brokers to use a Kafka cluster",
			"addr", s.broker.Addr())
	}
	seen := make(map[string]bool)
	for _, m := range s.cfg.Learner.Models {
		names := []string{m.Topic}
		if m.LabelsTopic != "" {
			names = append(names, m.LabelsTopic)
		}
		for _, t := range names {
			if !seen[t] {
				seen[t] = true
				s.dataTopics = append(s.dataTopics, stream.TopicSpec{Name: t, Partitions: s.cfg.Partitions, ReplicationFactor: s.cfg.ReplicationFactor})
				s.deadLetterTopics = append(s.deadLetterTopics, stream.TopicSpec{Name: t + stream.DefaultDeadLetterSuffix, Partitions: s.cfg.Partitions, ReplicationFactor: s.cfg.ReplicationFactor})
			}
		}
	}
	s.bus = stream.NewBus(s.cluster, s.cfg.CommandsTopic(), s.log)
	return nil
}

// createTopics reports whether eddy creates the models' missing topics:
// Config.CreateTopics, by default only on the embedded broker.
func (s *Service) createTopics() bool {
	if s.cfg.CreateTopics != nil {
		return *s.cfg.CreateTopics
	}
	return s.broker != nil
}

// connect waits until Kafka can be used (logging at once what it waits
// for, and each new reason; /healthz says it too), at most
// Config.KafkaWait if set, then creates the topics that are missing. It
// returns nil when ctx ends first.
func (s *Service) connect(ctx context.Context) error {
	start := time.Now()
	err := stream.WaitForCluster(ctx, s.cluster, s.cfg.KafkaWait, func(err error) {
		s.waiting.Store(&kafkaWaiting{since: start, reason: err.Error()})
		s.log.Warn("waiting for Kafka; stored snapshots are served meanwhile", "brokers", s.cluster.Brokers, "reason", err.Error())
	})
	switch {
	case ctx.Err() != nil:
		if s.waiting.Load() != nil {
			s.log.Info("interrupted while waiting for Kafka", "brokers", s.cluster.Brokers)
		}
		return nil
	case err != nil:
		return fmt.Errorf("kafka not usable at %s within %v (--kafka-wait): %w", strings.Join(s.cluster.Brokers, ","), s.cfg.KafkaWait, err)
	}
	if s.waiting.Swap(nil) != nil {
		s.log.Info("Kafka is usable: starting to learn", "brokers", s.cluster.Brokers, "waited", time.Since(start).Round(time.Millisecond))
	}
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.createTopics() {
		if err := s.cluster.EnsureTopics(tctx, s.dataTopics); err != nil {
			return err
		}
	} else {
		var names []string
		for _, t := range s.dataTopics {
			names = append(names, t.Name)
		}
		missing, err := s.cluster.MissingTopics(tctx, names)
		if err != nil {
			return err
		}
		if len(missing) > 0 {
			return fmt.Errorf("the models' topics %s do not exist on the cluster: create them (kafka-topics.sh --create --topic NAME --partitions N), or let eddy create them with --create-topics true",
				strings.Join(missing, ", "))
		}
	}
	// Internal topics are eddy's own: created when missing, whatever
	// CreateTopics says, with the configuration they need.
	if err := s.cluster.EnsureTopics(tctx, s.deadLetterTopics); err != nil {
		return err
	}
	for _, name := range []string{s.cfg.StateTopic(), s.cfg.SnapshotsTopic()} {
		problems, err := stream.EnsureStateTopic(tctx, s.cluster, name, s.cfg.ReplicationFactor)
		if err != nil {
			return err
		}
		for _, p := range problems {
			s.log.Warn("internal topic misconfigured", "topic", name, "problem", p)
		}
	}
	if err := s.bus.EnsureTopic(tctx); err != nil {
		return err
	}
	close(s.ready)
	return nil
}

// SetAccess replaces who may call which RPC (a reloaded auth file), at once
// for every later call; an invalid one is refused and changes nothing.
func (s *Service) SetAccess(a serving.Access) error {
	if err := s.server.SetAccess(a); err != nil {
		return err
	}
	s.log.Info("access replaced", "credentials", len(a.Credentials), "require_predict", a.RequirePredict)
	return nil
}

// GRPCAddr returns the address the gRPC server listens on (with port 0 in
// Config.GRPCAddr, the port chosen).
func (s *Service) GRPCAddr() string { return s.grpcLis.Addr().String() }

// MetricsAddr returns the address /metrics and /healthz are served on, or
// "" when Config.MetricsAddr is empty.
func (s *Service) MetricsAddr() string {
	if s.httpLis == nil {
		return ""
	}
	return s.httpLis.Addr().String()
}

// Brokers returns the Kafka bootstrap addresses the service uses:
// Config.Brokers, or the embedded broker's address. The caller must not
// modify the slice.
func (s *Service) Brokers() []string { return s.cluster.Brokers }

// Run serves until ctx is done or a component fails, then shuts down in
// order. It serves gRPC and /healthz at once, waits for Kafka to be usable
// (probing every bootstrap broker; /healthz answers 503 with the reason
// meanwhile), creates the missing topics, then learns. Shutdown is in
// order: gRPC stops accepting and drains, the consumer stops and writes its
// final checkpoint, Pebble closes, the embedded broker stops. It returns
// nil when stopped by ctx. Run releases everything New acquired, also when
// ctx is already done; it may be called once.
func (s *Service) Run(ctx context.Context) error {
	if s.started.Swap(true) {
		return ErrRunTwice
	}
	defer s.close()
	g, gctx := errgroup.WithContext(ctx)
	consumerCtx, stopConsumer := context.WithCancel(context.Background())
	defer stopConsumer()
	g.Go(func() error {
		defer stopConsumer()
		return s.server.Serve(gctx, s.grpcLis)
	})
	if s.httpLis != nil {
		g.Go(func() error { return s.serveMetrics(gctx) })
	}
	g.Go(func() error {
		// Pebble declared an error fatal (corruption a compaction found,
		// a failed log write): stop, naming the directory and the way out;
		// the restart continues from the last checkpoint.
		select {
		case <-s.store.Failed():
			return s.store.Err()
		case <-gctx.Done():
			return nil
		}
	})
	if s.cfg.Role == RoleServe {
		// A replica reports NOT_SERVING until it serves what the group
		// serves: the snapshots topic read and the histories caught up.
		s.server.SetServing(false)
	}
	g.Go(func() error {
		// Kafka may not be there yet: gRPC and /healthz are up meanwhile.
		select {
		case <-s.ready: // the embedded broker, connected by New
		default:
			if err := s.connect(gctx); err != nil || gctx.Err() != nil {
				return err
			}
		}
		g.Go(func() error {
			if err := s.consumer.Run(consumerCtx); err != nil {
				return fmt.Errorf("consumer stopped: %w", err)
			}
			return nil
		})
		g.Go(func() error { return s.champs.write(gctx) })
		g.Go(func() error { return s.admin.listen(gctx) })
		var champsCaughtUp atomic.Bool
		g.Go(func() error {
			return s.champs.follow(gctx, func() {
				champsCaughtUp.Store(true)
				s.log.Info("caught up with the snapshots topic", "topic", s.cfg.SnapshotsTopic())
			})
		})
		if s.cfg.Role != RoleServe {
			return nil
		}
		ticker := time.NewTicker(50 * time.Millisecond)
		defer ticker.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-ticker.C:
			}
			if champsCaughtUp.Load() && s.consumer.CaughtUp() {
				s.server.SetServing(true)
				s.log.Info("replica caught up: serving")
				return nil
			}
		}
	})
	s.log.Info("eddy is running", "role", s.cfg.Role, "brokers", s.cluster.Brokers, "grpc", s.GRPCAddr(), "metrics", s.MetricsAddr(), "data_dir", s.cfg.DataDir)
	err := g.Wait()
	if err != nil {
		s.log.Error("eddy stopped", "err", err)
		return err
	}
	s.log.Info("eddy stopped cleanly", "learned_here", s.engine.Stats().Learned)
	return nil
}

func (s *Service) serveMetrics(ctx context.Context) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.gatherer, promhttp.HandlerOpts{Registry: s.reg}))
	ui := newLiveUI(s)
	ui.register(mux)
	go ui.run(ctx)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if since, cause := s.consumer.PausedSince(); !since.IsZero() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "state store: checkpoints failing since %s: learning paused (predictions still served): %s\n", since.UTC().Format(time.RFC3339), cause)
			return
		}
		if w8 := s.waiting.Load(); w8 != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "waiting for Kafka at %s since %s: not learning (stored snapshots are served): %s\n",
				strings.Join(s.cluster.Brokers, ","), w8.since.UTC().Format(time.RFC3339), w8.reason)
			return
		}
		if since, reason := s.consumer.BrokerDownSince(); !since.IsZero() {
			// Predictions are still served from snapshots; learning waits.
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, "kafka unusable since %s: not learning (predictions still served): %s\n", since.UTC().Format(time.RFC3339), reason)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if s.cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index) // and the named profiles under it: heap, goroutine, allocs, block, mutex, ...
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: s.cfg.MetricsIdleTimeout, TLSConfig: s.cfg.MetricsTLS}
	errc := make(chan error, 1)
	go func() {
		if s.cfg.MetricsTLS != nil {
			errc <- srv.ServeTLS(s.httpLis, "", "") // the certificates are in TLSConfig
			return
		}
		errc <- srv.Serve(s.httpLis)
	}()
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

// close releases what New acquired; safe on a partial service.
func (s *Service) close() {
	if s.grpcLis != nil {
		s.grpcLis.Close()
	}
	if s.httpLis != nil {
		s.httpLis.Close()
	}
	if s.champs != nil {
		s.champs.close()
		s.champs = nil
	}
	if s.bus != nil {
		s.bus.Close()
		s.bus = nil
	}
	if s.store != nil {
		var fatal *store.FatalError
		if err := s.store.Close(); err != nil && !errors.As(err, &fatal) { // a fatal error was reported already
			s.log.Error("close store", "err", err)
		}
		s.store = nil
	}
	if s.broker != nil {
		s.broker.Close()
		s.broker = nil
	}
}
