package serving_test

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/features"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
)

// linearSnapshot is a fixed linear rule over raw fields:
// z = Bias + Σ Num; a binary snapshot scores sigmoid(z), a regression
// snapshot z. Bool fields count as 0/1 and strings as 0, as features.Field
// defines them. Tests set Bias from the version, so a response whose value
// does not match its model_version reveals a torn read.
type linearSnapshot struct {
	Name    string
	Ver     uint64
	Binary  bool
	Bias    float64
	Scoring func() // optional: called at the start of every Score
}

func (s *linearSnapshot) Model() string   { return s.Name }
func (s *linearSnapshot) Version() uint64 { return s.Ver }
func (s *linearSnapshot) TaskName() string {
	if s.Binary {
		return "binary"
	}
	return "regression"
}

// Score returns the probability of 1 and the label (1 above 0.5) for a
// binary snapshot, the value for a regression one.
func (s *linearSnapshot) Score(_ []byte, fields []features.Field) (float64, int32, error) {
	z := s.score(fields)
	if s.Binary && z > 0.5 {
		return z, 1, nil
	}
	return z, 0, nil
}

func (s *linearSnapshot) score(fields []features.Field) float64 {
	if s.Scoring != nil {
		s.Scoring()
	}
	z := s.Bias
	for _, f := range fields {
		z += f.Num
	}
	if s.Binary {
		return 1 / (1 + math.Exp(-z))
	}
	return z
}

// versionBias makes a snapshot's scores depend on its version.
func versionBias(version uint64) float64 { return 1000 * float64(version) }

// testServer is a Server answering gRPC on a loopback port.
type testServer struct {
	srv    *serving.Server
	reg    *prometheus.Registry
	addr   string
	conn   *grpc.ClientConn
	client eddyv1.InferenceClient
	stop   context.CancelFunc // cancels Serve's context
	served chan error         // receives Serve's result
}

