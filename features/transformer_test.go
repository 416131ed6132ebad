package features

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"github.com/eddyhq/eddy/features/codec"
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
	if math.Abs(v.Value[0]-2) > 1e-9 {
		t.Fatalf("scaled = %v, want 2 standard deviations", v.Value[0])
	}
}

func TestConstantFeatureScalesToZero(t *testing.T) {
	tr := New(Config{})
	for range 5 {
		_ = tr.Update([]Field{num("c", 7)})
	}
	var v Vector
	tr.Transform([]Field{num("c", 7)}, &v)
	if v.Value[0] != 0 {
		t.Fatalf("constant feature transformed to %v, want 0", v.Value[0])
	}
}

func TestTransformPutsNumbersInSlotsAndCategoriesInTheHashedSpace(t *testing.T) {
	tr := New(Config{HashBits: 8, MaxNumeric: 16, Ignore: []string{"id"}})
	fields := []Field{num("a", 1.5), num("b", -2), cat("country", "DE"), boolean("new", true), num("id", 99)}
	_ = tr.Update(fields)
	_ = tr.Update([]Field{num("a", 0.5), num("b", 4), boolean("new", false)})
	var v Vector
	tr.Transform(fields, &v)
	if tr.NumericSlots() != 3 {
		t.Fatalf("numeric slots = %v, want 3 (a, b, new; id ignored)", tr.NumericNames())
	}
	if len(v.Index) != 4 {
		t.Fatalf("vector %v, want 4 entries (a, b, country=DE, new)", v.Index)
	}
	if v.Index[0] != 0 || v.Index[1] != 1 || v.Index[3] != 2 {
		t.Fatalf("numeric indices %v, want slots 0, 1 and 2", v.Index)
	}
	if v.Index[2] < 16 || v.Index[2] >= tr.Dim() || v.Value[2] != 1 {
		t.Fatalf("categorical entry (%d, %v) outside the hashed space [16, %d) or not 1", v.Index[2], v.Value[2], tr.Dim())
	}
	var again Vector
	tr.Clone().Transform(fields, &again)
	if !slices.Equal(v.Index, again.Index) || !slices.Equal(v.Value, again.Value) {
		t.Fatal("a clone transforms differently")
	}
}

func TestInteractionsCrossEveryFeatureOfTwoNamespaces(t *testing.T) {
	tr := New(Config{HashBits: 20, Namespaces: map[string][]string{"user": {"age", "country"}, "item": {"price", "category"}},
		Interactions: [][2]string{{"user", "item"}, {"item", "item"}}})
	fields := []Field{num("age", 30), cat("country", "DE"), num("price", 9.5), cat("category", "books"), num("other", 1)}
	_ = tr.Update(fields)
	_ = tr.Update([]Field{num("age", 40), num("price", 3.5), num("other", 2)})
	var v Vector
	tr.Transform(fields, &v)
	base := 5
	// user×item: 2×2 = 4; item×item: one unordered pair.
	if got := len(v.Index) - base; got != 5 {
		t.Fatalf("%d interaction entries, want 5 (4 user×item + 1 item×item)", got)
	}
	// age×price is the product of the two scaled values.
	if want := v.Value[0] * v.Value[2]; v.Value[base] != want {
		t.Fatalf("age×price = %v, want %v", v.Value[base], want)
	}
	seen := map[int]bool{}
	for _, idx := range v.Index[base:] {
		if idx < tr.Config().MaxNumeric || idx >= tr.Dim() || seen[idx] {
			t.Fatalf("interaction index %d outside the hashed space or repeated", idx)
		}
		seen[idx] = true
	}
}

func TestPredictionNeverChangesState(t *testing.T) {
	tr := New(Config{})
	_ = tr.Update([]Field{num("a", 1)})
	_ = tr.Update([]Field{num("a", 3)})
	before := tr.AppendState(nil)
	var v Vector
	tr.Transform([]Field{num("a", 100), num("unseen", 5), cat("c", "x")}, &v)
	if string(tr.AppendState(nil)) != string(before) {
		t.Fatal("transforming changed the transformer's state")
	}
}

func TestRollbackUndoesTheLastUpdate(t *testing.T) {
	tr := New(Config{Namespaces: map[string][]string{"n": {"b"}}})
	_ = tr.Update([]Field{num("a", 1)})
	before := tr.AppendState(nil)
	_ = tr.Update([]Field{num("a", 5), num("b", 2)})
	tr.Rollback()
	if string(tr.AppendState(nil)) != string(before) {
		t.Fatal("Rollback left a trace of the update")
	}
	if err := tr.Update([]Field{num("b", 2)}); err != nil || tr.NumericSlots() != 2 {
		t.Fatalf("after rollback b cannot be learned again: %v, %v", err, tr.NumericNames())
	}
}

func TestTooManyNumericFeaturesIsAnError(t *testing.T) {
	tr := New(Config{MaxNumeric: 2})
	err := tr.Update([]Field{num("a", 1), num("b", 1), num("c", 1)})
	if err == nil {
		t.Fatal("third numeric feature accepted beyond max_numeric_features=2")
	}
}

