package learner

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eddyhq/eddy/features"
)

// preparsed returns n examples with k active features each: dense ones use
// slots 0..k-1, sparse ones k random indices in a 2^18 hashed space (like a
// bag of words), values from a fixed rng.
func preparsed(n, k int, sparse bool, seed uint64) []features.Vector {
	rng := rand.New(rand.NewPCG(seed, 7))
	out := make([]features.Vector, n)
	for i := range out {
		for j := range k {
			idx := j
			if sparse {
				idx = 1024 + rng.IntN(1<<18)
			}
			out[i].Add(idx, rng.NormFloat64())
		}
	}
	return out
}

func benchLinear(b *testing.B, cfg ModelConfig, k int, sparse bool) {
	cfg.Name = "bench"
	cfg.EnsureDefaults()
	l := newLinear(cfg, 1024+1<<18)
	xs := preparsed(1024, k, sparse, 1)
	ys := make([]float64, len(xs))
	classes := 1
	if cfg.Task == Multiclass {
		classes = 10
		for range classes {
			l.addOutput()
		}
	}
	for i := range ys {
		ys[i] = float64(i % 2)
		if cfg.Task == Multiclass {
			ys[i] = float64(i % classes)
		}
		l.learn(&xs[i], ys[i]) // warm up: grow every vector
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		l.learn(&xs[i&1023], ys[i&1023])
		i++
	}
}

// BenchmarkLearnStep measures one learn step (raw prediction + loss gradient
// + update) on a pre-parsed example, as Vowpal Wabbit's benchmarks do:
// 8 dense features and about 80 hashed sparse ones.
func BenchmarkLearnStep(b *testing.B) {
	logistic := ModelConfig{Task: Binary}
	for _, bc := range []struct {
		name string
		cfg  ModelConfig
	}{
		{"squared-sgd", ModelConfig{Task: Regression}},
		{"logistic-sgd", logistic},
		{"hinge-sgd", ModelConfig{Task: Binary, Loss: LossHinge}},
		{"adagrad", ModelConfig{Task: Binary, Optimizer: OptimizerConfig{Kind: AdaGrad}}},
		{"adam", ModelConfig{Task: Binary, Optimizer: OptimizerConfig{Kind: Adam}}},
		{"ftrl", ModelConfig{Task: Binary, Optimizer: OptimizerConfig{Kind: FTRL, L1: 0.1, L2: 0.1}}},
		{"softmax10", ModelConfig{Task: Multiclass}},
	} {
		for _, size := range []struct {
			k      int
			sparse bool
			name   string
		}{{8, false, "dense8"}, {80, true, "sparse80"}} {
			b.Run(fmt.Sprintf("%s/%s", bc.name, size.name), func(b *testing.B) { benchLinear(b, bc.cfg, size.k, size.sparse) })
		}
	}
}

