package serving

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/features"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// Snapshot is an immutable model that can answer predictions.
type Snapshot interface {
	// Model returns the model's name.
	Model() string
	// Version returns the snapshot's version.
	Version() uint64
	// TaskName returns "binary", "regression" or "multiclass".
	TaskName() string
	// Score predicts from the raw fields of an event of entity key (nil
	// when the request names none): for "binary" the probability of label
	// 1 and the predicted label; for "regression" the value; for
	// "multiclass" the probability of the predicted class and its label. It
	// must be safe for concurrent use. An error means the features it
	// derives from the entity's stored history could not be read: Predict
	// answers UNAVAILABLE.
	Score(key []byte, fields []features.Field) (score float64, label int32, err error)
}

// SchemaChecker may be implemented by a Snapshot whose model has a schema:
// Predict then reports how a request breaks it, as warnings in the
// response, or, when StrictSchema, as INVALID_ARGUMENT naming each feature.
type SchemaChecker interface {
	// ScoreChecked is Score that also appends the schema's violations by
	// fields to dst.
	ScoreChecked(key []byte, fields []features.Field, dst []features.Violation) (score float64, label int32, violations []features.Violation, err error)
	// StrictSchema reports whether a request that breaks the schema is
	// refused.
	StrictSchema() bool
}

// Explainer may be implemented by a Snapshot that can explain its
// predictions (PredictRequest.explain; without it, such a request is
// UNIMPLEMENTED).
type Explainer interface {
	// ExplainScore is ScoreChecked (the violations are nil without a
	// schema) with the explanation of the prediction, keeping its topK
	// terms of largest |contribution| (0: all) and, for a multiclass
	// model, every class's weights and margins when allClasses is set.
	// The score and label are bitwise Score's.
	ExplainScore(key []byte, fields []features.Field, topK int, allClasses bool) (score float64, label int32, exp *eddyv1.Explanation, violations []features.Violation, err error)
}

// Config configures a Server. The zero value of every field means its
// documented default; Validate rejects the rest of what cannot work.
type Config struct {
	// MaxFeatures bounds the features of one request. The default is 1024.
	MaxFeatures int
	// MaxRequestBytes bounds a request message; larger ones are refused
	// with ResourceExhausted before they are read. The default is 1 MiB.
	MaxRequestBytes int
	// ShutdownGrace is how long Serve waits for in-flight requests when
	// stopping before it cuts them off. The default is 5s.
	ShutdownGrace time.Duration
	// MaxConnectionIdle is how long a connection may stay open without an
	// RPC in flight: then the server closes it gracefully (GOAWAY; gRPC
	// clients reconnect on their next call), so that idle clients do not
	// hold file descriptors forever. The default is 2 minutes.
	MaxConnectionIdle time.Duration
	// HandshakeTimeout bounds the time from accepting a connection to the
	// end of its TLS and HTTP/2 handshakes; connections that have not
	// completed them by then are closed. The default is 10s (gRPC's own is
	// 120s).
	HandshakeTimeout time.Duration
	// AdminToken, when set, must be sent by Admin RPCs as the metadata
	// "authorization: Bearer <token>"; calls without it are refused with
	// Unauthenticated. Empty leaves the Admin service open (listen on
	// loopback, or set a token).
	AdminToken string
	// TLS, when set, makes the server accept TLS connections only. With
	// ClientCAs and ClientAuth set, a verified client certificate is a
	// credential (Access).
	TLS *tls.Config
	// Access is who may call what (named credentials with roles); see
	// Access. AdminToken, if set too, is one more credential with the
	// admin role. SetAccess replaces it while serving.
	Access Access
	// NoReflection leaves gRPC server reflection off (production: clients
	// then need eddy.proto).
	NoReflection bool
	// MaxBatchRows bounds the rows of one PredictBatch call; a call with
	// more is refused with InvalidArgument. The default is 1000.
	MaxBatchRows int
	// StreamWorkers is how many goroutines gRPC keeps to run RPCs on
	// (grpc.NumStreamWorkers): an RPC then runs on a goroutine whose stack
	// has already grown, instead of on a new one that grows its stack
	// again; when every worker is busy gRPC starts a goroutine, as without
	// workers. The default is GOMAXPROCS; -1 starts a goroutine per RPC
	// (gRPC's own default).
	StreamWorkers int
}

