package learner

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/eddyhq/eddy/features"
)

func testModelConfig(name string, task Task) ModelConfig {
	cfg := ModelConfig{Name: name, Task: task}
	cfg.EnsureDefaults()
	return cfg
}

func learnAll(t testing.TB, m *Model, data []example) {
	t.Helper()
	for i, ex := range data {
		if _, err := m.LearnOne(ex.Fields, ex.Y); err != nil {
			t.Fatalf("example %d: %v", i, err)
		}
	}
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
			data := m.AppendState(nil)
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
	state := m.AppendState(nil)
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
	f.Add(m.AppendState(nil))
	learnAll(f, m, paymentEvents(3, 50))
	f.Add(m.AppendState(nil))
	probe := paymentEvents(4, 1)[0]
	f.Fuzz(func(t *testing.T, data []byte) {
		got, _, err := decodeState(cfg, window, data)
		if err != nil {
			return
		}
		got.Predict(nil, probe.Fields)
		_, _ = got.LearnOne(probe.Fields, probe.Y)
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
				if _, err := m.LearnOne(ex.Fields, ex.Y); err != nil {
					t.Fatal(err)
				}
			})
			predict := testing.AllocsPerRun(200, func() {
				m.Predict(nil, data[i%len(data)].Fields)
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
				if _, err := m.LearnOne(ex.Fields, ex.Y); err != nil {
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
				benchScore = m.Predict(nil, data[i%len(data)].Fields)
				i++
			}
		})
	}
}
