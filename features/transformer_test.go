package features

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func num(name string, x float64) Field { return Field{Name: []byte(name), Kind: Number, Num: x} }
func cat(name, v string) Field         { return Field{Name: []byte(name), Kind: String, Str: []byte(v)} }
func boolean(name string, b bool) Field {
	f := Field{Name: []byte(name), Kind: Bool}
	if b {
		f.Num = 1
	}
	return f
}

func TestStandardScalerMatchesPopulationStatistics(t *testing.T) {
	tr := New(Config{})
	rng := rand.New(rand.NewPCG(1, 2))
	var xs []float64
	for range 1000 {
		x := rng.NormFloat64()*3 + 10
		xs = append(xs, x)
		if err := tr.Update([]Field{num("x", x)}); err != nil {
			t.Fatal(err)
		}
	}
	var mean, m2 float64
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	for _, x := range xs {
		m2 += (x - mean) * (x - mean)
	}
	variance := m2 / float64(len(xs))
	n, gotMean, gotVar, ok := tr.Stats("x")
	if !ok || n != 1000 || math.Abs(gotMean-mean) > 1e-9 || math.Abs(gotVar-variance) > 1e-9 {
		t.Fatalf("stats = (%v, %v, %v), want (1000, %v, %v)", n, gotMean, gotVar, mean, variance)
	}
	var v Vector
	tr.Transform([]Field{num("x", mean+2*math.Sqrt(variance))}, &v)
	if math.Abs(v.Dense[0]-2) > 1e-9 {
		t.Fatalf("scaled = %v, want 2 standard deviations", v.Dense[0])
	}
}

func TestConstantFeatureScalesToZero(t *testing.T) {
	tr := New(Config{})
	for range 5 {
		_ = tr.Update([]Field{num("c", 7)})
	}
	var v Vector
	tr.Transform([]Field{num("c", 7)}, &v)
	if v.Dense[0] != 0 {
		t.Fatalf("constant feature transformed to %v, want 0", v.Dense[0])
	}
}

func TestDotEqualsWeightsTimesTransform(t *testing.T) {
	tr := New(Config{HashBits: 8, MaxNumeric: 16, Ignore: []string{"id"}})
	fields := []Field{num("a", 1.5), num("b", -2), cat("country", "DE"), boolean("new", true), num("id", 99)}
	_ = tr.Update(fields)
	_ = tr.Update([]Field{num("a", 0.5), num("b", 4), boolean("new", false)})
	w := make([]float64, tr.Dim())
	for i := range w {
		w[i] = float64(i%7) - 3
	}
	var v Vector
	tr.Transform(fields, &v)
	want := 0.25
	for i, x := range v.Dense {
		want += w[i] * x
	}
	for i, idx := range v.Index {
		want += w[idx] * v.Value[i]
	}
	if got := tr.Dot(fields, w, 0.25); math.Abs(got-want) > 1e-12 {
		t.Fatalf("Dot = %v, want %v", got, want)
	}
	if tr.NumericSlots() != 3 {
		t.Fatalf("numeric slots = %v, want 3 (a, b, new; id ignored)", tr.NumericNames())
	}
	if len(v.Index) != 1 || v.Index[0] < 16 || v.Index[0] >= tr.Dim() {
		t.Fatalf("categorical index %v outside hashed space [16, %d)", v.Index, tr.Dim())
	}
}

func TestPredictionNeverChangesState(t *testing.T) {
	tr := New(Config{})
	_ = tr.Update([]Field{num("a", 1), num("a", 3)})
	before := tr.Clone()
	var v Vector
	tr.Transform([]Field{num("a", 100), num("unseen", 5)}, &v)
	_ = tr.Dot([]Field{num("a", 100), num("unseen", 5)}, []float64{1}, 0)
	if tr.NumericSlots() != before.NumericSlots() || tr.mean[0] != before.mean[0] || tr.count[0] != before.count[0] {
		t.Fatal("predicting changed the transformer's state")
	}
}

func TestTooManyNumericFeaturesIsAnError(t *testing.T) {
	tr := New(Config{MaxNumeric: 2})
	err := tr.Update([]Field{num("a", 1), num("b", 1), num("c", 1)})
	if err == nil {
		t.Fatal("third numeric feature accepted beyond max_numeric_features=2")
	}
}

func TestEncodingRoundTripsExactly(t *testing.T) {
	tr := New(Config{HashBits: 10, Ignore: []string{"x"}})
	_ = tr.Update([]Field{num("a", 1.25), num("b", math.Pi), boolean("c", true)})
	_ = tr.Update([]Field{num("a", -3), num("b", math.E)})
	data := tr.AppendBinary(nil)
	got, rest, err := DecodeTransformer(data)
	if err != nil || len(rest) != 0 {
		t.Fatalf("decode: %v (rest %d)", err, len(rest))
	}
	if got.Dim() != tr.Dim() || got.NumericSlots() != tr.NumericSlots() || !got.ignored([]byte("x")) {
		t.Fatal("decoded transformer has a different shape")
	}
	for i := range tr.names {
		if got.names[i] != tr.names[i] || got.mean[i] != tr.mean[i] || got.vars[i] != tr.vars[i] || got.count[i] != tr.count[i] {
			t.Fatalf("slot %d differs after round trip", i)
		}
	}
	if _, _, err := DecodeTransformer(data[:len(data)-3]); err == nil {
		t.Fatal("truncated encoding decoded without error")
	}
}

func benchFields(n int) []Field {
	fs := make([]Field, 0, n+2)
	for i := range n {
		fs = append(fs, num("f"+string(rune('a'+i%26))+string(rune('a'+i/26)), float64(i)))
	}
	return append(fs, cat("country", "DE"), boolean("new", true))
}

func BenchmarkTransform(b *testing.B) {
	for _, n := range []int{8, 80} {
		b.Run(sizeName(n), func(b *testing.B) {
			tr := New(Config{})
			fs := benchFields(n)
			_ = tr.Update(fs)
			var v Vector
			b.ReportAllocs()
			for b.Loop() {
				tr.Transform(fs, &v)
			}
		})
	}
}

func BenchmarkDot(b *testing.B) {
	for _, n := range []int{8, 80} {
		b.Run(sizeName(n), func(b *testing.B) {
			tr := New(Config{})
			fs := benchFields(n)
			_ = tr.Update(fs)
			w := make([]float64, tr.Dim())
			b.ReportAllocs()
			for b.Loop() {
				_ = tr.Dot(fs, w, 0)
			}
		})
	}
}

func sizeName(n int) string { return "features=" + strconv.Itoa(n) }