// Defaults of Config.
const (
	DefaultMaxFeatures       = 1024
	DefaultMaxRequestBytes   = 1 << 20
	DefaultShutdownGrace     = 5 * time.Second
	DefaultMaxConnectionIdle = 2 * time.Minute
	DefaultHandshakeTimeout  = 10 * time.Second
	DefaultMaxBatchRows      = 1000
)

// ErrInvalidConfig is wrapped by the errors of Config.Validate and New.
var ErrInvalidConfig = errors.New("serving: invalid config")

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.MaxFeatures == 0 {
		c.MaxFeatures = DefaultMaxFeatures
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.MaxConnectionIdle == 0 {
		c.MaxConnectionIdle = DefaultMaxConnectionIdle
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxBatchRows == 0 {
		c.MaxBatchRows = DefaultMaxBatchRows
	}
	if c.StreamWorkers == 0 {
		c.StreamWorkers = runtime.GOMAXPROCS(0)
	}
}

// Validate reports the first invalid setting, naming it. Zero values are
// valid: they stand for the defaults.
func (c *Config) Validate() error {
	for _, v := range []struct {
		name  string
		value int
	}{{"MaxFeatures", c.MaxFeatures}, {"MaxRequestBytes", c.MaxRequestBytes}, {"MaxBatchRows", c.MaxBatchRows}} {
		if v.value < 0 {
			return fmt.Errorf("%w: %s is negative (%d); zero means the default", ErrInvalidConfig, v.name, v.value)
		}
	}
	for _, v := range []struct {
		name  string
		value time.Duration
	}{{"ShutdownGrace", c.ShutdownGrace}, {"MaxConnectionIdle", c.MaxConnectionIdle}, {"HandshakeTimeout", c.HandshakeTimeout}} {
		if v.value < 0 {
			return fmt.Errorf("%w: %s is negative (%v); zero means the default", ErrInvalidConfig, v.name, v.value)
		}
	}
	if c.StreamWorkers < -1 {
		return fmt.Errorf("%w: StreamWorkers is %d; want a count, 0 for the default or -1 for a goroutine per RPC", ErrInvalidConfig, c.StreamWorkers)
	}
	if strings.ContainsAny(c.AdminToken, "\r\n") || strings.TrimSpace(c.AdminToken) != c.AdminToken {
		return fmt.Errorf("%w: AdminToken has surrounding spaces or line breaks, which no client can send in a header", ErrInvalidConfig)
	}
	return nil
}

// ErrUnknownModel is returned by Publish for a model the Server was not
// created with.
var ErrUnknownModel = errors.New("serving: unknown model")

// Server serves predictions from published snapshots. Create it with New.
type Server struct {
	eddyv1.UnimplementedInferenceServer
	cfg      Config
	models   map[string]*slot // fixed at New; only the pointers change
	names    string           // for error messages
	metrics  *serverMetrics
	log      *slog.Logger
	health   *health.Server
	notReady atomic.Bool // SetServing(false)
	calls    sync.Pool   // *predictCall scratch per request
	admin    Admin       // nil: the Admin service is not registered
	access   atomic.Pointer[Access]
	storeLog atomic.Int64 // when a store error was last logged, Unix nanoseconds

	// Fixed at New, so that a Predict allocates neither.
	predictInfo    *grpc.UnaryServerInfo
	answerCallFunc grpc.UnaryHandler
}

// logStoreError logs an error of the store that Score met, at most once
// every 10 seconds: each request it fails is counted (code UNAVAILABLE).
func (s *Server) logStoreError(model string, err error) {
	now, last := time.Now().UnixNano(), s.storeLog.Load()
	if now-last < int64(10*time.Second) || !s.storeLog.CompareAndSwap(last, now) {
		return
	}
	s.log.Error("predict could not read an entity's history from the store (logged at most every 10s)", "model", model, "err", err)
}

// SetAdmin registers the Admin service backed by a when Serve starts. Call
// it before Serve.
func (s *Server) SetAdmin(a Admin) { s.admin = a }

// SetServing sets what the gRPC health service reports, for the server and
// for the Inference service: SERVING, or NOT_SERVING (Predict still
// answers, from what the server has). A replica that has not caught up with
// its sources reports NOT_SERVING so that a load balancer keeps traffic
// away. The default is SERVING. Safe for concurrent use, before and during
// Serve.
func (s *Server) SetServing(serving bool) {
	s.notReady.Store(!serving)
	status := healthpb.HealthCheckResponse_SERVING
	if !serving {
		status = healthpb.HealthCheckResponse_NOT_SERVING
	}
	s.health.SetServingStatus("", status)
	s.health.SetServingStatus(eddyv1.Inference_ServiceDesc.ServiceName, status)
}

type slot struct {
	name    string // the model's configured name
	current atomic.Pointer[published]
}

// published wraps a Snapshot so it can live in an atomic.Pointer.
type published struct{ snap Snapshot }

// New returns a Server for the named models, none of which has a snapshot
// yet, or an error wrapping ErrInvalidConfig if cfg is invalid or the model
// names are missing, empty or repeated. Metrics are registered with reg.
func New(cfg Config, models []string, reg prometheus.Registerer, log *slog.Logger) (*Server, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(models) == 0 {
		return nil, fmt.Errorf("%w: no models to serve", ErrInvalidConfig)
	}
	s := &Server{
		cfg:    cfg,
		models: make(map[string]*slot, len(models)),
		log:    log.With("component", "serving"),
		health: health.NewServer(),
	}
	for _, m := range models {
		if m == "" {
			return nil, fmt.Errorf("%w: a model has an empty name", ErrInvalidConfig)
		}
		if _, dup := s.models[m]; dup {
			return nil, fmt.Errorf("%w: model %q is named twice", ErrInvalidConfig, m)
		}
		s.models[m] = &slot{name: m}
	}
	sorted := append([]string(nil), models...)
	sort.Strings(sorted)
	s.names = strings.Join(sorted, ", ")
	s.metrics = newServerMetrics(reg, models)
	s.calls.New = func() any { return &predictCall{fields: make([]features.Field, 0, 16)} }
	s.predictInfo = &grpc.UnaryServerInfo{Server: s, FullMethod: eddyv1.Inference_Predict_FullMethodName}
	s.answerCallFunc = s.answerCall
	if err := s.SetAccess(cfg.Access); err != nil {
		return nil, err
	}
	return s, nil
}

// Publish makes snap the snapshot that answers for its model.
func (s *Server) Publish(snap Snapshot) error {
	sl, ok := s.models[snap.Model()]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownModel, snap.Model())
	}
	sl.current.Store(&published{snap: snap})
	s.metrics.version.WithLabelValues(snap.Model()).Set(float64(snap.Version()))
	return nil
}

