package eddy_test

import (
	"compress/gzip"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// TestEventsThatBreakTheSchemaAreDeadLetteredNamingTheFeature sends,
// through Kafka, events a schema refuses (a number as a string, a missing
// required feature, an out-of-range value, a misspelled feature under
// new_features: dead_letter) between valid ones: each goes to the
// dead-letter topic with reason schema_violation and the feature in the
// detail, the metric counts each violation by feature, and only the valid
// ones are learned.
func TestEventsThatBreakTheSchemaAreDeadLetteredNamingTheFeature(t *testing.T) {
	broker := startBroker(t)
	zero, ten := 0.0, 10.0
	model := learner.ModelConfig{Name: "m", Schema: &features.Schema{NewFeatures: features.PolicyDeadLetter, Features: map[string]features.FeatureSpec{
		"f1":  {Kind: features.KindNumber, Required: true, Min: &zero, Max: &ten},
		"zip": {Kind: features.KindCategory},
	}}}
	svc := startTestService(t, testConfig(broker, t.TempDir(), model))
	events := []struct{ value, feature string }{
		{`{"id":"ok-1","features":{"f1":1,"zip":2040},"label":1}`, ""},
		{`{"id":"string","features":{"f1":"3.2"},"label":1}`, `"f1"`},
		{`{"id":"missing","features":{"zip":2040},"label":0}`, `"f1"`},
		{`{"id":"range","features":{"f1":11},"label":0}`, `[0, 10]`},
		{`{"id":"typo","features":{"f1":2,"Zip":1},"label":0}`, `did you mean "zip"`},
		{`{"id":"ok-2","features":{"f1":2,"zip":"x"},"label":0}`, ""},
	}
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "events", RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
	defer w.Close()
	var msgs []kafka.Message
	for _, e := range events {
		msgs = append(msgs, kafka.Message{Value: []byte(e.value)})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the valid events learned", func() bool {
		return svc.Stats().Consumer.Consumed == uint64(len(events)) && svc.learned("m") == 2
	})
	for i, m := range readDeadLetters(t, broker, "events.dlq", 4) {
		h := headers(m)
		want := events[i+1]
		if string(m.Value) != want.value || h["eddy-reason"] != learner.ReasonSchemaViolation || !strings.Contains(h["eddy-detail"], want.feature) {
			t.Errorf("dead letter %q: reason %q detail %q; want %q, schema_violation, a detail with %s", m.Value, h["eddy-reason"], h["eddy-detail"], want.value, want.feature)
		}
	}
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{map[string]string{"model": "m", "violation": "wrong_kind", "feature": "f1"}, 1},
		{map[string]string{"model": "m", "violation": "missing_required", "feature": "f1"}, 1},
		{map[string]string{"model": "m", "violation": "out_of_range", "feature": "f1"}, 1},
		{map[string]string{"model": "m", "violation": "unknown_feature", "feature": "other"}, 1},
	} {
		if got := svc.gauge("eddy_schema_violations_total", c.labels); got != c.want {
			t.Errorf("eddy_schema_violations_total%v = %v, want %v", c.labels, got, c.want)
		}
	}
}

// TestASchemaIsDeclaredInTheModelYAML reads a schema from a model
// configuration file as eddy serve --config does; an invalid one names the
// setting.
func TestASchemaIsDeclaredInTheModelYAML(t *testing.T) {
	dir := t.TempDir()
	cfg, err := eddy.LoadConfigFile(writeFile(t, dir, "ok.yaml", `models:
  - name: churn
    schema:
      new_features: ignore
      on_violation: ignore_feature
      strict: true
      features:
        tenure: {kind: number, required: true, min: 0}
        zip: {kind: category}
        vip: {kind: boolean}
`))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Models[0].Schema
	if s == nil || s.NewFeatures != "ignore" || s.OnViolation != "ignore_feature" || !s.Strict || s.Features["zip"].Kind != "category" ||
		!s.Features["tenure"].Required || s.Features["tenure"].Min == nil || *s.Features["tenure"].Min != 0 {
		t.Fatalf("schema read as %+v", s)
	}
	cfg, err = eddy.LoadConfigFile(writeFile(t, dir, "bad.yaml", `models:
  - name: churn
    schema: {features: {zip: {kind: text}}}
`))
	if err == nil {
		err = cfg.Validate()
	}
	if err == nil || !strings.Contains(err.Error(), `kind "text"`) {
		t.Fatalf("an invalid schema: %v", err)
	}
}

