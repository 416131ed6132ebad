package learner

import (
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/eddyhq/eddy/features"
)

// datasetPath locates ../shared/datasets from the repository root; tests
// that need it are skipped when it is absent.
func datasetPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "shared", "datasets", name)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("data set %s not available: %v", name, err)
	}
	return p
}

type example struct {
	fields []features.Field
	y      float64
}

func readCSV(t testing.TB, name, target string) []example {
	t.Helper()
	f, err := os.Open(datasetPath(t, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	var out []example
	for _, row := range rows[1:] {
		var ex example
		for i, cell := range row {
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				t.Fatalf("%s: %q is not a number", name, cell)
			}
			if header[i] == target {
				ex.y = v
				continue
			}
			ex.fields = append(ex.fields, features.Field{Name: []byte(header[i]), Kind: features.Number, Num: v})
		}
		out = append(out, ex)
	}
	return out
}

func runPrequential(t testing.TB, cfg ModelConfig, data []example) *Model {
	t.Helper()
	cfg.Name = "m"
	cfg.EnsureDefaults()
	m := newModel(cfg, DefaultRollingWindow)
	for i, ex := range data {
		if _, err := m.LearnOne(ex.fields, ex.y); err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
	}
	return m
}

func TestLogisticRegressionMatchesRiverOnPhishing(t *testing.T) {
	data := readCSV(t, "phishing.csv", "is_phishing")
	for _, tc := range []struct {
		name string
		lr   float64
		want float64
	}{
		{"SGD(0.1)", 0.1, 0.8896},
		{"default SGD(0.01)", 0.01, 0.8928},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := runPrequential(t, ModelConfig{Task: Binary, Optimizer: OptimizerConfig{LR: tc.lr}}, data)
			got := m.Metrics().Accuracy
			if math.Abs(got-tc.want) > 0.001 {
				t.Fatalf("accuracy = %.4f, River = %.4f", got, tc.want)
			}
			t.Logf("accuracy %.4f (River %.4f)", got, tc.want)
		})
	}
}

func TestLinearRegressionMatchesRiverOnTrumpApproval(t *testing.T) {
	data := readCSV(t, "trump_approval.csv", "five_thirty_eight")
	m := runPrequential(t, ModelConfig{Task: Regression, Optimizer: OptimizerConfig{InterceptLR: 0.1}}, data)
	if got := m.Metrics().MAE; math.Abs(got-0.558735) > 1e-4 {
		t.Errorf("MAE = %.6f, River = 0.558735", got)
	}
	if got := m.Intercept(); math.Abs(got-35.617671) > 1e-4 {
		t.Errorf("intercept = %.6f, River = 35.617671", got)
	}
	t.Logf("MAE %.6f (River 0.558735), intercept %.6f (River 35.617671)", m.Metrics().MAE, m.Intercept())
}

func TestLogisticRegressionMatchesRiverOnElec2(t *testing.T) {
	data := readCSV(t, "elec2.csv", "up")
	m := runPrequential(t, ModelConfig{Task: Binary, Optimizer: OptimizerConfig{LR: 0.005}}, data)
	got := m.Metrics().Accuracy
	if math.Abs(got-0.8221) > 0.001 {
		t.Fatalf("accuracy = %.4f, River = 0.8221", got)
	}
	t.Logf("accuracy %.4f (River 0.8221)", got)
}