// Current returns the snapshot that answers for model, or nil.
func (s *Server) Current(model string) Snapshot {
	sl, ok := s.models[model]
	if !ok {
		return nil
	}
	if p := sl.current.Load(); p != nil {
		return p.snap
	}
	return nil
}

// Serve accepts gRPC connections on lis until ctx is done, then stops
// gracefully, cutting off requests still running after ShutdownGrace.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(s.cfg.MaxRequestBytes),
		grpc.ForceServerCodecV2(newCodec()), // Predict checks its requests before decoding them: see decode.go
		grpc.ChainUnaryInterceptor(s.observe, s.authorize),
		grpc.ChainStreamInterceptor(s.authorizeStream),
		grpc.ConnectionTimeout(s.cfg.HandshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: s.cfg.MaxConnectionIdle}),
		// gRPC's defaults, stated: a client pinging more often than every 5
		// minutes, or without an RPC in flight, is sent GOAWAY, so pings
		// cannot keep a connection busy.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 5 * time.Minute, PermitWithoutStream: false}),
	}
	if s.cfg.StreamWorkers > 0 {
		opts = append(opts, grpc.NumStreamWorkers(uint32(s.cfg.StreamWorkers)))
	}
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
	}
	gs := grpc.NewServer(opts...)
	gs.RegisterService(s.inferenceService(), s)
	if s.admin != nil {
		eddyv1.RegisterAdminServer(gs, &adminServer{s: s, admin: s.admin})
	}
	healthpb.RegisterHealthServer(gs, s.health)
	if !s.cfg.NoReflection {
		reflection.Register(gs)
	}
	s.SetServing(!s.notReady.Load())
	s.log.Info("gRPC listening", "addr", lis.Addr().String())

	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		s.health.Shutdown()
		gs.Stop()
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	s.health.Shutdown()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(s.cfg.ShutdownGrace):
		s.log.Warn("graceful stop timed out; closing connections", "grace", s.cfg.ShutdownGrace)
		gs.Stop()
	}
	<-errc
	return nil
}

