package learner

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

// explainedFeatures crosses namespaces and derives windows, lags and
// targets, so that an explanation has every kind of term.
var explainedFeatures = features.Config{
	Namespaces:   map[string][]string{"a": {"x", "colour"}, "b": {"y", "flag"}},
	Interactions: [][2]string{{"a", "b"}},
	Windows:      []features.WindowConfig{{Field: "x", Size: 4, Aggs: []string{"mean", "std"}}},
	Lags:         []features.LagConfig{{Field: "y", Lags: []int{1}}},
	Targets:      []features.TargetConfig{{Size: 3}},
}

func explainedEvent(rng *rand.Rand) ([]byte, []features.Field) {
	return []byte{'k', byte('0' + rng.IntN(3))}, []features.Field{
		{Name: []byte("x"), Kind: features.Number, Num: rng.NormFloat64()},
		{Name: []byte("y"), Kind: features.Number, Num: rng.Float64() * 10},
		{Name: []byte("colour"), Kind: features.String, Str: []byte{byte('a' + rng.IntN(4))}},
		{Name: []byte("flag"), Kind: features.Bool, Num: float64(rng.IntN(2))},
	}
}

// TestExplanationsSumToTheMarginAndPredictTheSame, for every task, loss and
// optimizer: intercept + Σ contributions (+ those top_k left out) is the
// margin to 1e-9, the link of the margin is the score, and the explained
// score and label are bitwise Score's, for events with numbers, booleans,
// categories, interactions and features derived from the entity's history.
func TestExplanationsSumToTheMarginAndPredictTheSame(t *testing.T) {
	for _, tc := range []ModelConfig{
		{Task: Binary, Loss: LossLog},
		{Task: Binary, Loss: LossHinge, Optimizer: OptimizerConfig{Kind: AdaGrad}},
		{Task: Binary, Loss: LossLog, Optimizer: OptimizerConfig{Kind: FTRL, L1: 0.01}},
		{Task: Regression, Loss: LossSquared},
		{Task: Regression, Loss: LossAbsolute, Optimizer: OptimizerConfig{Kind: Adam}},
		{Task: Regression, Loss: LossHuber},
		{Task: Regression, Loss: LossEpsilonInsensitive, Optimizer: OptimizerConfig{L1: 0.001}},
		{Task: Multiclass, Loss: LossSoftmax},
		{Task: Multiclass, Loss: LossSoftmax, Optimizer: OptimizerConfig{Kind: Adam}},
	} {
		name := string(tc.Task) + "/" + string(tc.Loss) + "/" + string(tc.Optimizer.Kind)
		t.Run(name, func(t *testing.T) {
			mc := tc
			mc.Name, mc.Features = "m", explainedFeatures
			m, err := NewModel(mc, 0)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(3, 4))
			label := func(f []features.Field) float64 {
				switch mc.Task {
				case Regression:
					return 2*f[0].Num + f[1].Num
				case Multiclass:
					return float64(int(f[2].Str[0]-'a') % 3)
				}
				return float64(f[3].Num)
			}
			at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
			for i := range 400 {
				key, f := explainedEvent(rng)
				if _, err := m.LearnEvent(key, at.Add(time.Duration(i)*time.Second), f, label(f)); err != nil {
					t.Fatal(err)
				}
			}
			snap := newSnapshot(m, snapshotMeta{reason: "test"})
			derived, checked := 0, 0
			for range 50 {
				key, f := explainedEvent(rng)
				score, lbl, _ := snap.Score(key, f)
				for _, opts := range []ExplainOptions{{}, {TopK: 3, AllClasses: true}} {
					e, _, _ := snap.Explain(key, f, opts)
					if math.Float64bits(e.Score) != math.Float64bits(score) || e.Label != lbl {
						t.Fatalf("explained %v (label %d), Score %v (label %d)", e.Score, e.Label, score, lbl)
					}
					sum := e.Intercept + e.OmittedContribution
					for _, c := range e.Terms {
						sum += c.Contribution
						if c.Derived {
							derived++
						}
					}
					if math.Abs(sum-e.Margin) > 1e-9 {
						t.Fatalf("intercept + contributions = %v, margin %v", sum, e.Margin)
					}
					if got := link(e); math.Abs(got-e.Score) > 1e-12 {
						t.Fatalf("%s(margin) = %v, score %v", e.Link, got, e.Score)
					}
					if opts.TopK > 0 && len(e.Terms) != 3 {
						t.Fatalf("top_k 3 kept %d terms", len(e.Terms))
					}
					for i := 1; i < len(e.Terms); i++ {
						if math.Abs(e.Terms[i].Contribution) > math.Abs(e.Terms[i-1].Contribution) {
							t.Fatalf("terms not sorted by |contribution|: %v after %v", e.Terms[i].Contribution, e.Terms[i-1].Contribution)
						}
					}
					checked++
				}
			}
			if derived == 0 {
				t.Fatal("no derived feature in any explanation")
			}
			t.Logf("%s: %d explanations sum to their margins", name, checked)
		})
	}
}