func startServer(t *testing.T, cfg serving.Config, models ...string) *testServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	ts := &testServer{
		srv:    newServer(t, cfg, reg, models...),
		reg:    reg,
		addr:   lis.Addr().String(),
		served: make(chan error, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.stop = cancel
	go func() { ts.served <- ts.srv.Serve(ctx, lis) }()
	ts.conn = dial(t, ts.addr)
	ts.client = eddyv1.NewInferenceClient(ts.conn)
	t.Cleanup(func() {
		cancel()
		select {
		case <-ts.served:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return after its context was cancelled")
		}
	})
	return ts
}

// newServer returns serving.New's Server, failing tb on an error.
func newServer(tb testing.TB, cfg serving.Config, reg prometheus.Registerer, models ...string) *serving.Server {
	tb.Helper()
	srv, err := serving.New(cfg, models, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatalf("serving.New: %v", err)
	}
	return srv
}

func dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func (ts *testServer) publish(t *testing.T, snap serving.Snapshot) {
	t.Helper()
	if err := ts.srv.Publish(snap); err != nil {
		t.Fatalf("Publish(%s v%d): %v", snap.Model(), snap.Version(), err)
	}
}

func rpcContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func numbers(kv ...float64) map[string]*structpb.Value {
	m := make(map[string]*structpb.Value, len(kv))
	for i, x := range kv {
		m["x"+strconv.Itoa(i)] = structpb.NewNumberValue(x)
	}
	return m
}

func TestPredictAnswersWithThePublishedSnapshot(t *testing.T) {
	sigmoid := func(z float64) float64 { return 1 / (1 + math.Exp(-z)) }
	tests := []struct {
		name      string
		snap      *linearSnapshot
		features  map[string]*structpb.Value
		wantTask  string
		wantScore float64
		wantLabel int32 // binary only
	}{
		{
			name:      "binary model above one half predicts label 1",
			snap:      &linearSnapshot{Name: "fraud", Ver: 3, Binary: true},
			features:  numbers(0.5, 1.5),
			wantTask:  "binary",
			wantScore: sigmoid(2),
			wantLabel: 1,
		},
		{
			name:      "binary model at exactly one half predicts label 0",
			snap:      &linearSnapshot{Name: "fraud", Ver: 4, Binary: true},
			features:  numbers(2, -2),
			wantTask:  "binary",
			wantScore: 0.5,
			wantLabel: 0,
		},
		{
			name:      "binary model below one half predicts label 0",
			snap:      &linearSnapshot{Name: "fraud", Ver: 5, Binary: true, Bias: -1},
			features:  numbers(0.25),
			wantTask:  "binary",
			wantScore: sigmoid(-0.75),
			wantLabel: 0,
		},
		{
			name: "booleans count as 0 or 1 and strings as categories",
			snap: &linearSnapshot{Name: "fraud", Ver: 6, Binary: true},
			features: map[string]*structpb.Value{
				"amount":  structpb.NewNumberValue(-0.5),
				"new":     structpb.NewBoolValue(true),
				"old":     structpb.NewBoolValue(false),
				"country": structpb.NewStringValue("DE"),
			},
			wantTask:  "binary",
			wantScore: sigmoid(0.5),
			wantLabel: 1,
		},
		{
			name:      "regression model returns the value",
			snap:      &linearSnapshot{Name: "price", Ver: 9, Bias: 10},
			features:  numbers(1.25, -3),
			wantTask:  "regression",
			wantScore: 8.25,
		},
		{
			name:      "request without features is scored from the bias alone",
			snap:      &linearSnapshot{Name: "price", Ver: 1, Bias: 42},
			wantTask:  "regression",
			wantScore: 42,
		},
	}
	ts := startServer(t, serving.Config{}, "fraud", "price")
	const tolerance = 1e-12
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts.publish(t, tt.snap)
			resp, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: tt.snap.Name, Features: tt.features})
			if err != nil {
				t.Fatalf("Predict: %v", err)
			}
			if resp.GetModel() != tt.snap.Name || resp.GetModelVersion() != tt.snap.Ver || resp.GetTask() != tt.wantTask {
				t.Fatalf("answered by (%q, v%d, %q), want (%q, v%d, %q)",
					resp.GetModel(), resp.GetModelVersion(), resp.GetTask(), tt.snap.Name, tt.snap.Ver, tt.wantTask)
			}
			if tt.wantTask == "binary" {
				if resp.Probability == nil || resp.PredictedLabel == nil || resp.Value != nil {
					t.Fatalf("binary response = %v, want probability and predicted_label only", resp)
				}
				if math.Abs(resp.GetProbability()-tt.wantScore) > tolerance || resp.GetPredictedLabel() != tt.wantLabel {
					t.Fatalf("probability %v label %d, want %v label %d",
						resp.GetProbability(), resp.GetPredictedLabel(), tt.wantScore, tt.wantLabel)
				}
				return
			}
			if resp.Value == nil || resp.Probability != nil || resp.PredictedLabel != nil {
				t.Fatalf("regression response = %v, want value only", resp)
			}
			if math.Abs(resp.GetValue()-tt.wantScore) > tolerance {
				t.Fatalf("value = %v, want %v", resp.GetValue(), tt.wantScore)
			}
		})
	}
}