// TestAResizedTransformerKeepsEveryIndex gives a transformer with crosses
// more numeric slots, then fewer: every entry is the feature it was before
// at Reindex of its index, through an encoding round trip (version 3 once
// resized, version 2 before).
func TestAResizedTransformerKeepsEveryIndex(t *testing.T) {
	tr := New(Config{MaxNumeric: 16, HashBits: 12, Namespaces: map[string][]string{"user": {"age", "country"}, "item": {"price", "shop"}},
		Interactions: [][2]string{{"user", "item"}}})
	fields := []Field{num("age", 30), cat("country", "DE"), num("price", 9.5), cat("shop", "s1"), num("other", 1)}
	_ = tr.Update(fields)
	_ = tr.Update([]Field{num("age", 40), num("price", 3.5), num("other", 2)})
	var before Vector
	tr.Transform(fields, &before)
	if v := tr.AppendState(nil)[0]; v != 2 {
		t.Fatalf("a transformer never resized encodes version %d, want 2", v)
	}
	for _, max := range []int{1024, 3} {
		resized := tr.Clone()
		if err := resized.SetMaxNumeric(max); err != nil {
			t.Fatal(err)
		}
		data := resized.AppendState(nil)
		if data[0] != 3 {
			t.Fatalf("a resized transformer encodes version %d, want 3", data[0])
		}
		got, _, err := DecodeTransformer(data)
		if err != nil {
			t.Fatal(err)
		}
		var after Vector
		got.Transform(fields, &after)
		if len(after.Index) != len(before.Index) {
			t.Fatalf("max %d: %d entries, want %d", max, len(after.Index), len(before.Index))
		}
		for i, idx := range before.Index {
			if want := Reindex(idx, 16, max); after.Index[i] != want || after.Value[i] != before.Value[i] {
				t.Fatalf("max %d: entry %d at %d = %v, want %d = %v", max, i, after.Index[i], after.Value[i], want, before.Value[i])
			}
		}
	}
	if err := tr.SetMaxNumeric(2); err == nil {
		t.Fatal("SetMaxNumeric below the 3 slots in use succeeded")
	}
}

func TestEncodingRoundTripsExactly(t *testing.T) {
	tr := New(Config{HashBits: 10, Ignore: []string{"x"}})
	_ = tr.Update([]Field{num("a", 1.25), num("b", math.Pi), boolean("c", true)})
	_ = tr.Update([]Field{num("a", -3), num("b", math.E)})
	data := tr.AppendState(nil)
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

func sizeName(n int) string { return "features=" + strconv.Itoa(n) }

// encodeV1 writes the layout of encoding version 1, as eddy wrote it before
// namespaces, so that the compatibility test does not depend on old code.
func encodeV1(t *Transformer) []byte {
	dst := []byte{1}
	dst = codec.AppendString(dst, string(t.cfg.Scaler))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.HashBits))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.MaxNumeric))
	dst = appendStrings(dst, t.cfg.Ignore)
	dst = binary.AppendUvarint(dst, uint64(len(t.names)))
	for i, name := range t.names {
		dst = codec.AppendString(dst, name)
		for _, x := range []float64{t.count[i], t.mean[i], t.vars[i]} {
			dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
		}
	}
	return dst
}

func TestVersion1EncodingStillLoadsWithItsOwnHash(t *testing.T) {
	tr := New(Config{HashBits: 12})
	fields := []Field{num("a", 2), cat("country", "DE")}
	_ = tr.Update(fields)
	_ = tr.Update([]Field{num("a", 4)})
	old, rest, err := DecodeTransformer(encodeV1(tr))
	if err != nil || len(rest) != 0 {
		t.Fatalf("version 1 does not load: %v", err)
	}
	var v Vector
	old.Transform(fields, &v)
	want := tr.cfg.MaxNumeric + int(fnv1a([]byte("country"), []byte("DE"))&(1<<12-1))
	if v.Index[1] != want {
		t.Fatalf("a version 1 model hashes country=DE to %d, want FNV-1a's %d", v.Index[1], want)
	}
	if c, m, _, _ := old.Stats("a"); c != 2 || m != 3 {
		t.Fatalf("stats of a = (%v, %v), want (2, 3)", c, m)
	}
	// Written again, it keeps its hash: a round trip through version 2.
	again, _, err := DecodeTransformer(old.AppendState(nil))
	if err != nil {
		t.Fatal(err)
	}
	again.Transform(fields, &v)
	if v.Index[1] != want {
		t.Fatal("re-encoding a version 1 model changed its hash")
	}
}

func TestRetransformEqualsAFreshTransform(t *testing.T) {
	for _, cfg := range []Config{{}, {Interactions: [][2]string{{"n", "n"}}, Namespaces: map[string][]string{"n": {"a", "c"}}}} {
		tr := New(cfg)
		rng := rand.New(rand.NewPCG(9, 9))
		var v, fresh Vector
		for i := range 200 {
			fields := []Field{num("a", rng.NormFloat64()), cat("c", string(rune('a'+i%4)))}
			if i%50 == 0 {
				fields = append(fields, num("new"+strconv.Itoa(i), 1)) // a new slot now and then
			}
			tr.Transform(fields, &v)
			if err := tr.Update(fields); err != nil {
				t.Fatal(err)
			}
			tr.Retransform(fields, &v)
			tr.Transform(fields, &fresh)
			if !slices.Equal(v.Index, fresh.Index) || !slices.Equal(v.Value, fresh.Value) {
				t.Fatalf("example %d: Retransform %v %v, Transform %v %v", i, v.Index, v.Value, fresh.Index, fresh.Value)
			}
		}
	}
}
