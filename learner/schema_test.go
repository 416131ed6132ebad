package learner

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

// idStream is 20,000 events whose label depends on a customer id only:
// 50 ids, each with its own probability of label 1 (0.9 or 0.1); the ids
// are five-digit numbers, as ids and zip codes are.
func idStream() (ids []float64, labels []float64) {
	r := rand.New(rand.NewPCG(7, 11))
	idOf := make([]float64, 50)
	pOf := make([]float64, 50)
	for i := range idOf {
		idOf[i] = float64(10000 + r.IntN(90000))
		pOf[i] = 0.1
		if r.IntN(2) == 1 {
			pOf[i] = 0.9
		}
	}
	for range 20000 {
		k := r.IntN(50)
		y := 0.0
		if r.Float64() < pOf[k] {
			y = 1
		}
		ids, labels = append(ids, idOf[k]), append(labels, y)
	}
	return ids, labels
}

// TestAnIdDeclaredCategoricalIsLearnedAsACategory: the same id stream
// learned as numbers (what a number-looking column is without a schema),
// as strings ("c12345", the workaround), and as numbers declared
// categorical in the schema. Declared, it is learned exactly like the
// strings.
func TestAnIdDeclaredCategoricalIsLearnedAsACategory(t *testing.T) {
	ids, labels := idStream()
	run := func(schema *features.Schema, field func(id float64) features.Field) float64 {
		m, err := NewModel(ModelConfig{Name: "ids", Schema: schema}, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, id := range ids {
			if _, err := m.LearnEvent(nil, time.Time{}, []features.Field{field(id)}, labels[i]); err != nil {
				t.Fatal(err)
			}
		}
		return m.Metrics().Accuracy
	}
	asNumber := func(id float64) features.Field {
		return features.Field{Name: []byte("customer_id"), Kind: features.Number, Num: id}
	}
	asString := func(id float64) features.Field {
		return features.Field{Name: []byte("customer_id"), Kind: features.String, Str: []byte("c" + strconv.Itoa(int(id)))}
	}
	declared := &features.Schema{Features: map[string]features.FeatureSpec{"customer_id": {Kind: features.KindCategory}}}
	numbers, strs, categories := run(nil, asNumber), run(nil, asString), run(declared, asNumber)
	t.Logf("accuracy: as numbers %.4f, as prefixed strings %.4f, declared categorical %.4f", numbers, strs, categories)
	if categories < strs-0.01 || categories < numbers+0.1 {
		t.Fatalf("declared categorical %.4f, strings %.4f, numbers %.4f: want the declared run within a point of the strings and well above the numbers", categories, strs, numbers)
	}
}

// TestAnEventThatBreaksTheSchemaIsRejectedNamingTheFeature: with the
// default policy, a number sent as a string is refused with the reason
// schema_violation, and nothing is learned.
func TestAnEventThatBreaksTheSchemaIsRejectedNamingTheFeature(t *testing.T) {
	schema := &features.Schema{Features: map[string]features.FeatureSpec{"f1": {Kind: features.KindNumber, Required: true}}}
	m, err := NewModel(ModelConfig{Name: "m", Schema: schema}, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.LearnEvent(nil, time.Time{}, []features.Field{{Name: []byte("f1"), Kind: features.String, Str: []byte("3.2")}}, 1)
	var rej *RejectError
	if !errors.As(err, &rej) || rej.Reason != ReasonSchemaViolation || !strings.Contains(rej.Detail, `"f1"`) {
		t.Fatalf("LearnEvent = %v, want a schema_violation naming f1", err)
	}
	if m.Learned() != 0 {
		t.Fatalf("learned %d examples from a refused event", m.Learned())
	}
	if _, err := NewModel(ModelConfig{Name: "m", Schema: &features.Schema{OnViolation: "skip"}}, 0); err == nil || !strings.Contains(err.Error(), "on_violation") {
		t.Fatalf("an invalid schema: %v", err)
	}
}

// BenchmarkSchema measures what a schema costs on the per-event paths, on
// and off in one run: LearnEvent (the check, then predict, score, learn)
// and a snapshot's Predict path (ScoreChecked, as Predict calls it), for 8 numeric features all declared (number, with a
// range) and, with 72 categorical ones more, every feature declared.
func BenchmarkSchema(b *testing.B) {
	for _, tc := range benchSizes {
		schema := &features.Schema{Features: map[string]features.FeatureSpec{}}
		lo, hi := -1e9, 1e9
		for j := range tc.numeric {
			schema.Features["n"+strconv.Itoa(j)] = features.FeatureSpec{Kind: features.KindNumber, Min: &lo, Max: &hi}
		}
		for j := range tc.categorical {
			schema.Features["c"+strconv.Itoa(j)] = features.FeatureSpec{Kind: features.KindCategory}
		}
		for _, mode := range []struct {
			name   string
			schema *features.Schema
		}{{"off", nil}, {"on", schema}} {
			cfg := testModelConfig("bench", Binary)
			cfg.Schema = mode.schema
			data := wideEvents(5, 1024, tc.numeric, tc.categorical)
			m := newModel(cfg, DefaultRollingWindow)
			learnAll(b, m, data)
			b.Run("learn/"+tc.name+"/schema "+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					ex := &data[i%len(data)]
					i++
					if _, err := m.LearnEvent(nil, time.Time{}, ex.Fields, ex.Y); err != nil {
						b.Fatal(err)
					}
				}
			})
			snap := m.Snapshot(1, time.Time{}, "bench")
			b.Run("predict/"+tc.name+"/schema "+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				var viol []features.Violation
				i := 0
				for b.Loop() {
					fields := data[i%len(data)].Fields
					i++
					if benchScore, _, viol, _ = snap.ScoreChecked(nil, fields, viol[:0]); len(viol) > 0 {
						b.Fatal(viol)
					}
				}
			})
		}
	}
}