func TestPredictRejectsMalformedRequestsNamingTheProblem(t *testing.T) {
	list, _ := structpb.NewList([]any{1.0, 2.0})
	object, _ := structpb.NewStruct(map[string]any{"a": 1.0})
	tests := []struct {
		name      string
		req       *eddyv1.PredictRequest
		wantInMsg []string
	}{
		{
			name:      "a request without a model",
			req:       &eddyv1.PredictRequest{Features: numbers(1)},
			wantInMsg: []string{"model is required"},
		},
		{
			name: "a null feature",
			req: &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{
				"amount": structpb.NewNumberValue(1), "country": structpb.NewNullValue(),
			}},
			wantInMsg: []string{`"country"`, "null"},
		},
		{
			name:      "a list feature",
			req:       &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"tags": structpb.NewListValue(list)}},
			wantInMsg: []string{`"tags"`, "list"},
		},
		{
			name:      "an object feature",
			req:       &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"user": structpb.NewStructValue(object)}},
			wantInMsg: []string{`"user"`, "object"},
		},
		{
			name:      "a feature without a value",
			req:       &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"ghost": {}}},
			wantInMsg: []string{`"ghost"`, "unsupported type"},
		},
		{
			name:      "a feature with an empty name",
			req:       &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"": structpb.NewNumberValue(1)}},
			wantInMsg: []string{"empty name"},
		},
		{
			name:      "a NaN feature",
			req:       &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"amount": structpb.NewNumberValue(math.NaN())}},
			wantInMsg: []string{`"amount"`, "not a finite number"},
		},
		{
			name:      "an infinite feature",
			req:       &eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"amount": structpb.NewNumberValue(math.Inf(-1))}},
			wantInMsg: []string{`"amount"`, "not a finite number"},
		},
		{
			name:      "more features than MaxFeatures",
			req:       &eddyv1.PredictRequest{Model: "fraud", Features: numbers(1, 2, 3, 4)},
			wantInMsg: []string{"4 features", "limit of 3"},
		},
	}
	ts := startServer(t, serving.Config{MaxFeatures: 3}, "fraud")
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 1, Binary: true})
	for _, tt := range tests {
		t.Run(tt.name+" is an invalid argument", func(t *testing.T) {
			resp, err := ts.client.Predict(rpcContext(t), tt.req)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Predict = (%v, %v), want code InvalidArgument", resp, err)
			}
			msg := status.Convert(err).Message()
			for _, want := range tt.wantInMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not mention %q", msg, want)
				}
			}
		})
	}
	t.Run("exactly MaxFeatures features are accepted", func(t *testing.T) {
		if _, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "fraud", Features: numbers(1, 2, 3)}); err != nil {
			t.Fatalf("Predict: %v", err)
		}
	})
}

func TestPredictReportsModelsThatCannotAnswer(t *testing.T) {
	ts := startServer(t, serving.Config{}, "fraud", "churn")
	tests := []struct {
		name      string
		model     string
		wantCode  codes.Code
		wantInMsg []string
	}{
		{"an unknown model is not found and the served models are listed", "spam", codes.NotFound, []string{`"spam"`, "churn, fraud"}},
		{"a model without a published snapshot is unavailable", "churn", codes.Unavailable, []string{`"churn"`, "no promoted snapshot"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: tt.model, Features: numbers(1)})
			if status.Code(err) != tt.wantCode {
				t.Fatalf("Predict = (%v, %v), want code %v", resp, err, tt.wantCode)
			}
			msg := status.Convert(err).Message()
			for _, want := range tt.wantInMsg {
				if !strings.Contains(msg, want) {
					t.Errorf("message %q does not mention %q", msg, want)
				}
			}
		})
	}
}

func TestPublishOfAnUnknownModelIsRefused(t *testing.T) {
	srv := newServer(t, serving.Config{}, prometheus.NewRegistry(), "fraud")
	err := srv.Publish(&linearSnapshot{Name: "spam", Ver: 1})
	if !errors.Is(err, serving.ErrUnknownModel) {
		t.Fatalf("Publish(spam) = %v, want an error wrapping ErrUnknownModel", err)
	}
	if !strings.Contains(err.Error(), `"spam"`) {
		t.Errorf("error %q does not name the model", err)
	}
	if got := srv.Current("spam"); got != nil {
		t.Errorf("Current(spam) = %v after a refused Publish, want nil", got)
	}
	if got := srv.Current("fraud"); got != nil {
		t.Errorf("Current(fraud) = %v, want nil: nothing was published for it", got)
	}
}