// TestEveryLossAndOptimizerConverges learns a fixed linear rule with noise
// and checks the prequential error over the last examples reaches what the
// rule allows.
func TestEveryLossAndOptimizerConverges(t *testing.T) {
	trueW := []float64{1.5, -2, 0.5, 0, 3}
	rule := func(x []float64) float64 {
		s := 0.7
		for i, w := range trueW {
			s += w * x[i]
		}
		return s
	}
	type tc struct {
		name string
		cfg  ModelConfig
		// limit on the rolling error: 1 - accuracy for classifiers, MAE for
		// regression
		limit float64
	}
	var cases []tc
	for _, opt := range []OptimizerConfig{
		{Kind: SGD, LR: 0.05},
		{Kind: SGD, LR: 0.2, Schedule: InvScaling, PowerT: 0.25},
		{Kind: AdaGrad, LR: 0.5},
		{Kind: Adam, LR: 0.05},
		{Kind: FTRL, LR: 0.5},
	} {
		name := string(opt.Kind)
		if opt.Schedule == InvScaling {
			name += "-invscaling"
		}
		opt.InterceptLR = 0.05
		cases = append(cases,
			tc{"regression/squared/" + name, ModelConfig{Task: Regression, Loss: LossSquared, Optimizer: opt}, 0.25},
			tc{"regression/absolute/" + name, ModelConfig{Task: Regression, Loss: LossAbsolute, Optimizer: opt}, 0.35},
			tc{"regression/huber/" + name, ModelConfig{Task: Regression, Loss: LossHuber, Epsilon: 1, Optimizer: opt}, 0.3},
			tc{"regression/epsilon_insensitive/" + name, ModelConfig{Task: Regression, Loss: LossEpsilonInsensitive, Optimizer: opt}, 0.35},
			tc{"binary/log/" + name, ModelConfig{Task: Binary, Loss: LossLog, Optimizer: opt}, 0.1},
			tc{"binary/hinge/" + name, ModelConfig{Task: Binary, Loss: LossHinge, Optimizer: opt}, 0.1},
			tc{"multiclass/softmax/" + name, ModelConfig{Task: Multiclass, Optimizer: opt}, 0.15},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			c.cfg.Name = "m"
			c.cfg.Features.Scaler = features.ScalerNone
			m, err := NewModel(c.cfg, 2000)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(42, 1))
			x := make([]float64, len(trueW))
			fields := make([]features.Field, len(trueW))
			for i := range fields {
				fields[i] = features.Field{Name: []byte{byte('a' + i)}, Kind: features.Number}
			}
			for range 30000 {
				for i := range x {
					x[i] = rng.Float64()*2 - 1
					fields[i].Num = x[i]
				}
				z := rule(x)
				var y float64
				switch c.cfg.Task {
				case Regression:
					y = z + rng.NormFloat64()*0.1
				case Binary:
					if z > 0.7 {
						y = 1
					}
				case Multiclass:
					// three classes by thresholds of the rule
					y = 2
					if z < -0.5 {
						y = 0
					} else if z < 1.5 {
						y = 1
					}
					y *= 3 // class labels 0, 3, 6: any integers work
				}
				if _, err := m.LearnOne(fields, y); err != nil {
					t.Fatal(err)
				}
			}
			met := m.Metrics()
			errRate := met.Rolling
			if c.cfg.Task != Regression {
				errRate = 1 - met.Rolling
			}
			if errRate > c.limit || math.IsNaN(errRate) {
				t.Fatalf("rolling error %.4f over the last 2000, want ≤ %.2f", errRate, c.limit)
			}
		})
	}
}

func TestL1ProducesExactZerosForIrrelevantFeatures(t *testing.T) {
	// SGD's cumulative penalty, FTRL and Adam's truncation zero (nearly)
	// every irrelevant weight; AdaGrad's truncation zeroes fewer, since its
	// steps, and so the L1 shrinkage, decay as gradients accumulate.
	for _, tc := range []struct {
		opt      OptimizerConfig
		minZeros int
	}{
		{OptimizerConfig{Kind: SGD, LR: 0.05, L1: 0.001}, 8},
		{OptimizerConfig{Kind: AdaGrad, LR: 0.5, L1: 0.2}, 3},
		{OptimizerConfig{Kind: Adam, LR: 0.05, L1: 0.2}, 3},
		{OptimizerConfig{Kind: FTRL, LR: 0.5, L1: 5}, 8},
	} {
		opt := tc.opt
		t.Run(string(opt.Kind), func(t *testing.T) {
			m, err := NewModel(ModelConfig{Name: "m", Task: Regression, Features: features.Config{Scaler: features.ScalerNone}, Optimizer: opt}, 0)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 3))
			fields := []features.Field{{Name: []byte("signal"), Kind: features.Number}}
			for i := range 10 {
				fields = append(fields, features.Field{Name: []byte{'n', byte('0' + i)}, Kind: features.Number})
			}
			for range 20000 {
				for i := range fields {
					fields[i].Num = rng.Float64()*2 - 1
				}
				if _, err := m.LearnOne(fields, 3*fields[0].Num+rng.NormFloat64()*0.05); err != nil {
					t.Fatal(err)
				}
			}
			w, _ := m.Weights()
			zeros := 0
			for _, x := range w[1:] {
				if x == 0 {
					zeros++
				}
			}
			if w[0] < 2 || zeros < tc.minZeros {
				t.Fatalf("signal weight %.3f (want ≈3), %d of 10 noise weights exactly 0 (want ≥ %d): %v", w[0], zeros, tc.minZeros, w)
			}
			t.Logf("signal weight %.3f, %d of 10 noise weights exactly 0", w[0], zeros)
		})
	}
}

