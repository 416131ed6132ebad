package learner

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/eddyhq/eddy/features"
)

func numField(name string, x float64) features.Field {
	return features.Field{Name: []byte(name), Kind: features.Number, Num: x}
}

func strField(name, value string) features.Field {
	return features.Field{Name: []byte(name), Kind: features.String, Str: []byte(value)}
}

func boolField(name string, b bool) features.Field {
	f := features.Field{Name: []byte(name), Kind: features.Bool}
	if b {
		f.Num = 1
	}
	return f
}

// paymentEvents returns n deterministic labeled events that mix numeric,
// boolean and categorical features, with a label that depends on all three
// kinds so that every kind of weight is learned.
func paymentEvents(seed uint64, n int) []example {
	rng := rand.New(rand.NewPCG(seed, 7))
	countries := []string{"de", "fr", "us", "br", "in", "jp"}
	countryEffect := []float64{-0.5, -0.3, 0, 0.4, 0.8, -0.8}
	devices := []string{"ios", "android", "web"}
	out := make([]example, n)
	for i := range out {
		amount := rng.ExpFloat64() * 50
		age := 18 + rng.Float64()*60
		isNew := rng.IntN(4) == 0
		country := rng.IntN(len(countries))
		logit := 0.03*(amount-50) - 0.02*(age-45) + countryEffect[country]
		if isNew {
			logit++
		}
		var y float64
		if rng.Float64() < sigmoid(logit) {
			y = 1
		}
		out[i] = example{
			fields: []features.Field{
				numField("amount", amount),
				numField("age", age),
				boolField("is_new", isNew),
				strField("country", countries[country]),
				strField("device", devices[rng.IntN(len(devices))]),
			},
			y: y,
		}
	}
	return out
}

// wideEvents returns n deterministic events with numeric dense features
// followed by categorical hashed ones (values from a small vocabulary), for
// the benchmarks.
func wideEvents(seed uint64, n, numeric, categorical int) []example {
	rng := rand.New(rand.NewPCG(seed, 11))
	out := make([]example, n)
	for i := range out {
		fields := make([]features.Field, 0, numeric+categorical)
		var logit float64
		for j := range numeric {
			x := rng.NormFloat64()
			logit += x / float64(j+1)
			fields = append(fields, numField(fmt.Sprintf("n%d", j), x))
		}
		for j := range categorical {
			v := rng.IntN(20)
			if v < 3 {
				logit += 0.2
			}
			fields = append(fields, strField(fmt.Sprintf("c%d", j), fmt.Sprintf("v%d", v)))
		}
		var y float64
		if rng.Float64() < sigmoid(logit) {
			y = 1
		}
		out[i] = example{fields: fields, y: y}
	}
	return out
}

func testModelConfig(name string, task Task) ModelConfig {
	cfg := ModelConfig{Name: name, Task: task}
	cfg.EnsureDefaults()
	return cfg
}

func learnAll(t testing.TB, m *Model, data []example) {
	t.Helper()
	for i, ex := range data {
		if _, err := m.LearnOne(ex.fields, ex.y); err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
	}
}

func sameBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

func metricsBits(m Metrics) []float64 {
	return []float64{float64(m.N), m.Accuracy, m.LogLoss, m.MAE, m.RMSE, m.Rolling}
}