func TestPublishPromotesTheNewSnapshotForTheNextPrediction(t *testing.T) {
	ts := startServer(t, serving.Config{}, "price")
	for _, version := range []uint64{1, 2} {
		snap := &linearSnapshot{Name: "price", Ver: version, Bias: versionBias(version)}
		ts.publish(t, snap)
		if got := ts.srv.Current("price"); got != snap {
			t.Fatalf("Current(price) = %v after publishing v%d", got, version)
		}
		resp, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "price", Features: numbers(7)})
		if err != nil {
			t.Fatalf("Predict after publishing v%d: %v", version, err)
		}
		if resp.GetModelVersion() != version || resp.GetValue() != versionBias(version)+7 {
			t.Fatalf("after publishing v%d: answered by v%d with %v, want %v",
				version, resp.GetModelVersion(), resp.GetValue(), versionBias(version)+7)
		}
	}
}

// TestPredictionsDuringPromotionSeeOneWholeSnapshotAndNeverGoBack publishes
// versions 1..200 while several clients predict. The publisher waits for a
// few answers after each promotion, so every version is on air for a while.
func TestPredictionsDuringPromotionSeeOneWholeSnapshotAndNeverGoBack(t *testing.T) {
	const (
		versions = 200
		callers  = 4
	)
	ts := startServer(t, serving.Config{}, "price")
	ctx := rpcContext(t)
	var (
		answered  atomic.Int64
		published = make(chan struct{})
		seenMu    sync.Mutex
		seen      = make(map[uint64]bool)
		wg        sync.WaitGroup
	)
	for caller := range callers {
		wg.Go(func() {
			input := float64(caller + 1)
			req := &eddyv1.PredictRequest{Model: "price", Features: numbers(input)}
			var last uint64
			for done := false; !done; {
				select {
				case <-published:
					done = true // one last call, which must see the final version
				default:
				}
				resp, err := ts.client.Predict(ctx, req)
				if status.Code(err) == codes.Unavailable && last == 0 {
					continue // nothing published yet
				}
				if err != nil {
					t.Errorf("caller %d: Predict after v%d: %v", caller, last, err)
					return
				}
				version := resp.GetModelVersion()
				if version < last {
					t.Errorf("caller %d: answered by v%d after v%d", caller, version, last)
					return
				}
				if want := versionBias(version) + input; resp.GetValue() != want {
					t.Errorf("caller %d: v%d answered %v, want %v", caller, version, resp.GetValue(), want)
					return
				}
				last = version
				seenMu.Lock()
				seen[version] = true
				seenMu.Unlock()
				answered.Add(1)
			}
			if last != versions {
				t.Errorf("caller %d: last answer from v%d after all promotions, want v%d", caller, last, versions)
			}
		})
	}
	for version := uint64(1); version <= versions && !t.Failed(); version++ {
		ts.publish(t, &linearSnapshot{Name: "price", Ver: version, Bias: versionBias(version)})
		// At most one call per caller was already in flight; the others
		// started after this promotion.
		for mark := answered.Load(); answered.Load() < mark+2*callers && !t.Failed(); {
			time.Sleep(50 * time.Microsecond)
		}
	}
	close(published)
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(seen) != versions {
		t.Errorf("predictions saw %d distinct versions, want all %d", len(seen), versions)
	}
	wantVersion := map[string]float64{"model=price": versions}
	if got := gather(t, ts.reg, "eddy_served_model_version"); !maps.Equal(got, wantVersion) {
		t.Errorf("eddy_served_model_version = %v, want %v", got, wantVersion)
	}
}