// Predict implements eddyv1.InferenceServer. (Over gRPC, handlePredict
// decodes the request's bytes itself and answers them as Predict does.)
func (s *Server) Predict(ctx context.Context, req *eddyv1.PredictRequest) (*eddyv1.PredictResponse, error) {
	c := s.calls.Get().(*predictCall)
	defer s.release(c)
	if err := s.fillCall(c, req); err != nil {
		return nil, err
	}
	a := new(answerBox)
	if err := s.answer(c, &a.resp, &a.score, &a.label); err != nil {
		return nil, err
	}
	return &a.resp, nil
}

// fillCall fills the empty c from req, its fields viewing req's strings,
// refusing invalid features as decodeCall does.
func (s *Server) fillCall(c *predictCall, req *eddyv1.PredictRequest) error {
	c.model, c.explain, c.topK, c.allClasses = req.GetModel(), req.GetExplain(), req.GetTopK(), req.GetAllClasses()
	if req.GetEntityKey() != "" {
		c.key = bytesOf(req.GetEntityKey())
	}
	var err error
	if c.fields, err = s.toFields(req.GetFeatures(), c.fields); err != nil {
		return err
	}
	return sortFields(c.fields)
}

// answer scores c, whose fields are valid and sorted, with the model's
// current snapshot into resp, whose probability or value and label point
// at score and label.
func (s *Server) answer(c *predictCall, resp *eddyv1.PredictResponse, score *float64, label *int32) error {
	if c.model == "" {
		return status.Error(codes.InvalidArgument, "model is required")
	}
	sl, ok := s.models[c.model]
	if !ok {
		return status.Errorf(codes.NotFound, "unknown model %q (serving: %s)", c.model, s.names)
	}
	p := sl.current.Load()
	if p == nil {
		return status.Errorf(codes.Unavailable, "model %q has no promoted snapshot yet: it is published once it has learned from its first examples", c.model)
	}
	var viol []features.Violation
	var explanation *eddyv1.Explanation
	var err error
	sc, checks := p.snap.(SchemaChecker)
	switch {
	case c.explain:
		ex, ok := p.snap.(Explainer)
		if !ok {
			return status.Errorf(codes.Unimplemented, "model %s cannot explain its predictions", c.model)
		}
		*score, *label, explanation, viol, err = ex.ExplainScore(c.key, c.fields, int(c.topK), c.allClasses)
		s.metrics.explained.WithLabelValues(sl.name).Inc()
	case checks:
		*score, *label, viol, err = sc.ScoreChecked(c.key, c.fields, nil)
	default:
		*score, *label, err = p.snap.Score(c.key, c.fields)
	}
	if err != nil {
		s.logStoreError(sl.name, err)
		return status.Errorf(codes.Unavailable, "model %s: %v; the store is failing: retry, or see the server's log", sl.name, err)
	}
	var warnings []string
	for _, v := range viol {
		s.metrics.schema.WithLabelValues(sl.name, v.Kind).Inc()
		warnings = append(warnings, v.Detail)
	}
	if len(warnings) > 0 && checks && sc.StrictSchema() {
		return status.Errorf(codes.InvalidArgument, "the request breaks the schema of model %s: %s", sl.name, strings.Join(warnings, "; "))
	}
	task := p.snap.TaskName()
	*resp = eddyv1.PredictResponse{Model: sl.name, ModelVersion: p.snap.Version(), Task: task, Warnings: warnings, Explanation: explanation}
	if task == "regression" {
		resp.Value = score
	} else {
		resp.Probability, resp.PredictedLabel = score, label
	}
	return nil
}