// link applies an explanation's link to its margins.
func link(e Explanation) float64 {
	switch e.Link {
	case "sigmoid":
		return 1 / (1 + math.Exp(-e.Margin))
	case "identity":
		return e.Margin
	}
	lse := 0.0
	for _, c := range e.Classes {
		lse += math.Exp(c.Margin)
	}
	if len(e.Classes) == 0 {
		return e.Score // softmax needs every class's margin: AllClasses
	}
	return math.Exp(e.Margin) / lse
}

// TestAnExplanationNamesEveryKindOfTerm checks one explanation term by
// term: a scaled number's mean and standard deviation are the model's, a
// category names its source and bucket, an interaction names both
// factors, derived features carry their names, and two features in one
// bucket are flagged.
func TestAnExplanationNamesEveryKindOfTerm(t *testing.T) {
	mc := ModelConfig{Name: "m", Task: Binary, Features: explainedFeatures}
	mc.Features.HashBits = 1 // two buckets: categories and crosses must share
	m, err := NewModel(mc, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 200 {
		key, f := explainedEvent(rng)
		if _, err := m.LearnEvent(key, time.Time{}, f, f[3].Num); err != nil {
			t.Fatal(err)
		}
	}
	f := []features.Field{
		{Name: []byte("x"), Kind: features.Number, Num: 1.5},
		{Name: []byte("y"), Kind: features.Number, Num: 4},
		{Name: []byte("colour"), Kind: features.String, Str: []byte("b")},
		{Name: []byte("flag"), Kind: features.Bool, Num: 1},
		{Name: []byte("never_seen"), Kind: features.Number, Num: 3},
	}
	e := m.ExplainEvent([]byte("k1"), time.Time{}, f, ExplainOptions{})
	byName := map[string]Contribution{}
	shared := 0
	for _, c := range e.Terms {
		byName[c.Name] = c
		if c.Shared {
			shared++
		}
	}
	x, ok := byName["x"]
	count, mean, variance, _ := m.tr.Stats("x")
	if !ok || x.Kind != features.TermNumber || x.Raw != 1.5 || x.Mean != mean || x.Std != math.Sqrt(variance) || count != 200 ||
		x.Value != (1.5-mean)/math.Sqrt(variance) || x.Contribution != x.Weight*x.Value || !x.HasBaseline {
		t.Errorf("x: %+v; want raw 1.5 scaled with mean %v and std %v", x, mean, math.Sqrt(variance))
	}
	if c, ok := byName["colour=b"]; !ok || c.Kind != features.TermCategory || c.Text != "b" || c.Bucket < 0 || c.Value != 1 || c.HasBaseline {
		t.Errorf("colour=b: %+v", c)
	}
	if c, ok := byName["flag"]; !ok || c.Kind != features.TermBoolean {
		t.Errorf("flag: %+v", c)
	}
	if c, ok := byName["x × flag"]; !ok || c.Kind != features.TermInteraction || c.Value != byName["x"].Value*byName["flag"].Value {
		t.Errorf("x × flag: %+v", c)
	}
	if c, ok := byName["colour=b × y"]; !ok || c.Kind != features.TermInteraction {
		t.Errorf("colour=b × y missing: %v", keys(byName))
	}
	for _, name := range []string{"x_w4_mean", "y_lag1", "label_mean3"} {
		if c, ok := byName[name]; !ok || !c.Derived {
			t.Errorf("derived %s: %+v (terms %v)", name, c, keys(byName))
		}
	}
	if shared < 2 {
		t.Errorf("with 2 buckets, %d terms flagged as sharing one", shared)
	}
	if len(e.Unused) != 1 || e.Unused[0] != "never_seen" {
		t.Errorf("unused = %v, want [never_seen]", e.Unused)
	}
}

func keys(m map[string]Contribution) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ", ")
}