// TestPredictUnderBackToBackPromotionsNeverMixesTwoSnapshots promotes as
// fast as it can while callers predict without the network in between, so
// promotions land inside requests: an answer whose value and version came
// from different snapshots would show.
func TestPredictUnderBackToBackPromotionsNeverMixesTwoSnapshots(t *testing.T) {
	const (
		versions = 20000
		callers  = 4
	)
	srv := newServer(t, serving.Config{}, prometheus.NewRegistry(), "price")
	ctx := context.Background()
	published := make(chan struct{})
	var wg sync.WaitGroup
	for caller := range callers {
		wg.Go(func() {
			input := float64(caller + 1)
			req := &eddyv1.PredictRequest{Model: "price", Features: numbers(input)}
			var last uint64
			for done := false; !done; {
				select {
				case <-published:
					done = true
				default:
				}
				resp, err := srv.Predict(ctx, req)
				if status.Code(err) == codes.Unavailable && last == 0 {
					continue
				}
				if err != nil {
					t.Errorf("caller %d: Predict after v%d: %v", caller, last, err)
					return
				}
				version := resp.GetModelVersion()
				if version < last {
					t.Errorf("caller %d: answered by v%d after v%d", caller, version, last)
					return
				}
				if want := versionBias(version) + input; resp.GetValue() != want {
					t.Errorf("caller %d: v%d answered %v, want %v", caller, version, resp.GetValue(), want)
					return
				}
				last = version
			}
		})
	}
	for version := uint64(1); version <= versions; version++ {
		if err := srv.Publish(&linearSnapshot{Name: "price", Ver: version, Bias: versionBias(version)}); err != nil {
			t.Fatal(err)
		}
	}
	close(published)
	wg.Wait()
}

// gather scrapes reg and returns the value of every series of the metric
// family name, keyed by its labels ("code=OK,model=fraud", label names in
// order). Histograms give their sample count.
//
// It reads the registry directly rather than through
// prometheus/client_golang/prometheus/testutil, whose dependency
// github.com/kylelemons/godebug has no go.sum entry in this module.
func gather(t *testing.T, reg *prometheus.Registry, name string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	series := make(map[string]float64)
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
		for _, m := range family.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var value float64
			switch family.GetType() {
			case dto.MetricType_GAUGE:
				value = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				value = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				value = float64(m.GetHistogram().GetSampleCount())
			default:
				t.Fatalf("gather: %s has unexpected type %v", name, family.GetType())
			}
			series[strings.Join(labels, ",")] = value
		}
	}
	return series
}

func TestMetricsReportServedVersionsAndRequestOutcomesWithBoundedLabels(t *testing.T) {
	ts := startServer(t, serving.Config{}, "fraud", "churn")
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 6, Binary: true})
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 7, Binary: true})

	calls := []struct {
		req      *eddyv1.PredictRequest
		wantCode codes.Code
	}{
		{&eddyv1.PredictRequest{Model: "fraud", Features: numbers(1)}, codes.OK},
		{&eddyv1.PredictRequest{Model: "fraud", Features: numbers(2)}, codes.OK},
		{&eddyv1.PredictRequest{Model: "fraud", Features: numbers(3)}, codes.OK},
		{&eddyv1.PredictRequest{Model: "fraud", Features: map[string]*structpb.Value{"x": structpb.NewNullValue()}}, codes.InvalidArgument},
		{&eddyv1.PredictRequest{Model: "churn", Features: numbers(1)}, codes.Unavailable},
		{&eddyv1.PredictRequest{Model: "spam", Features: numbers(1)}, codes.NotFound},
		{&eddyv1.PredictRequest{Model: "ham", Features: numbers(1)}, codes.NotFound},
		{&eddyv1.PredictRequest{Features: numbers(1)}, codes.InvalidArgument},
	}
	for _, c := range calls {
		if _, err := ts.client.Predict(rpcContext(t), c.req); status.Code(err) != c.wantCode {
			t.Fatalf("Predict(%q) = %v, want code %v", c.req.GetModel(), err, c.wantCode)
		}
	}

	// Unknown and empty model names share the "unknown" label, so a client
	// cannot create series at will.
	tests := []struct {
		metric string
		want   map[string]float64
	}{
		{"eddy_served_model_version", map[string]float64{
			"model=churn": 0,
			"model=fraud": 7,
		}},
		{"eddy_predict_requests_total", map[string]float64{
			"code=OK,model=fraud":                3,
			"code=InvalidArgument,model=fraud":   1,
			"code=Unavailable,model=churn":       1,
			"code=NotFound,model=unknown":        2,
			"code=InvalidArgument,model=unknown": 1,
		}},
		{"eddy_predict_duration_seconds", map[string]float64{
			"model=fraud":   4,
			"model=churn":   1,
			"model=unknown": 3,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.metric+" has exactly the expected series", func(t *testing.T) {
			if got := gather(t, ts.reg, tt.metric); !maps.Equal(got, tt.want) {
				t.Errorf("%s = %v, want %v", tt.metric, got, tt.want)
			}
		})
	}
}

