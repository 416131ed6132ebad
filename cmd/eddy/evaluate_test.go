package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/stream"
)

// evaluateJSON runs eddy evaluate --json with args and decodes its output,
// failing unless stdout holds exactly one JSON object.
func evaluateJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	stdout, stderr, err := runCLI(t, nil, append([]string{"evaluate", "--json"}, args...)...)
	if err != nil {
		t.Fatalf("eddy evaluate %v: %v\nstderr:\n%s", args, err, stderr)
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON value:\n%s", stdout)
	}
	return out
}

func writeTemp(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestEvaluateReproducesRiversPrequentialFigures(t *testing.T) {
	elec2Config := writeTemp(t, "models.yaml", "models:\n  - name: elec2\n    optimizer:\n      lr: 0.005\n")
	cases := []struct {
		name string
		file string
		args []string
		want map[string]float64 // key → value
		tol  float64
	}{
		{"phishing, lr 0.1", "phishing.csv", []string{"--target", "is_phishing", "--lr", "0.1"},
			map[string]float64{"accuracy": 0.8896, "n": 1250, "skipped": 0, "rejected": 0}, 0.0005},
		{"phishing, default lr", "phishing.csv", []string{"--target", "is_phishing"},
			map[string]float64{"accuracy": 0.8928, "n": 1250}, 0.0005},
		{"trump approval, regression", "trump_approval.csv", []string{"--task", "regression", "--target", "five_thirty_eight", "--intercept-lr", "0.1"},
			map[string]float64{"mae": 0.558735, "intercept": 35.617671}, 1e-4},
		{"elec2, lr 0.005", "elec2.csv", []string{"--target", "up", "--lr", "0.005"},
			map[string]float64{"accuracy": 0.8221, "n": 45312}, 0.001},
		{"elec2, same model from --config", "elec2.csv", []string{"--target", "up", "--config", elec2Config},
			map[string]float64{"accuracy": 0.8221, "n": 45312}, 0.001},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := evaluateJSON(t, append([]string{"--file", datasetPath(t, tc.file)}, tc.args...)...)
			for key, want := range tc.want {
				got, ok := out[key].(float64)
				if !ok || math.Abs(got-want) > tc.tol {
					t.Errorf("%s = %v, want %v (±%g)", key, out[key], want, tc.tol)
				}
			}
			t.Logf("%v", out)
		})
	}
}

func TestEvaluateJSONHasTheMetricsOfTheTaskOnly(t *testing.T) {
	binary := evaluateJSON(t, "--file", writeTemp(t, "b.csv", "x,y\n1,1\n"), "--target", "y")
	regression := evaluateJSON(t, "--file", writeTemp(t, "r.csv", "x,y\n1,1\n"), "--target", "y", "--task", "regression")
	for _, tc := range []struct {
		out           map[string]any
		present, gone []string
	}{
		{binary, []string{"n", "skipped", "rejected", "task", "accuracy", "log_loss", "rolling", "seconds", "rows_per_second"}, []string{"mae", "rmse", "intercept"}},
		{regression, []string{"n", "task", "mae", "rmse", "rolling", "intercept", "seconds"}, []string{"accuracy", "log_loss"}},
	} {
		for _, k := range tc.present {
			if _, ok := tc.out[k]; !ok {
				t.Errorf("task %v: %q missing from %v", tc.out["task"], k, tc.out)
			}
		}
		for _, k := range tc.gone {
			if _, ok := tc.out[k]; ok {
				t.Errorf("task %v: %q present in %v", tc.out["task"], k, tc.out)
			}
		}
	}
	// One row predicted before any learning is scored wrong: accuracy 0 is
	// printed, not omitted.
	if binary["accuracy"] != 0.0 {
		t.Errorf("accuracy = %v, want 0 after one row", binary["accuracy"])
	}
}

func TestEvaluateJSONPrintsOnlyOneValueEvenWithEvery(t *testing.T) {
	// evaluateJSON fails on anything after the object.
	out := evaluateJSON(t, "--file", writeTemp(t, "a.csv", "x,y\n1,0\n2,1\n3,0\n4,1\n"), "--target", "y", "--every", "1")
	if out["n"] != 4.0 {
		t.Fatalf("n = %v, want 4", out["n"])
	}
}

func TestEvaluatePrintsMetricsEveryNRowsAndASummary(t *testing.T) {
	stdout, _, err := runCLI(t, nil, "evaluate", "--file", datasetPath(t, "phishing.csv"), "--target", "is_phishing", "--every", "500")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"rows 500  accuracy ", "rows 1000  accuracy ", "1250 rows in", "accuracy   0.8928", "skipped    0", "rejected   0"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "rows 1500") {
		t.Errorf("a metrics line past the end of the file:\n%s", stdout)
	}
}