// TestLegitimateEventsAreLearnedAfterAFeatureFlood sends 5,000 events that
// each carry a new numeric feature name (a misbehaving producer), then
// 1,000 legitimate events, each with the model's features and, every
// tenth, a feature the model has not seen yet; and the same legitimate
// events to a model that saw no flood. Without protection
// (too_many_features: dead_letter, the default) the flood fills the 1,024
// numeric slots and the legitimate events with a new feature are refused
// for good; with too_many_features: ignore_feature, or a schema whose
// new_features is ignore or dead_letter, the flood changes nothing: the
// legitimate events are learned as by the model that saw none (with
// dead_letter, the policy refuses undeclared features either way).
func TestLegitimateEventsAreLearnedAfterAFeatureFlood(t *testing.T) {
	declared := func(policy string) *features.Schema {
		return &features.Schema{NewFeatures: policy, Features: map[string]features.FeatureSpec{
			"a": {Kind: features.KindNumber}, "b": {Kind: features.KindNumber}}}
	}
	num := func(name string, x float64) features.Field {
		return features.Field{Name: []byte(name), Kind: features.Number, Num: x}
	}
	run := func(mc ModelConfig, flood bool) (floodLearned, legit int, left uint64) {
		mc.Name = "m"
		m, err := NewModel(mc, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5000 {
			if !flood {
				break
			}
			if _, err := m.LearnEvent(nil, time.Time{}, []features.Field{num("a", 1), num("b", 2), num("junk"+strconv.Itoa(i), 1)}, float64(i%2)); err == nil {
				floodLearned++
			}
		}
		for i := range 1000 {
			fields := []features.Field{num("a", float64(i%7)), num("b", float64(i%5))}
			if i%10 == 0 {
				fields = append(fields, num("new"+strconv.Itoa(i), 1))
			}
			if _, err := m.LearnEvent(nil, time.Time{}, fields, float64(i%2)); err == nil {
				legit++
			}
		}
		return floodLearned, legit, m.OverflowedFeatures()
	}
	for _, tc := range []struct {
		name      string
		mc        ModelConfig
		protected bool
	}{
		{"no protection", ModelConfig{}, false},
		{"too_many_features: ignore_feature", ModelConfig{Features: features.Config{TooManyFeatures: "ignore_feature"}}, true},
		{"schema, new_features: ignore", ModelConfig{Schema: declared(features.PolicyIgnore)}, true},
		{"schema, new_features: dead_letter", ModelConfig{Schema: declared(features.PolicyDeadLetter)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flood, legit, left := run(tc.mc, true)
			_, baseline, _ := run(tc.mc, false)
			t.Logf("%s: %d of 5,000 flood events learned, %d features left out; then %d of 1,000 legitimate events learned (%d without the flood)", tc.name, flood, left, legit, baseline)
			switch {
			case tc.protected && legit != baseline:
				t.Fatalf("after the flood %d legitimate events learned, %d without it", legit, baseline)
			case !tc.protected && legit >= baseline:
				t.Fatalf("without protection the flood should close the model to new features: %d learned, %d without it", legit, baseline)
			}
		})
	}
}

// TestASchemaInferredFromTheFirstEventsIsThenChecked infers a schema from
// 100 events (f1 a number, zip digits sent as strings, vip a boolean),
// then refuses an event that breaks it; its state survives a round trip
// mid-inference and once frozen.
func TestASchemaInferredFromTheFirstEventsIsThenChecked(t *testing.T) {
	mc := ModelConfig{Name: "m", Schema: &features.Schema{Infer: 100, NewFeatures: features.PolicyDeadLetter}}
	m, err := NewModel(mc, 0)
	if err != nil {
		t.Fatal(err)
	}
	event := func(i int) []features.Field {
		return []features.Field{
			{Name: []byte("f1"), Kind: features.Number, Num: float64(i)},
			{Name: []byte("zip"), Kind: features.String, Str: []byte(strconv.Itoa(2000 + i%9))},
			{Name: []byte("vip"), Kind: features.Bool, Num: float64(i % 2)},
		}
	}
	for i := range 60 {
		if _, err := m.LearnEvent(nil, time.Time{}, event(i), float64(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	// Mid-inference, the state moves to another model (a restart).
	st, err := m.AppendSchemaState()
	if err != nil || st == nil {
		t.Fatalf("schema state: %v %v", st, err)
	}
	m2, _ := NewModel(mc, 0)
	if err := m2.RestoreSchemaState(st); err != nil {
		t.Fatal(err)
	}
	for i := 60; i < 100; i++ {
		if _, err := m2.LearnEvent(nil, time.Time{}, event(i), float64(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	s, ok := m2.TakeInferred()
	if !ok || s.Features["f1"].Kind != features.KindNumber || s.Features["zip"].Kind != features.KindCategory || s.Features["vip"].Kind != features.KindBoolean {
		t.Fatalf("inferred after 100 events: %+v, %v", s, ok)
	}
	if _, ok := m2.TakeInferred(); ok {
		t.Fatal("TakeInferred reported the same inference twice")
	}
	var rej *RejectError
	_, err = m2.LearnEvent(nil, time.Time{}, []features.Field{{Name: []byte("f1"), Kind: features.String, Str: []byte("3.2")}}, 1)
	if !errors.As(err, &rej) || !strings.Contains(rej.Detail, `"f1" is declared a number`) {
		t.Fatalf("a string for the inferred number f1: %v", err)
	}
	_, err = m2.LearnEvent(nil, time.Time{}, append(event(1), features.Field{Name: []byte("color"), Kind: features.String, Str: []byte("red")}), 1)
	if !errors.As(err, &rej) || !strings.Contains(rej.Detail, `"color" is not in the schema`) {
		t.Fatalf("a feature the inference never saw: %v", err)
	}
	// Frozen, the schema is stored as it is.
	st, _ = m2.AppendSchemaState()
	m3, _ := NewModel(mc, 0)
	if err := m3.RestoreSchemaState(st); err != nil {
		t.Fatal(err)
	}
	if _, err := m3.LearnEvent(nil, time.Time{}, []features.Field{{Name: []byte("f1"), Kind: features.String, Str: []byte("x")}}, 1); !errors.As(err, &rej) {
		t.Fatalf("the restored frozen schema does not check: %v", err)
	}
}

// BenchmarkSkew is a snapshot's Predict path for 8 numeric features with
// training/serving skew off and on (all 8 watched), in one run.
func BenchmarkSkew(b *testing.B) {
	data := wideEvents(5, 1024, 8, 0)
	var names []string
	for j := range 8 {
		names = append(names, "n"+strconv.Itoa(j))
	}
	for _, mode := range []struct {
		name string
		fd   *FeatureDriftConfig
	}{{"off", nil}, {"on", &FeatureDriftConfig{Features: names}}} {
		cfg := testModelConfig("bench", Binary)
		cfg.FeatureDrift = mode.fd
		m := newModel(cfg, DefaultRollingWindow)
		for range 3 { // past the skew's reference and window
			for _, ex := range data {
				if _, err := m.LearnEvent(nil, time.Time{}, ex.Fields, ex.Y); err != nil {
					b.Fatal(err)
				}
			}
		}
		if mode.fd != nil && len(m.Skew().Distances()) != 0 {
			b.Fatal("serving values before any request")
		}
		snap := m.Snapshot(1, time.Time{}, "bench")
		b.Run("predict/skew "+mode.name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				benchScore, _, _ = snap.Score(nil, data[i%len(data)].Fields)
				i++
			}
		})
	}
}

// TestCategoricalSkewIsMeasured learns a categorical feature (Zipf over
// 50 shops) and scores requests from the same distribution, then requests
// that all carry one value never learned: the skew is small, then close
// to 1.
func TestCategoricalSkewIsMeasured(t *testing.T) {
	m, err := NewModel(ModelConfig{Name: "m", FeatureDrift: &FeatureDriftConfig{Categories: []string{"shop"}, Reference: 500, Window: 200}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 3))
	z := rand.NewZipf(r, 1.2, 1, 49)
	shop := func() []features.Field {
		return []features.Field{{Name: []byte("shop"), Kind: features.String, Str: []byte("shop-" + strconv.FormatUint(z.Uint64(), 10))}}
	}
	for i := range 2000 {
		if _, err := m.LearnEvent(nil, time.Time{}, shop(), float64(i%2)); err != nil {
			t.Fatal(err)
		}
	}
	snap := m.Snapshot(1, time.Time{}, "test")
	skew := func() float64 {
		d := m.Skew().Distances()
		if len(d) != 1 || d[0].Feature != "shop" {
			t.Fatalf("distances %+v", d)
		}
		return d[0].Distance
	}
	for range 200 {
		snap.Score(nil, shop())
	}
	same := skew()
	for range 200 {
		snap.Score(nil, []features.Field{{Name: []byte("shop"), Kind: features.String, Str: []byte("UNKNOWN")}})
	}
	broken := skew()
	t.Logf("categorical skew: %.3f from the training distribution, %.3f with a placeholder", same, broken)
	if same > 0.35 || broken < 0.9 {
		t.Fatalf("skew %.3f, then %.3f: want small, then close to 1", same, broken)
	}
}