// TestPredictReportsEachFeatureThatBreaksTheSchema asks two models that
// learned the same SEA stream, one lenient and one strict, with requests a
// user gets wrong: a misspelled feature, an unknown one, a missing one, a
// number sent as a string. The lenient model answers with a warning naming
// each (and "did you mean"); the strict one answers INVALID_ARGUMENT
// naming each; the metric counts them.
func TestPredictReportsEachFeatureThatBreaksTheSchema(t *testing.T) {
	broker := startBroker(t)
	declared := func(strict bool) *features.Schema {
		return &features.Schema{Strict: strict, Features: map[string]features.FeatureSpec{
			"f1": {Kind: features.KindNumber, Required: true}, "f2": {Kind: features.KindNumber, Required: true}, "f3": {Kind: features.KindNumber, Required: true}}}
	}
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "lenient", Schema: declared(false)})
	cfg.Learner.Models = append(cfg.Learner.Models, learner.ModelConfig{Name: "strict", Schema: declared(true)})
	svc := startTestService(t, cfg)
	produceSEAEvents(t, broker, "events", 1000)
	client := predictClient(t, svc.GRPCAddr())
	waitFor(t, 30*time.Second, "both models serving", func() bool {
		_, e1 := client.Predict(context.Background(), seaRequest("lenient"))
		_, e2 := client.Predict(context.Background(), seaRequest("strict"))
		return e1 == nil && e2 == nil
	})
	if resp, _ := client.Predict(context.Background(), seaRequest("lenient")); len(resp.GetWarnings()) != 0 {
		t.Fatalf("a valid request got warnings %q", resp.GetWarnings())
	}
	for _, tc := range []struct {
		name     string
		features map[string]*structpb.Value
		want     []string
	}{
		{"misspelled and unknown", map[string]*structpb.Value{"F1": structpb.NewNumberValue(3), "f2": structpb.NewNumberValue(4), "f3": structpb.NewNumberValue(1), "color": structpb.NewStringValue("red")},
			[]string{`"F1" is not in the schema (did you mean "f1"?)`, `"color" is not in the schema`, `required feature "f1" is missing`}},
		{"missing", map[string]*structpb.Value{"f1": structpb.NewNumberValue(3), "f3": structpb.NewNumberValue(1)},
			[]string{`required feature "f2" is missing`}},
		{"a number as a string", map[string]*structpb.Value{"f1": structpb.NewStringValue("3.2"), "f2": structpb.NewNumberValue(4), "f3": structpb.NewNumberValue(1)},
			[]string{`"f1" is declared a number but came as the string "3.2"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client.Predict(context.Background(), &eddyv1.PredictRequest{Model: "lenient", Features: tc.features})
			if err != nil {
				t.Fatalf("lenient: %v", err)
			}
			got := strings.Join(resp.GetWarnings(), " | ")
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("lenient warnings %q lack %q", got, w)
				}
			}
			_, err = client.Predict(context.Background(), &eddyv1.PredictRequest{Model: "strict", Features: tc.features})
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("strict: %v, want INVALID_ARGUMENT", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(status.Convert(err).Message(), w) {
					t.Errorf("strict error %q lacks %q", status.Convert(err).Message(), w)
				}
			}
		})
	}
	if got := svc.gauge("eddy_predict_schema_violations_total", map[string]string{"model": "lenient", "violation": "unknown_feature"}); got != 2 {
		t.Errorf("unknown features counted %v times at Predict, want 2", got)
	}
}

// TestAFeatureDriftIsCountedThroughKafka streams events whose feature x
// changes unit after 400 events: the service counts one feature-drift
// detection for x and exports the distance.
func TestAFeatureDriftIsCountedThroughKafka(t *testing.T) {
	broker := startBroker(t)
	model := learner.ModelConfig{Name: "m", FeatureDrift: &learner.FeatureDriftConfig{Features: []string{"x"}, Reference: 200, Window: 100}}
	svc := startTestService(t, testConfig(broker, t.TempDir(), model))
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "events", RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := range 600 {
		x := float64(i%17) / 17
		if i >= 400 {
			x *= 1000
		}
		msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, `{"id":"e%d","features":{"x":%g},"label":%d}`, i, x, i%2)})
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "600 learned", func() bool { return svc.learned("m") == 600 })
	labels := map[string]string{"model": "m", "feature": "x"}
	if got := svc.gauge("eddy_feature_drift_detections_total", labels); got != 1 {
		t.Fatalf("eddy_feature_drift_detections_total = %v, want 1", got)
	}
}

// TestGetSchemaShowsTheInferredSchemaAndTheFeatureDetectors runs a model
// that infers its schema from 300 events and watches f1: GetSchema first
// reports the inference under way, then the inferred features and the
// detector's distance.
func TestGetSchemaShowsTheInferredSchemaAndTheFeatureDetectors(t *testing.T) {
	broker := startBroker(t)
	model := learner.ModelConfig{Name: "m", Schema: &features.Schema{Infer: 300, NewFeatures: features.PolicyIgnore},
		FeatureDrift: &learner.FeatureDriftConfig{Features: []string{"f1"}, Reference: 200, Window: 100}}
	svc := startTestService(t, testConfig(broker, t.TempDir(), model))
	admin := adminOf(t, svc.GRPCAddr())
	produceSEAEvents(t, broker, "events", 100)
	waitFor(t, 30*time.Second, "100 learned", func() bool { return svc.learned("m") == 100 })
	resp, err := admin.GetSchema(context.Background(), &eddyv1.GetSchemaRequest{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetInferring() || resp.GetInferSeen() != 100 || resp.GetInferWant() != 300 {
		t.Fatalf("after 100 events GetSchema says %v", resp)
	}
	produceSEAEvents(t, broker, "events", 400)
	waitFor(t, 30*time.Second, "500 learned", func() bool { return svc.learned("m") == 500 })
	resp, err = admin.GetSchema(context.Background(), &eddyv1.GetSchemaRequest{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]string{}
	for _, f := range resp.GetFeatures() {
		kinds[f.GetName()] = f.GetKind()
	}
	if resp.GetInferring() || kinds["f1"] != "number" || kinds["f3"] != "number" || resp.GetNewFeatures() != "ignore" {
		t.Fatalf("after 500 events GetSchema says %v", resp)
	}
	if d := resp.GetFeatureDrift(); len(d) != 1 || d[0].GetFeature() != "f1" || !d[0].GetReady() || d[0].GetDistance() <= 0 || d[0].GetDistance() > 0.5 {
		t.Fatalf("feature drift %v: want f1 comparing, with a small distance", d)
	}
	if _, err := admin.GetSchema(context.Background(), &eddyv1.GetSchemaRequest{Model: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("an unknown model: %v", err)
	}
}

// TestTrainingServingSkewIsMeasured learns SEA events (f1 uniform on
// [0, 10]) and answers Predict requests whose f1 first comes from the same
// range, then from a serving-side bug that sends it a hundred times too
// large: the skew GetSchema and the gauge report is small, then close to
// 1.
func TestTrainingServingSkewIsMeasured(t *testing.T) {
	broker := startBroker(t)
	model := learner.ModelConfig{Name: "m", FeatureDrift: &learner.FeatureDriftConfig{Features: []string{"f1"}, Reference: 200, Window: 100}}
	svc := startTestService(t, testConfig(broker, t.TempDir(), model))
	produceSEAEvents(t, broker, "events", 500)
	waitFor(t, 30*time.Second, "500 learned", func() bool { return svc.learned("m") == 500 })
	client, admin := predictClient(t, svc.GRPCAddr()), adminOf(t, svc.GRPCAddr())
	waitFor(t, 10*time.Second, "a snapshot", func() bool { _, err := client.Predict(context.Background(), seaRequest("m")); return err == nil })
	skew := func(scale float64) float64 {
		t.Helper()
		for i := range 100 {
			req := &eddyv1.PredictRequest{Model: "m", Features: map[string]*structpb.Value{
				"f1": structpb.NewNumberValue(scale * 10 * (float64((i*37)%100) + 0.5) / 100), "f2": structpb.NewNumberValue(5), "f3": structpb.NewNumberValue(5)}}
			if _, err := client.Predict(context.Background(), req); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := admin.GetSchema(context.Background(), &eddyv1.GetSchemaRequest{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		d := resp.GetFeatureDrift()
		if len(d) != 1 || d[0].Skew == nil {
			t.Fatalf("no skew reported: %v", d)
		}
		return d[0].GetSkew()
	}
	same, buggy := skew(1), skew(100)
	t.Logf("training/serving skew of f1: %.3f from the training range, %.3f with the serving bug", same, buggy)
	if same > 0.4 || buggy < 0.9 {
		t.Fatalf("skew %.3f from the training range and %.3f with the bug: want small, then close to 1", same, buggy)
	}
	produceSEAEvents(t, broker, "events", 100) // a checkpoint publishes the gauge
	waitFor(t, 30*time.Second, "the skew gauge", func() bool {
		return svc.gauge("eddy_feature_skew_distance", map[string]string{"model": "m", "feature": "f1"}) >= 0.9
	})
}

// TestAChangeOfUnitOnElec2IsDetectedThroughKafka sends elec2.csv through
// Kafka with nswprice multiplied by 1,000 from row 20,000, to a model that
// watches every feature but date and bounds nswprice to [0, 1]
// (dead_letter): the change is detected on nswprice within 500 rows of it
// (the log names the offset), the corrupted rows are dead-lettered, and
// the model learns the others.
func TestAChangeOfUnitOnElec2IsDetectedThroughKafka(t *testing.T) {
	rows, err := csv.NewReader(strings.NewReader(readGzip(t, filepath.Join("learner", "testdata", "elec2.csv.gz")))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	price := slices.Index(rows[0], "nswprice")
	for i, row := range rows[1:] {
		if i >= 20000 {
			x, _ := strconv.ParseFloat(row[price], 64)
			row[price] = strconv.FormatFloat(x*1000, 'g', -1, 64)
		}
	}
	var buf strings.Builder
	w := csv.NewWriter(&buf)
	if err := w.WriteAll(rows); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, t.TempDir(), "elec2-unit.csv", buf.String())
	broker := startBroker(t)
	zero, one := 0.0, 1.0
	model := learner.ModelConfig{Name: "elec2", Optimizer: learner.OptimizerConfig{LR: 0.005},
		Schema:       &features.Schema{Features: map[string]features.FeatureSpec{"nswprice": {Kind: features.KindNumber, Min: &zero, Max: &one}}},
		FeatureDrift: &learner.FeatureDriftConfig{Features: []string{"day", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"}}}
	var logs lockedBuffer
	cfg := testConfig(broker, t.TempDir(), model)
	reg := prometheus.NewRegistry()
	svc, err := eddy.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	r := runTestService(t, &running{Service: svc, registry: reg})
	n, err := produceCSV(broker, "events", file, "up")
	if err != nil || n != 45312 {
		t.Fatalf("produced %d: %v", n, err)
	}
	waitFor(t, 120*time.Second, "every row consumed", func() bool { return r.Stats().Consumer.Consumed == 45312 && r.learned("elec2") > 20000 })
	var at []int64
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "feature drift detected") && strings.Contains(line, "feature=nswprice") {
			_, rest, _ := strings.Cut(line, " offset=")
			off, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			at = append(at, off)
		}
	}
	t.Logf("nswprice detections at offsets %v; %v learned", at, r.learned("elec2"))
	hit := false
	for _, off := range at {
		hit = hit || off >= 20000 && off < 20500
	}
	if !hit {
		t.Fatalf("no detection on nswprice within 500 rows of the change: %v", at)
	}
	if rejected := r.gauge("eddy_examples_rejected_total", map[string]string{"model": "elec2", "reason": "schema_violation"}); rejected < 20000 {
		t.Fatalf("%v rows dead-lettered for the schema, want the corrupted ones (more than 20,000)", rejected)
	}
}

func readGzip(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(gz)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestIdsDeclaredCategoricalAreLearnedAsCategoriesThroughKafka sends the
// 20,000-row id example through Kafka to two models on one topic: one
// learns the five-digit ids with the column declared a category, the other
// the same ids prefixed with a letter (read as categories by themselves).
// Their accuracies agree within a point.
func TestIdsDeclaredCategoricalAreLearnedAsCategoriesThroughKafka(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	ids, p := make([]int, 50), make([]float64, 50)
	for i := range ids {
		ids[i], p[i] = 10000+r.IntN(90000), 0.1
		if r.IntN(2) == 1 {
			p[i] = 0.9
		}
	}
	var b strings.Builder
	b.WriteString("customer_id,prefixed_id,y\n")
	for range 20000 {
		k, y := r.IntN(50), 0
		if r.Float64() < p[k] {
			y = 1
		}
		fmt.Fprintf(&b, "%d,c%d,%d\n", ids[k], ids[k], y)
	}
	file := writeFile(t, t.TempDir(), "ids.csv", b.String())
	broker := startBroker(t)
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "declared", Features: features.Config{Ignore: []string{"prefixed_id"}},
		Schema: &features.Schema{Features: map[string]features.FeatureSpec{"customer_id": {Kind: features.KindCategory}}}})
	cfg.Learner.Models = append(cfg.Learner.Models, learner.ModelConfig{Name: "prefixed", Features: features.Config{Ignore: []string{"customer_id"}}})
	svc := startTestService(t, cfg)
	if n, err := produceCSV(broker, "events", file, "y"); err != nil || n != 20000 {
		t.Fatalf("produced %d: %v", n, err)
	}
	waitFor(t, 60*time.Second, "every row learned by both", func() bool { return svc.learned("declared") == 20000 && svc.learned("prefixed") == 20000 })
	acc := func(model string) float64 {
		return svc.gauge("eddy_prequential_accuracy", map[string]string{"model": model, "window": "cumulative"})
	}
	t.Logf("through Kafka: declared categorical %.4f, prefixed %.4f", acc("declared"), acc("prefixed"))
	if d := acc("declared") - acc("prefixed"); d < -0.01 || d > 0.01 {
		t.Fatalf("declared %.4f, prefixed %.4f: more than a point apart", acc("declared"), acc("prefixed"))
	}
}