func TestHealthCheckReportsServing(t *testing.T) {
	ts := startServer(t, serving.Config{}, "fraud")
	health := healthpb.NewHealthClient(ts.conn)
	for _, service := range []string{"", "eddy.v1.Inference"} {
		t.Run("service "+strconv.Quote(service)+" is serving", func(t *testing.T) {
			resp, err := health.Check(rpcContext(t), &healthpb.HealthCheckRequest{Service: service})
			if err != nil {
				t.Fatalf("Check: %v", err)
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("status = %v, want SERVING", resp.GetStatus())
			}
		})
	}
}

func TestReflectionListsTheInferenceService(t *testing.T) {
	ts := startServer(t, serving.Config{}, "fraud")
	stream, err := reflectionpb.NewServerReflectionClient(ts.conn).ServerReflectionInfo(rpcContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.GetName())
	}
	for _, want := range []string{"eddy.v1.Inference", "grpc.health.v1.Health"} {
		if !slices.Contains(names, want) {
			t.Errorf("reflection lists %v, want it to include %s", names, want)
		}
	}
}

func TestServeStopsWithinShutdownGraceAndRefusesNewConnections(t *testing.T) {
	const grace = 2 * time.Second
	ts := startServer(t, serving.Config{ShutdownGrace: grace}, "fraud")
	ts.publish(t, &linearSnapshot{Name: "fraud", Ver: 1, Binary: true})
	if _, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "fraud", Features: numbers(1)}); err != nil {
		t.Fatalf("Predict before shutdown: %v", err)
	}

	ts.stop()
	select {
	case err := <-ts.served:
		if err != nil {
			t.Fatalf("Serve = %v after its context was cancelled, want nil", err)
		}
	case <-time.After(grace):
		t.Fatalf("Serve did not return within ShutdownGrace (%v)", grace)
	}
	ts.served <- nil // for the cleanup registered by startServer

	if c, err := net.DialTimeout("tcp", ts.addr, time.Second); err == nil {
		c.Close()
		t.Errorf("dialing %s after shutdown succeeded, want the listener closed", ts.addr)
	}
	fresh := eddyv1.NewInferenceClient(dial(t, ts.addr))
	if _, err := fresh.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "fraud", Features: numbers(1)}); status.Code(err) != codes.Unavailable {
		t.Errorf("Predict on a new connection after shutdown = %v, want code Unavailable", err)
	}
	if _, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "fraud", Features: numbers(1)}); status.Code(err) != codes.Unavailable {
		t.Errorf("Predict on the old connection after shutdown = %v, want code Unavailable", err)
	}
}

// gate blocks Score until released, so a test can hold a prediction in flight.
type gate struct {
	entered     chan struct{}
	release     chan struct{}
	enterOnce   sync.Once
	releaseOnce sync.Once
}