func TestEvaluateSkipsUnlabeledRowsAndCountsRejectedOnes(t *testing.T) {
	csv := "x,colour,flag,label\n" +
		"1,red,true,0\n" +
		"2,blue,FALSE,\n" + // no label: skipped
		"3,red,,2\n" + // a binary label of 2: rejected
		"4,,true,1\n" +
		"5,green,false,true\n"
	stdout, stderr, err := runCLI(t, nil, "evaluate", "--json", "--file", writeTemp(t, "a.csv", csv), "--target", "label")
	if err != nil {
		t.Fatal(err)
	}
	var out evaluationSummary
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.N != 3 || out.Skipped != 1 || out.Rejected != 1 {
		t.Fatalf("n %d, skipped %d, rejected %d; want 3, 1, 1", out.N, out.Skipped, out.Rejected)
	}
	if !strings.Contains(stderr, "line 4: rejected") {
		t.Fatalf("stderr does not report the rejected row on line 4:\n%s", stderr)
	}
}

func TestEvaluateReportsOnlyTheFirstRejections(t *testing.T) {
	csv := "x,label\n" + strings.Repeat("1,7\n", 8) + "1,1\n"
	stdout, stderr, err := runCLI(t, nil, "evaluate", "--json", "--file", writeTemp(t, "a.csv", csv), "--target", "label")
	if err != nil {
		t.Fatal(err)
	}
	var out evaluationSummary
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatal(err)
	}
	if out.Rejected != 8 || out.N != 1 {
		t.Fatalf("rejected %d, n %d; want 8 and 1", out.Rejected, out.N)
	}
	if got := strings.Count(stderr, ": rejected:"); got != maxShownRejections || !strings.Contains(stderr, "8 rows rejected in all") {
		t.Fatalf("%d rejections on stderr, want %d and a total:\n%s", got, maxShownRejections, stderr)
	}
}

func TestEvaluateErrorsSayWhatIsWrong(t *testing.T) {
	config := writeTemp(t, "models.yaml", "models:\n  - name: a\n  - name: b\n")
	cases := []struct {
		name string
		csv  string
		args []string
		want []string
	}{
		{"a short row names its line", "x,y,label\n1,2,0\n3,4\n", []string{"--target", "label"}, []string{"line 3", "2 fields", "header has 3"}},
		{"an unparsable label names its line", "x,label\n1,0\n2,1\n\n3,maybe\n", []string{"--target", "label"}, []string{"line 5", `"maybe"`}},
		{"an unknown target names the columns", "x,y\n1,2\n", []string{"--target", "label"}, []string{`no column "label"`, "x, y"}},
		{"an unknown ignored column", "x,y\n1,2\n", []string{"--target", "y", "--ignore", "z"}, []string{`no column "z" for --ignore`}},
		{"a repeated column", "x,x,y\n1,2,3\n", []string{"--target", "y"}, []string{`"x" appears twice`}},
		{"a missing target", "x,y\n1,2\n", nil, []string{"--target"}},
		{"model flags beside --config", "x,y\n1,2\n", []string{"--target", "y", "--config", config, "--lr", "0.1", "--task", "binary"}, []string{"--task, --lr", "--config"}},
		{"--model without --config", "x,y\n1,2\n", []string{"--target", "y", "--model", "a"}, []string{"--config"}},
		{"a model not in --config", "x,y\n1,2\n", []string{"--target", "y", "--config", config, "--model", "c"}, []string{`no model "c"`, "a, b"}},
		{"an invalid model", "x,y\n1,2\n", []string{"--target", "y", "--task", "ranking"}, []string{"ranking"}},
		{"an empty file", "", []string{"--target", "y"}, []string{"empty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"evaluate", "--file", writeTemp(t, "a.csv", tc.csv)}, tc.args...)
			_, _, err := runCLI(t, nil, args...)
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Fatalf("err = %v, want it to mention %q", err, want)
				}
			}
		})
	}
}

func TestEvaluateTakesTheNamedModelOfTheConfig(t *testing.T) {
	config := writeTemp(t, "models.yaml", "rolling_window: 2\nmodels:\n  - name: a\n  - name: b\n    task: regression\n")
	file := writeTemp(t, "a.csv", "x,y\n1,0\n2,1\n3,0\n")
	if out := evaluateJSON(t, "--file", file, "--target", "y", "--config", config); out["task"] != "binary" {
		t.Fatalf("without --model: task %v, want the first model's (binary)", out["task"])
	}
	out := evaluateJSON(t, "--file", file, "--target", "y", "--config", config, "--model", "b")
	if out["task"] != "regression" {
		t.Fatalf("--model b: task %v, want regression", out["task"])
	}
	// The rolling window of the file (2 rows) applies.
	if mae, rolling := out["mae"].(float64), out["rolling"].(float64); math.Abs(mae-rolling) < 1e-12 {
		t.Fatalf("rolling %v equals the cumulative mae: the config's rolling_window was not used", rolling)
	}
}