// requireSameModel fails unless got holds exactly (bit for bit) the state of
// want: weights, intercept, feature state, learned count, version, metrics.
func requireSameModel(t *testing.T, got, want *Model) {
	t.Helper()
	gotW, gotB := got.Weights()
	wantW, wantB := want.Weights()
	if !sameBits(gotW, wantW) {
		t.Errorf("weights differ: %d weights vs %d, first difference at %d", len(gotW), len(wantW), firstDifference(gotW, wantW))
	}
	if math.Float64bits(gotB) != math.Float64bits(wantB) {
		t.Errorf("intercept = %v, want %v", gotB, wantB)
	}
	if got.learned != want.learned {
		t.Errorf("learned = %d, want %d", got.learned, want.learned)
	}
	if got.version != want.version {
		t.Errorf("snapshot version = %d, want %d", got.version, want.version)
	}
	if !sameBits(metricsBits(got.Metrics()), metricsBits(want.Metrics())) {
		t.Errorf("metrics = %+v, want %+v", got.Metrics(), want.Metrics())
	}
	// The rolling window's contents are not visible in Metrics until they
	// slide out of it, so compare them directly.
	g, w := &got.eval, &want.eval
	if !sameBits(g.window.values, w.window.values) || g.window.next != w.window.next || g.window.filled != w.window.filled || math.Float64bits(g.window.sum) != math.Float64bits(w.window.sum) {
		t.Errorf("rolling window differs: next %d filled %d vs next %d filled %d", g.window.next, g.window.filled, w.window.next, w.window.filled)
	}
	if !bytes.Equal(got.tr.AppendState(nil), want.tr.AppendState(nil)) {
		t.Errorf("feature state differs")
	}
}

func firstDifference(a, b []float64) int {
	for i := range min(len(a), len(b)) {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// sameWeights compares weight vectors as functions of the index: a vector
// padded with zeros holds the same weights as the unpadded one.
func sameWeights(a, b []float64) bool {
	for i := range max(len(a), len(b)) {
		var x, y float64
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if math.Float64bits(x) != math.Float64bits(y) {
			return false
		}
	}
	return true
}

func TestRegressionLearnsALinearTargetWithinNoise(t *testing.T) {
	t.Parallel()
	// y = 3*x1 - 2*x2 + 5 plus Gaussian noise of standard deviation 0.05,
	// whose own mean absolute error is about 0.04. Tolerance: the rolling
	// MAE over the last 1000 examples must be below 0.2.
	const tolerance = 0.2
	store, _ := openTestStore(t, t.TempDir())
	e, _ := newTestEngine(t, store, EngineConfig{
		Models: []ModelConfig{{Name: "price", Task: Regression}},
	}, nil)
	rng := rand.New(rand.NewPCG(42, 42))
	fields := []features.Field{numField("x1", 0), numField("x2", 0)}
	for i := range 20000 {
		x1, x2 := rng.NormFloat64(), rng.Float64()*4-2
		fields[0].Num, fields[1].Num = x1, x2
		y := 3*x1 - 2*x2 + 5 + 0.05*rng.NormFloat64()
		if err := e.Process("events", fields, y, true); err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
	}
	m := e.Models()[0]
	if got := m.Metrics().Rolling; !(got < tolerance) {
		t.Fatalf("rolling MAE after 20000 examples = %.4f, want < %.1f", got, tolerance)
	}
	if got := m.Intercept(); math.Abs(got-5) > 0.2 {
		t.Errorf("intercept = %.4f, want 5 ± 0.2 (both features are centred by the scaler)", got)
	}
}

func TestDecodeStateRestoresAnEncodedModelExactly(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		task Task
	}{
		{"binary", Binary},
		{"regression", Regression},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testModelConfig("m", tc.task)
			m := newModel(cfg, 16)
			learnAll(t, m, paymentEvents(1, 300))
			m.version = 3
			data := m.appendState(nil)
			got, rest, err := decodeState(cfg, 16, append(data, "tail"...))
			if err != nil {
				t.Fatal(err)
			}
			if string(rest) != "tail" {
				t.Errorf("decodeState left %q after the state, want %q", rest, "tail")
			}
			requireSameModel(t, got, m)
		})
	}
}