// answerBox holds a response with the score and label its optional fields
// point at: one allocation per answer instead of three.
type answerBox struct {
	resp  eddyv1.PredictResponse
	score float64
	label int32
}

// modelName returns the configured name that b spells, without allocating,
// or a copy of b.
func (s *Server) modelName(b []byte) string {
	if sl, ok := s.models[string(b)]; ok {
		return sl.name
	}
	return string(b)
}

// toFields validates raw request features and converts them without copying
// names or strings: the snapshot only reads them during Score.
func (s *Server) toFields(raw map[string]*structpb.Value, dst []features.Field) ([]features.Field, error) {
	if len(raw) > s.cfg.MaxFeatures {
		return dst, status.Errorf(codes.InvalidArgument, "%d features exceed the limit of %d", len(raw), s.cfg.MaxFeatures)
	}
	for name, v := range raw {
		if name == "" {
			return dst, status.Error(codes.InvalidArgument, "a feature has an empty name")
		}
		f := features.Field{Name: bytesOf(name)}
		switch k := v.GetKind().(type) {
		case *structpb.Value_NumberValue:
			if err := checkNumber(f.Name, k.NumberValue); err != nil {
				return dst, err
			}
			f.Kind, f.Num = features.Number, k.NumberValue
		case *structpb.Value_StringValue:
			f.Kind, f.Str = features.String, bytesOf(k.StringValue)
		case *structpb.Value_BoolValue:
			f.Kind = features.Bool
			if k.BoolValue {
				f.Num = 1
			}
		default:
			return dst, status.Errorf(codes.InvalidArgument, "feature %q has unsupported type %s (want number, string or bool)", name, kindName(v))
		}
		dst = append(dst, f)
	}
	return dst, nil
}

func kindName(v *structpb.Value) string {
	switch v.GetKind().(type) {
	case *structpb.Value_NullValue:
		return "null"
	case *structpb.Value_ListValue:
		return "list"
	case *structpb.Value_StructValue:
		return "object"
	}
	return "empty"
}

// bytesOf views s as bytes without copying; the result must not be written.
func bytesOf(s string) []byte { return unsafe.Slice(unsafe.StringData(s), len(s)) }

// observe records the latency and outcome of every RPC.
func (s *Server) observe(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	switch r := req.(type) {
	case *predictCall:
		model := s.modelLabel(r.model)
		s.metrics.latency.WithLabelValues(model).Observe(time.Since(start).Seconds())
		s.metrics.requests.WithLabelValues(model, status.Code(err).String()).Inc()
	case *eddyv1.PredictBatchRequest:
		s.metrics.batchLatency.Observe(time.Since(start).Seconds())
		if err != nil { // a refused call: its rows were not counted
			s.metrics.batchRefused.Inc()
		}
	}
	return resp, err
}

// modelLabel is model as a label value: a configured name or "unknown", so
// that label values stay bounded.
func (s *Server) modelLabel(model string) string {
	if _, known := s.models[model]; !known {
		return "unknown"
	}
	return model
}