// TestEvaluateScoresTheExamplePipelinesAsDocumented checks the figures of
// README.md and BENCHMARKS.md ("Entity history") for the example pipelines
// of .deploy/examples on the shipped elec2 and weather data sets, and for
// plain logistic regression on weather.
func TestEvaluateScoresTheExamplePipelinesAsDocumented(t *testing.T) {
	examples := filepath.Join("..", "..", ".deploy", "examples")
	for _, tc := range []struct {
		name     string
		file     string
		args     []string
		accuracy float64 // as documented, to a hundredth of a percent
	}{
		{"elec2 with .deploy/examples/elec2.yaml", "elec2.csv", []string{"--target", "up", "--config", filepath.Join(examples, "elec2.yaml")}, 0.9136},
		{"weather, plain logistic regression", "weather.csv", []string{"--target", "rain"}, 0.7679},
		{"weather with .deploy/examples/weather.yaml", "weather.csv", []string{"--target", "rain", "--config", filepath.Join(examples, "weather.yaml")}, 0.7788},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := evaluateJSON(t, append([]string{"--file", datasetPath(t, tc.file)}, tc.args...)...)
			if got, ok := out["accuracy"].(float64); !ok || math.Abs(got-tc.accuracy) > 0.0001 {
				t.Errorf("accuracy %v, documented %.4f (±0.0001)", out["accuracy"], tc.accuracy)
			}
		})
	}
}

func TestEvaluateStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	o := evaluateOptions{file: datasetPath(t, "elec2.csv"), target: "up"}
	ev, err := evaluateFile(ctx, o, io.Discard)
	if !errors.Is(err, context.Canceled) || ev.rows > 1000 {
		t.Fatalf("err %v after %d rows, want context.Canceled within 1000 rows", err, ev.rows)
	}
}

func TestEvaluateReadsCellsAsProduceSendsThem(t *testing.T) {
	cells := []string{"1.5", "-3", "1e3", "0x1p-2", "TRUE", "false", "False", "red", "NaN", "inf", "1e999", "nope", "+", ".", "n/a", "truee", "a\"b\\c\x01"}
	var file strings.Builder
	file.WriteString(",c,label\n") // an unnamed column, as pandas writes its index
	for i, cell := range cells {
		fmt.Fprintf(&file, "%d,\"%s\",1\n", i, strings.ReplaceAll(cell, `"`, `""`))
	}
	produced, err := newCSVSource(strings.NewReader(file.String()), produceOptions{file: "cells.csv", target: "label", idPrefix: "cells"})
	if err != nil {
		t.Fatal(err)
	}
	evaluated, err := newCSVExamples(strings.NewReader(file.String()), "cells.csv", stream.CSVConfig{Target: "label"})
	if err != nil {
		t.Fatal(err)
	}
	for _, cell := range cells {
		m, _, err := produced.next()
		if err != nil {
			t.Fatalf("produce's %q: %v", cell, err)
		}
		sent := decodeEvent(t, m) // as the consumer reads what produce sends
		fields, label, hasLabel, err := evaluated.next()
		if err != nil || !hasLabel || label != sent.Label {
			t.Fatalf("evaluate's %q: label %v (%v), err %v; produce sends label %v", cell, label, hasLabel, err, sent.Label)
		}
		if len(fields) != 1 || len(sent.Fields) != 1 {
			t.Fatalf("cell %q: evaluate reads %d features, produce sends %d (%s)", cell, len(fields), len(sent.Fields), m.Value)
		}
		got, want := fields[0], sent.Fields[0]
		if string(got.Name) != string(want.Name) || got.Kind != featureKind(want.Kind) || math.Float64bits(got.Num) != math.Float64bits(want.Num) || string(got.Str) != string(want.Str) {
			t.Errorf("cell %q: evaluate reads %+v, produce sends %+v", cell, got, want)
		}
	}
}