// TestAPhishingExplanationMatchesAHandComputation learns phishing.csv,
// stores the model and restores it, then explains row 1,000 and checks
// every term against a computation by hand from what Inspect shows of the
// stored state: (raw − mean) / std × weight per feature, the intercept,
// and the sigmoid of their sum.
func TestAPhishingExplanationMatchesAHandComputation(t *testing.T) {
	data := readCSV(t, "phishing.csv", "is_phishing")
	mc := ModelConfig{Name: "phishing", Task: Binary}
	m, err := NewModel(mc, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, ex := range data {
		if _, err := m.LearnOne(ex.Fields, ex.Y); err != nil {
			t.Fatal(err)
		}
	}
	stored, _, err := DecodeModel(mc, 0, m.AppendState(nil))
	if err != nil {
		t.Fatal(err)
	}
	in := stored.Inspect(0)
	row := data[999].Fields
	e := stored.ExplainEvent(nil, time.Time{}, row, ExplainOptions{})

	margin := in.Intercepts[0]
	byName := map[string]Contribution{}
	for _, c := range e.Terms {
		byName[c.Name] = c
	}
	for _, f := range in.Numeric {
		var raw float64
		for _, field := range row {
			if string(field.Name) == f.Name {
				raw = field.Num
			}
		}
		x := (raw - f.Mean) / f.Std
		want := x * f.Weights[0]
		c := byName[f.Name]
		if math.Abs(c.Value-x) > 1e-12 || math.Abs(c.Weight-f.Weights[0]) > 1e-15 || math.Abs(c.Contribution-want) > 1e-12 || c.Raw != raw {
			t.Errorf("%s: explained raw %v value %v weight %v contribution %v; by hand raw %v value %v weight %v contribution %v",
				f.Name, c.Raw, c.Value, c.Weight, c.Contribution, raw, x, f.Weights[0], want)
		}
		margin += want
	}
	p := 1 / (1 + math.Exp(-margin))
	if len(in.Numeric) != 9 || math.Abs(e.Margin-margin) > 1e-12 || math.Abs(e.Score-p) > 1e-12 || e.Intercept != in.Intercepts[0] {
		t.Fatalf("%d features; margin %v, probability %v; by hand %v and %v", len(in.Numeric), e.Margin, e.Score, margin, p)
	}
	if got := stored.Predict(nil, row); math.Float64bits(got) != math.Float64bits(e.Score) {
		t.Fatalf("Predict %v, explained %v", got, e.Score)
	}
	t.Logf("phishing.csv row 1,000 after 1,250 rows: margin %.6f, probability %.6f, by hand %.6f and %.6f; largest term %s %.4f",
		e.Margin, e.Score, margin, p, e.Terms[0].Name, e.Terms[0].Contribution)
}