func newGate(t *testing.T) *gate {
	g := &gate{entered: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(g.open)
	return g
}

func (g *gate) wait() {
	g.enterOnce.Do(func() { close(g.entered) })
	<-g.release
}

func (g *gate) open() { g.releaseOnce.Do(func() { close(g.release) }) }

func TestShutdownLetsAPredictionInFlightFinish(t *testing.T) {
	ts := startServer(t, serving.Config{ShutdownGrace: 5 * time.Second}, "price")
	g := newGate(t)
	ts.publish(t, &linearSnapshot{Name: "price", Ver: 1, Bias: 1, Scoring: g.wait})

	type result struct {
		resp *eddyv1.PredictResponse
		err  error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "price", Features: numbers(2)})
		answered <- result{resp, err}
	}()
	<-g.entered
	ts.stop()
	select {
	case err := <-ts.served:
		t.Fatalf("Serve returned %v while a prediction was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	g.open()

	r := <-answered
	if r.err != nil || r.resp.GetValue() != 3 {
		t.Fatalf("in-flight Predict = (%v, %v), want value 3", r.resp, r.err)
	}
	select {
	case err := <-ts.served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
		ts.served <- nil // for the cleanup registered by startServer
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return once the in-flight prediction finished")
	}
}

func TestShutdownCutsOffPredictionsStillRunningAfterShutdownGrace(t *testing.T) {
	const grace = 200 * time.Millisecond
	ts := startServer(t, serving.Config{ShutdownGrace: grace}, "price")
	g := newGate(t) // never opened before shutdown: the prediction is stuck
	ts.publish(t, &linearSnapshot{Name: "price", Ver: 1, Scoring: g.wait})

	answered := make(chan error, 1)
	go func() {
		_, err := ts.client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "price", Features: numbers(1)})
		answered <- err
	}()
	<-g.entered
	start := time.Now()
	ts.stop()
	select {
	case err := <-ts.served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil", err)
		}
		ts.served <- nil // for the cleanup registered by startServer
	case <-time.After(grace + 5*time.Second):
		t.Fatal("Serve did not return after ShutdownGrace with a prediction stuck")
	}
	if waited := time.Since(start); waited < grace {
		t.Errorf("Serve returned after %v, before ShutdownGrace (%v)", waited, grace)
	}
	if err := <-answered; status.Code(err) != codes.Unavailable {
		t.Errorf("stuck Predict = %v, want code Unavailable (connection closed)", err)
	}
}

func BenchmarkPredict(b *testing.B) {
	srv := newServer(b, serving.Config{}, prometheus.NewRegistry(), "fraud")
	if err := srv.Publish(&linearSnapshot{Name: "fraud", Ver: 1, Binary: true}); err != nil {
		b.Fatal(err)
	}
	req := &eddyv1.PredictRequest{Model: "fraud", Features: numbers(0.1, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := srv.Predict(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzPredictRequest feeds arbitrary feature maps (names and values of every
// protobuf kind) to Predict: it must never panic, and must either answer
// with a finite score or refuse with InvalidArgument.
func FuzzPredictRequest(f *testing.F) {
	f.Add("f1", 1.5, "s", "x", true, uint8(0))
	f.Add("", math.NaN(), "", "", false, uint8(3))
	f.Add("big", 1e300, "k", "\x00", true, uint8(5))
	srv := newServer(f, serving.Config{MaxFeatures: 8}, prometheus.NewRegistry(), "m")
	if err := srv.Publish(&linearSnapshot{Name: "m", Ver: 1, Binary: true}); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string, num float64, sname, str string, b bool, kind uint8) {
		var v *structpb.Value
		switch kind % 6 {
		case 0:
			v = structpb.NewNumberValue(num)
		case 1:
			v = structpb.NewStringValue(str)
		case 2:
			v = structpb.NewBoolValue(b)
		case 3:
			v = structpb.NewNullValue()
		case 4:
			v = structpb.NewListValue(&structpb.ListValue{Values: []*structpb.Value{structpb.NewNumberValue(num)}})
		default:
			v = &structpb.Value{}
		}
		req := &eddyv1.PredictRequest{Model: "m", Features: map[string]*structpb.Value{name: v, sname: structpb.NewNumberValue(num)}}
		resp, err := srv.Predict(context.Background(), req)
		if err != nil {
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("Predict(%v) = %v, want InvalidArgument or an answer", req, err)
			}
			return
		}
		if p := resp.GetProbability(); math.IsNaN(p) || math.IsInf(p, 0) {
			t.Fatalf("Predict(%v) answered a non-finite probability", req)
		}
	})
}