func TestEvaluateLeavesOutAColumnWithoutAName(t *testing.T) {
	// pandas' to_csv writes its index as a first column without a name; as
	// a feature it would be a row counter the model learns from.
	var indexed, plain strings.Builder
	indexed.WriteString(",x,label\n")
	plain.WriteString("x,label\n")
	for i := range 200 {
		fmt.Fprintf(&indexed, "%d,%d,%d\n", i, i%3, i%2)
		fmt.Fprintf(&plain, "%d,%d\n", i%3, i%2)
	}
	stdout, stderr, err := runCLI(t, nil, "evaluate", "--json", "--file", writeTemp(t, "indexed.csv", indexed.String()), "--target", "label")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stderr, "column 1 has no name") {
		t.Errorf("stderr does not say the unnamed column is left out:\n%s", stderr)
	}
	withIndex := decodeSummary(t, stdout)
	if without := evaluateJSON(t, "--file", writeTemp(t, "plain.csv", plain.String()), "--target", "label"); withIndex["log_loss"] != without["log_loss"] {
		t.Fatalf("log loss %v with an unnamed column, %v without: it was learned from", withIndex["log_loss"], without["log_loss"])
	}
}

func TestEvaluateRefusesACellThatIsNotUTF8LikeProduce(t *testing.T) {
	_, _, err := runCLI(t, nil, "evaluate", "--file", writeTemp(t, "latin1.csv", "city,label\nK\xf6ln,1\n"), "--target", "label")
	if err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "UTF-8") {
		t.Fatalf("err = %v, want line 2 refused as not UTF-8", err)
	}
}

func decodeSummary(t *testing.T, stdout string) map[string]any {
	t.Helper()
	var out map[string]any
	if err := json.Unmarshal([]byte(stdout), &out); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout)
	}
	return out
}

// BenchmarkEvaluateElec2 is the acceptance figure: elec2.csv (45,312 rows)
// end to end, well under a second.
func BenchmarkEvaluateElec2(b *testing.B) {
	o := evaluateOptions{file: datasetPath(b, "elec2.csv"), target: "up", model: learner.ModelConfig{Name: "elec2", Optimizer: learner.OptimizerConfig{LR: 0.005}}}
	b.ReportAllocs()
	var rows int
	start := time.Now()
	for b.Loop() {
		ev, err := evaluateFile(context.Background(), o, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		rows += ev.rows
	}
	b.ReportMetric(float64(rows)/time.Since(start).Seconds(), "rows/s")
}

// TestEvaluateLearnsADeclaredCategoricalColumnAsCategories runs a CSV of
// 20,000 rows whose label depends on a five-digit customer id (50 ids)
// through evaluate three ways: the ids as they are (read as numbers), the
// ids prefixed with a letter (read as categories, the workaround), and the
// ids as they are with the column declared a category in the model's
// schema. Declared, the accuracy is that of the prefixed run.
func TestEvaluateLearnsADeclaredCategoricalColumnAsCategories(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	ids, p := make([]int, 50), make([]float64, 50)
	for i := range ids {
		ids[i], p[i] = 10000+r.IntN(90000), 0.1
		if r.IntN(2) == 1 {
			p[i] = 0.9
		}
	}
	var plain, prefixed strings.Builder
	plain.WriteString("customer_id,y\n")
	prefixed.WriteString("customer_id,y\n")
	for range 20000 {
		k, y := r.IntN(50), 0
		if r.Float64() < p[k] {
			y = 1
		}
		fmt.Fprintf(&plain, "%d,%d\n", ids[k], y)
		fmt.Fprintf(&prefixed, "c%d,%d\n", ids[k], y)
	}
	plainFile, prefixedFile := writeTemp(t, "ids.csv", plain.String()), writeTemp(t, "ids-prefixed.csv", prefixed.String())
	declared := writeTemp(t, "models.yaml", "models:\n  - name: ids\n    schema:\n      features:\n        customer_id: {kind: category}\n")
	asNumbers := evaluateJSON(t, "--file", plainFile, "--target", "y")["accuracy"].(float64)
	asStrings := evaluateJSON(t, "--file", prefixedFile, "--target", "y")["accuracy"].(float64)
	asDeclared := evaluateJSON(t, "--file", plainFile, "--target", "y", "--config", declared)["accuracy"].(float64)
	asFlagged := evaluateJSON(t, "--file", plainFile, "--target", "y", "--categorical", "customer_id")["accuracy"].(float64)
	t.Logf("accuracy: ids as numbers %.4f, prefixed %.4f, declared categorical %.4f, --categorical %.4f", asNumbers, asStrings, asDeclared, asFlagged)
	if math.Abs(asFlagged-asStrings) > 0.01 {
		t.Fatalf("--categorical %.4f, prefixed %.4f: want them within a point", asFlagged, asStrings)
	}
	if math.Abs(asDeclared-asStrings) > 0.01 || asDeclared < asNumbers+0.1 {
		t.Fatalf("declared categorical %.4f, prefixed %.4f, numbers %.4f: want the declared run within a point of the prefixed one", asDeclared, asStrings, asNumbers)
	}
}
