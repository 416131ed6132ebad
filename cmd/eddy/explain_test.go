package main

import (
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// TestAServedExplanationIsReproducedOffline serves phishing.csv's first
// 999 rows through Kafka, asks `eddy predict --explain` about row 1,000,
// and runs `eddy evaluate --explain-row 1000` on the file: both print the
// same explanation (the same message, bit for bit), and the table lists
// every feature with the intercept. `eddy inspect` then names the model's
// weights.
func TestAServedExplanationIsReproducedOffline(t *testing.T) {
	broker := startBroker(t)
	file := datasetPath(t, "phishing.csv")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	first := filepath.Join(t.TempDir(), "first999.csv")
	if err := os.WriteFile(first, []byte(strings.Join(lines[:1000], "")), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := startTestService(t, testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "phishing"}))
	if _, stderr, err := runCLI(t, nil, "produce", "--file", first, "--brokers", broker, "--topic", "events", "--target", "is_phishing"); err != nil {
		t.Fatalf("produce: %v\n%s", err, stderr)
	}
	waitFor(t, 60*time.Second, "999 rows learned and served", func() bool {
		m, _ := svc.Stats().Model("phishing")
		return m.Learned == 999 && m.ServedLearned == 999
	})

	header, err := csv.NewReader(strings.NewReader(lines[0])).Read()
	if err != nil {
		t.Fatal(err)
	}
	row, err := csv.NewReader(strings.NewReader(lines[1000])).Read()
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"predict", "--model", "phishing", "--addr", svc.GRPCAddr(), "--explain"}
	for i, name := range header {
		if name != "is_phishing" {
			args = append(args, "--feature", name+"="+row[i])
		}
	}
	table, _, err := runCLI(t, nil, args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"NAME", "WEIGHT", "CONTRIBUTION", "intercept", "popup_window", "ip_in_url", "sigmoid(margin)"} {
		if !strings.Contains(table, want) {
			t.Errorf("eddy predict --explain prints no %q:\n%s", want, table)
		}
	}
	t.Logf("eddy predict --explain:\n%s", table)
	served, _, err := runCLI(t, nil, append(args, "--json")...)
	if err != nil {
		t.Fatal(err)
	}
	var resp eddyv1.PredictResponse
	if err := protojson.Unmarshal([]byte(served), &resp); err != nil {
		t.Fatal(err)
	}

	offline, _, err := runCLI(t, nil, "evaluate", "--file", file, "--target", "is_phishing", "--explain-row", "1000", "--json")
	if err != nil {
		t.Fatal(err)
	}
	var summary struct {
		Score       float64         `json:"score"`
		Explanation json.RawMessage `json:"explanation"`
	}
	if err := json.Unmarshal([]byte(offline), &summary); err != nil {
		t.Fatal(err)
	}
	var replayed eddyv1.Explanation
	if err := protojson.Unmarshal(summary.Explanation, &replayed); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(&replayed, resp.GetExplanation()) || summary.Score != resp.GetProbability() {
		t.Fatalf("offline (score %v):\n%v\nserved (probability %v):\n%v", summary.Score, &replayed, resp.GetProbability(), resp.GetExplanation())
	}
	text, _, err := runCLI(t, nil, "evaluate", "--file", file, "--target", "is_phishing", "--explain-row", "1000", "--every", "0")
	if err != nil || !strings.Contains(text, "row 1000 (line 1001, label ") || !strings.Contains(text, "CONTRIBUTION") {
		t.Fatalf("evaluate --explain-row: %v\n%s", err, text)
	}
	if _, _, err := runCLI(t, nil, "evaluate", "--file", file, "--target", "is_phishing", "--explain-row", "5000"); err == nil || !strings.Contains(err.Error(), "1250 data rows") {
		t.Errorf("an explain row beyond the file: %v", err)
	}

	out, _, err := runCLI(t, nil, "inspect", "--model", "phishing", "--addr", svc.GRPCAddr(), "--top", "5")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"model phishing (binary)", "learned 999 examples", "largest 5 weights", "popup_window", "numeric features (9)", "configuration:", "hash_bits: 18"} {
		if !strings.Contains(out, want) {
			t.Errorf("eddy inspect prints no %q:\n%s", want, out)
		}
	}
	t.Logf("eddy inspect:\n%s", out)
}
