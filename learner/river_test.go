package learner

import (
	"crypto/sha256"
	"fmt"
	"math"
	"testing"
)

// TestTheShippedDataSetsAreTheSharedOnes checks every data set in testdata
// against the SHA-256 of the CSV it was made from (testdata/README.md), so
// that the parity figures below are computed on exactly River's data.
func TestTheShippedDataSetsAreTheSharedOnes(t *testing.T) {
	for name, want := range map[string]string{
		"elec2.csv":          "014f3e0ab6582104f94238eb86cc984ecbe23748542570a1210b2b00346a2887",
		"weather.csv":        "489fb8c96169ea038c09444581d2c35d0f50318e6b80d398545cc337aee87cdf",
		"sea.csv":            "b7c992d5bc304581181dd6e9d7e030d7fb790ac0e041912e63128740df0884ec",
		"phishing.csv":       "cfe77f0b77dd706ac5491842d7ad787c80b5805eb315a47a4b89d0172c760fca",
		"trump_approval.csv": "aef188d04b606270e9590013282e2ede3f5f92edae1106d85d3defa483189cb0",
	} {
		if got := fmt.Sprintf("%x", sha256.Sum256(dataset(t, name))); got != want {
			t.Errorf("%s: SHA-256 %s, want %s", name, got, want)
		}
	}
}

func runPrequential(t testing.TB, cfg ModelConfig, data []example) *Model {
	t.Helper()
	cfg.Name = "m"
	cfg.EnsureDefaults()
	m := newModel(cfg, DefaultRollingWindow)
	for i, ex := range data {
		if _, err := m.LearnOne(ex.Fields, ex.Y); err != nil {
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
