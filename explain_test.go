package eddy_test

import (
	"context"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/stream"
)

// csvEvents reads a CSV file as produce does, as learner fields.
func csvEvents(t *testing.T, file, target string) (events [][]features.Field, labels []float64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := stream.NewCSVReader(f, stream.CSVConfig{Target: target})
	if err != nil {
		t.Fatal(err)
	}
	var ev stream.Event
	for {
		if err := r.Read(&ev); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		var fields []features.Field
		for _, f := range ev.Fields {
			field := features.Field{Name: []byte(string(f.Name)), Num: f.Num, Str: []byte(string(f.Str))}
			switch f.Kind {
			case stream.KindString:
				field.Kind = features.String
			case stream.KindBool:
				field.Kind = features.Bool
			}
			fields = append(fields, field)
		}
		events = append(events, fields)
		labels = append(labels, ev.Label)
	}
	return events, labels
}

// firstRows writes the header and the first n rows of a CSV file to a new
// file.
func firstRows(t *testing.T, file string, n int) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfterN(string(data), "\n", n+2)
	p := filepath.Join(t.TempDir(), "first.csv")
	if err := os.WriteFile(p, []byte(strings.Join(lines[:n+1], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func requestOf(fields []features.Field) map[string]*structpb.Value {
	out := map[string]*structpb.Value{}
	for _, f := range fields {
		switch f.Kind {
		case features.String:
			out[string(f.Name)] = structpb.NewStringValue(string(f.Str))
		case features.Bool:
			out[string(f.Name)] = structpb.NewBoolValue(f.Num == 1)
		default:
			out[string(f.Name)] = structpb.NewNumberValue(f.Num)
		}
	}
	return out
}

// TestPredictExplainsWithTheFeaturesTrainingUsed runs the elec2 history
// pipeline (windows, lags, target aggregates) through Kafka, then asks
// Predict to explain row 2,001: the derived features appear by name with
// the values an offline model that learned the same 2,000 rows derives
// for that moment, the contributions sum to the margin, its sigmoid is
// the probability, and the probability is bitwise the unexplained one.
// Inspect then names the model's largest weights from another RPC.
func TestPredictExplainsWithTheFeaturesTrainingUsed(t *testing.T) {
	broker := startBroker(t)
	config := filepath.Join(".deploy", "examples", "elec2.yaml")
	svc := startTestService(t, withConfigFile(t, testConfig(broker, t.TempDir(), learner.ModelConfig{}), config))
	file := datasetPath(t, "elec2.csv")
	if _, err := produceCSV(broker, "events", firstRows(t, file, 2000), "up"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "2,000 learned and served", func() bool {
		m := svc.model("elec2")
		return m.Learned == 2000 && m.ServedLearned == 2000
	})

	events, labels := csvEvents(t, file, "up")
	cfg, err := eddy.LoadConfigFile(config)
	if err != nil {
		t.Fatal(err)
	}
	offline, err := learner.NewModel(cfg.Models[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := offline.LearnEvent(nil, time.Time{}, events[i], labels[i]); err != nil {
			t.Fatal(err)
		}
	}
	want := offline.ExplainEvent(nil, time.Time{}, events[2000], learner.ExplainOptions{})

	client := predictClient(t, svc.GRPCAddr())
	req := &eddyv1.PredictRequest{Model: "elec2", Features: requestOf(events[2000])}
	plain, err := client.Predict(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	req.Explain = true
	resp, err := client.Predict(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	e := resp.GetExplanation()
	if math.Float64bits(resp.GetProbability()) != math.Float64bits(plain.GetProbability()) || resp.GetPredictedLabel() != plain.GetPredictedLabel() {
		t.Fatalf("explained %v, unexplained %v", resp.GetProbability(), plain.GetProbability())
	}
	sum := e.GetIntercept()
	derived := map[string]float64{}
	for _, term := range e.GetTerms() {
		sum += term.GetContribution()
		if term.GetDerived() {
			derived[term.GetName()] = term.GetRawValue()
		}
	}
	if math.Abs(sum-e.GetMargin()) > 1e-9 || math.Abs(1/(1+math.Exp(-e.GetMargin()))-resp.GetProbability()) > 1e-12 {
		t.Fatalf("intercept + contributions %v, margin %v, sigmoid %v, probability %v", sum, e.GetMargin(), 1/(1+math.Exp(-e.GetMargin())), resp.GetProbability())
	}
	checked := 0
	for _, c := range want.Terms {
		if !c.Derived {
			continue
		}
		got, ok := derived[c.Name]
		if !ok || math.Float64bits(got) != math.Float64bits(c.Raw) {
			t.Errorf("derived %s = %v (present %v), training derives %v", c.Name, got, ok, c.Raw)
		}
		checked++
	}
	for _, name := range []string{"nswprice_w5_mean", "nswprice_lag1", "nswprice_diff1", "label_last", "label_mean3", "label_mean10"} {
		if _, ok := derived[name]; !ok {
			t.Errorf("derived feature %s is not in the explanation (%v)", name, derived)
		}
	}
	if checked < 10 || len(derived) != checked {
		t.Errorf("%d derived features checked, %d served", checked, len(derived))
	}
	if len(e.GetUnused()) != 1 || e.GetUnused()[0] != "date" {
		t.Errorf("unused %v, want [date] (ignored)", e.GetUnused())
	}
	t.Logf("row 2,001: probability %.6f, margin %.6f = intercept %.6f + %d terms; %d derived features equal to training's (nswprice_w5_mean %.6f, label_mean10 %.1f)",
		resp.GetProbability(), e.GetMargin(), e.GetIntercept(), len(e.GetTerms()), checked, derived["nswprice_w5_mean"], derived["label_mean10"])

	req.TopK = 5
	top, err := client.Predict(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if te := top.GetExplanation(); len(te.GetTerms()) != 5 || int(te.GetOmitted()) != len(e.GetTerms())-5 {
		t.Errorf("top_k 5: %d terms, %d omitted", len(te.GetTerms()), te.GetOmitted())
	}

	admin := adminOf(t, svc.GRPCAddr())
	in, err := admin.Inspect(context.Background(), &eddyv1.InspectRequest{Model: "elec2"})
	if err != nil {
		t.Fatal(err)
	}
	if in.GetLearned() != 2000 || len(in.GetTopWeights()) != int(min(20, in.GetNonzeroWeights())) || len(in.GetNumeric()) < 20 || !strings.Contains(in.GetConfigYaml(), "nswprice") {
		t.Fatalf("Inspect: learned %d, %d top weights, %d numeric features, config %q", in.GetLearned(), len(in.GetTopWeights()), len(in.GetNumeric()), in.GetConfigYaml())
	}
	for _, w := range in.GetTopWeights() {
		if w.GetKind() != "number" || w.GetName() == "" {
			t.Errorf("top weight %v has no name", w)
		}
	}
	served := svc.model("elec2").ServedVersion
	if v, err := admin.Inspect(context.Background(), &eddyv1.InspectRequest{Model: "elec2", Version: served}); err != nil || v.GetVersion() != served || v.GetLive() {
		t.Errorf("Inspect version %d: %v, %v", served, v, err)
	}
	if _, err := admin.Inspect(context.Background(), &eddyv1.InspectRequest{Model: "elec2", Version: 999}); status.Code(err) != codes.NotFound {
		t.Errorf("Inspect of a version never stored: %v, want NOT_FOUND", err)
	}
	t.Logf("Inspect: %d numeric features; largest weight %s %.4f", len(in.GetNumeric()), in.GetTopWeights()[0].GetName(), in.GetTopWeights()[0].GetWeight())
}
