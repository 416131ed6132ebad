package learner

import (
	"strings"
	"testing"
	"time"
)

// TestSeedAndCompareState: a model seeded with the decoded snapshot of
// another goes on learning exactly as the other does (CompareState finds
// the states identical), and one example more, or one example less, is a
// difference CompareState measures; Seed refuses a model configured to
// learn otherwise, naming the setting.
func TestSeedAndCompareState(t *testing.T) {
	data := readCSV(t, "phishing.csv", "is_phishing")
	mc := ModelConfig{Name: "phishing", Task: Binary, Optimizer: OptimizerConfig{Kind: "adagrad"}}
	learn := func(m *Model, rows []example) {
		t.Helper()
		for _, ex := range rows {
			if _, err := m.LearnOne(ex.Fields, ex.Y); err != nil {
				t.Fatal(err)
			}
		}
	}
	src, _ := NewModel(mc, 0)
	learn(src, data[:600])
	snap := src.Snapshot(1, time.Now(), ReasonPeriodic)
	exported, err := DecodeSnapshotModel(mc, 0, src.AppendSnapshot(nil, snap))
	if err != nil {
		t.Fatal(err)
	}
	dst, _ := NewModel(ModelConfig{Name: "other", Task: Binary, Optimizer: OptimizerConfig{Kind: "adagrad"}}, 0)
	learn(dst, data[900:])
	if err := dst.Seed(exported); err != nil {
		t.Fatal(err)
	}
	learn(src, data[600:1000])
	learn(dst, data[600:1000])
	if d := dst.CompareState(src); !d.Identical || d.Differ != 0 || d.Weights != 10 {
		t.Fatalf("seeded, then the same 400 rows: %+v, want identical", d)
	}
	learn(dst, data[1000:1001])
	if d := dst.CompareState(src); d.Identical || d.Differ == 0 || d.MaxAbs == 0 || d.RelL2 == 0 {
		t.Fatalf("one row more: %+v, want a difference", d)
	}

	hinge, _ := NewModel(ModelConfig{Name: "hinge", Task: Binary, Loss: "hinge"}, 0)
	if err := hinge.Seed(src); err == nil || !strings.Contains(err.Error(), "loss") {
		t.Fatalf("seeding a hinge-loss model with a log-loss one: %v, want an error naming the loss", err)
	}
}