func TestDecodeStateRejectsEveryTruncation(t *testing.T) {
	t.Parallel()
	// A small hashed space and window keep each of the ~1000 decodes cheap;
	// the encoding still holds numeric, boolean and hashed weights.
	cfg := testModelConfig("m", Binary)
	cfg.Features.HashBits = 6
	const window = 8
	m := newModel(cfg, window)
	learnAll(t, m, paymentEvents(2, 200))
	m.version = 2
	state := m.appendState(nil)
	snapshot := appendSnapshot(nil, snapshotMeta{reason: "periodic"}, m)

	for _, tc := range []struct {
		name   string
		data   []byte
		decode func([]byte) error
	}{
		{"model state", state, func(b []byte) error {
			_, _, err := decodeState(cfg, window, b)
			return err
		}},
		{"snapshot", snapshot, func(b []byte) error {
			_, err := decodeSnapshot(cfg, window, b)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.decode(tc.data); err != nil {
				t.Fatalf("the complete encoding does not decode: %v", err)
			}
			for n := range len(tc.data) {
				panicked, err := tryDecode(tc.decode, tc.data[:n:n])
				if panicked != nil {
					t.Fatalf("the first %d of %d bytes made the decoder panic: %v", n, len(tc.data), panicked)
				}
				if err == nil {
					t.Fatalf("the first %d of %d bytes decoded without error", n, len(tc.data))
				}
				if !errors.Is(err, ErrCorrupt) && !errors.Is(err, features.ErrCorrupt) {
					t.Fatalf("the first %d of %d bytes: error %q is not a corrupt-state error", n, len(tc.data), err)
				}
			}
		})
	}
}

// tryDecode reports a panic as a value so that one bad prefix reports its
// length instead of aborting the test binary.
func tryDecode(decode func([]byte) error, data []byte) (panicked any, err error) {
	defer func() { panicked = recover() }()
	return nil, decode(data)
}

// FuzzDecodeState checks that no input makes decodeState panic or return a
// model that panics when it learns.
func FuzzDecodeState(f *testing.F) {
	cfg := testModelConfig("m", Binary)
	cfg.Features.HashBits = 6
	const window = 8
	m := newModel(cfg, window)
	f.Add(m.appendState(nil))
	learnAll(f, m, paymentEvents(3, 50))
	f.Add(m.appendState(nil))
	probe := paymentEvents(4, 1)[0]
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := decodeState(cfg, window, data)
		if err != nil {
			return
		}
		got.Predict(probe.fields)
		_, _ = got.LearnOne(probe.fields, probe.y)
	})
}

func TestLearningAndPredictingAllocateNothing(t *testing.T) {
	for _, tc := range benchSizes {
		t.Run(tc.name, func(t *testing.T) {
			m, data := warmModel(t, tc.numeric, tc.categorical)
			i := 0
			learn := testing.AllocsPerRun(200, func() {
				ex := &data[i%len(data)]
				i++
				if _, err := m.LearnOne(ex.fields, ex.y); err != nil {
					t.Fatal(err)
				}
			})
			predict := testing.AllocsPerRun(200, func() {
				m.Predict(data[i%len(data)].fields)
				i++
			})
			if learn != 0 || predict != 0 {
				t.Fatalf("allocations per example: LearnOne %v, Predict %v; want 0", learn, predict)
			}
		})
	}
}

var benchSizes = []struct {
	name                 string
	numeric, categorical int
}{
	{"8 numeric", 8, 0},
	{"80 mostly categorical", 8, 72},
}

// warmModel returns a binary model that has learned a pool of events once,
// so that every slot, weight and buffer exists (the steady state), and the
// pool to keep learning from.
func warmModel(tb testing.TB, numeric, categorical int) (*Model, []example) {
	tb.Helper()
	data := wideEvents(5, 1024, numeric, categorical)
	m := newModel(testModelConfig("bench", Binary), DefaultRollingWindow)
	learnAll(tb, m, data)
	return m, data
}

func BenchmarkLearnOne(b *testing.B) {
	for _, tc := range benchSizes {
		b.Run(tc.name, func(b *testing.B) {
			m, data := warmModel(b, tc.numeric, tc.categorical)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ex := &data[i%len(data)]
				i++
				if _, err := m.LearnOne(ex.fields, ex.y); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

var benchScore float64

func BenchmarkPredict(b *testing.B) {
	for _, tc := range benchSizes {
		b.Run(tc.name, func(b *testing.B) {
			m, data := warmModel(b, tc.numeric, tc.categorical)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				benchScore = m.Predict(data[i%len(data)].fields)
				i++
			}
		})
	}
}