func TestStateRoundTripsExactlyForEveryOptimizer(t *testing.T) {
	for _, cfg := range []ModelConfig{
		{Task: Binary, Optimizer: OptimizerConfig{Kind: SGD, L1: 0.01}},
		{Task: Binary, Loss: LossHinge, Optimizer: OptimizerConfig{Kind: AdaGrad}},
		{Task: Regression, Loss: LossHuber, Optimizer: OptimizerConfig{Kind: Adam}},
		{Task: Regression, Optimizer: OptimizerConfig{Kind: FTRL, L1: 1, L2: 1}},
		{Task: Multiclass, Optimizer: OptimizerConfig{Kind: Adam}, Features: features.Config{
			Namespaces: map[string][]string{"a": {"x", "c"}, "b": {"y"}}, Interactions: [][2]string{{"a", "b"}}}},
	} {
		cfg.Name = "m"
		name := fmt.Sprintf("%s/%s/%s", cfg.Task, cfg.Loss, cfg.Optimizer.Kind)
		t.Run(name, func(t *testing.T) {
			m, err := NewModel(cfg, 50)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 5))
			learn := func(m *Model, n int) {
				for i := range n {
					fields := []features.Field{
						{Name: []byte("x"), Kind: features.Number, Num: rng.NormFloat64()},
						{Name: []byte("y"), Kind: features.Number, Num: rng.NormFloat64()},
						{Name: []byte("c"), Kind: features.String, Str: []byte{byte('a' + i%5)}},
					}
					y := float64(i % 2)
					if m.cfg.Task == Multiclass {
						y = float64(i % 3)
					}
					if _, err := m.LearnOne(fields, y); err != nil {
						t.Fatal(err)
					}
				}
			}
			learn(m, 300)
			data := m.AppendState(nil)
			got, rest, err := decodeState(m.cfg, 50, data)
			if err != nil || len(rest) != 0 {
				t.Fatalf("decode: %v", err)
			}
			if string(got.AppendState(nil)) != string(data) {
				t.Fatal("re-encoding the decoded state gives different bytes")
			}
			// Both continue identically, optimizer state included.
			seed := rng.Uint64()
			rng = rand.New(rand.NewPCG(seed, 1))
			learn(m, 100)
			rng = rand.New(rand.NewPCG(seed, 1))
			learn(got, 100)
			if string(got.AppendState(nil)) != string(m.AppendState(nil)) {
				t.Fatal("the decoded model learns differently from the original")
			}
		})
	}
}

func TestAMulticlassSnapshotPredictsTheClassLabel(t *testing.T) {
	m, err := NewModel(ModelConfig{Name: "m", Task: Multiclass, Optimizer: OptimizerConfig{LR: 0.1}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Class 7 when x is high, 3 when low: labels are any integers.
	for i := range 4000 {
		x := float64(i%100) / 100
		y := 3.0
		if x > 0.5 {
			y = 7
		}
		if _, err := m.LearnOne([]features.Field{{Name: []byte("x"), Kind: features.Number, Num: x}}, y); err != nil {
			t.Fatal(err)
		}
	}
	snap := newSnapshot(m, snapshotMeta{reason: "test"})
	for _, tc := range []struct {
		x    float64
		want int32
	}{{0.05, 3}, {0.95, 7}} {
		p, label, _ := snap.Score(nil, []features.Field{{Name: []byte("x"), Kind: features.Number, Num: tc.x}})
		if label != tc.want || p <= 0.5 || p > 1 {
			t.Errorf("x=%v: class %d with probability %.3f, want class %d with probability > 0.5", tc.x, label, p, tc.want)
		}
	}
	if _, err := m.LearnOne([]features.Field{{Name: []byte("x"), Kind: features.Number, Num: 1}}, 2.5); err == nil {
		t.Error("a fractional class label was accepted")
	}
}
