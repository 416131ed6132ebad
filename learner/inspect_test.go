package learner

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

// shopEvents is a stream whose label is decided by a few categories and
// one interaction: country C3 and shop S7 raise it, country C5 lowers it,
// and shop S11 in country C2 raises it a lot; amount is noise.
func shopEvents(n int, seed uint64) ([][]features.Field, []float64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var events [][]features.Field
	var labels []float64
	for range n {
		c, s := rng.IntN(8), rng.IntN(40)
		logit := -0.5
		switch c {
		case 3:
			logit += 2
		case 5:
			logit -= 2
		}
		if s == 7 {
			logit += 1.5
		}
		if c == 2 && s == 11 {
			logit += 4
		}
		y := 0.0
		if rng.Float64() < 1/(1+expNeg(logit)) {
			y = 1
		}
		events = append(events, []features.Field{
			{Name: []byte("country"), Kind: features.String, Str: fmt.Appendf(nil, "C%d", c)},
			{Name: []byte("shop"), Kind: features.String, Str: fmt.Appendf(nil, "S%d", s)},
			{Name: []byte("amount"), Kind: features.Number, Num: rng.Float64() * 100},
		})
		labels = append(labels, y)
	}
	return events, labels
}

func expNeg(x float64) float64 { return math.Exp(-x) }

// TestInspectNamesTheLargestWeights learns shopEvents with 2^18 hashed
// weights and a country × shop interaction: Inspect lists the top 20
// weights, every one with its readable name (categories and interactions),
// the strongest signals among them, and the names survive the model's
// state round trip.
func TestInspectNamesTheLargestWeights(t *testing.T) {
	mc := ModelConfig{Name: "shops", Task: Binary, Optimizer: OptimizerConfig{Kind: AdaGrad}, Features: features.Config{HashBits: 18,
		Namespaces: map[string][]string{"c": {"country"}, "s": {"shop"}}, Interactions: [][2]string{{"c", "s"}}}}
	m, err := NewModel(mc, 0)
	if err != nil {
		t.Fatal(err)
	}
	events, labels := shopEvents(40000, 9)
	for i, f := range events {
		if _, err := m.LearnEvent(nil, time.Time{}, f, labels[i]); err != nil {
			t.Fatal(err)
		}
	}
	in := m.Inspect(20)
	if len(in.Top) != 20 || in.NonZeroHashed < 300 {
		t.Fatalf("%d top weights, %d non-zero hashed; want 20 of more than 300 (8 countries, 40 shops, 320 pairs)", len(in.Top), in.NonZeroHashed)
	}
	var lines []string
	names := map[string]float64{}
	for _, w := range in.Top {
		lines = append(lines, fmt.Sprintf("%s (%s) %.3f", w.Name, w.Kind, w.Weight))
		names[w.Name] = w.Weight
		if w.Kind != "category" && w.Kind != "interaction" && w.Kind != "number" {
			t.Errorf("weight at %d has no readable name: %+v", w.Index, w)
		}
	}
	t.Logf("top 20 of %d non-zero weights (%d hashed, %d bucket names):\n  %s", in.NonZero, in.NonZeroHashed, in.BucketNames, strings.Join(lines, "\n  "))
	if names["country=C3"] <= 0 || names["country=C5"] >= 0 || names["country=C2 × shop=S11"] <= 0 {
		t.Errorf("the strongest signals are missing or of the wrong sign: C3 %v, C5 %v, C2×S11 %v", names["country=C3"], names["country=C5"], names["country=C2 × shop=S11"])
	}
	if len(in.Numeric) != 1 || in.Numeric[0].Name != "amount" || in.Numeric[0].Count != 40000 {
		t.Errorf("numeric features %+v, want amount seen 40,000 times", in.Numeric)
	}

	state := m.AppendState(nil)
	r, _, err := DecodeModel(mc, 0, state)
	if err != nil {
		t.Fatal(err)
	}
	if again := r.Inspect(20); fmt.Sprint(again.Top) != fmt.Sprint(in.Top) || !bytes.Equal(r.AppendState(nil), state) {
		t.Errorf("the inspection or the state changed through a round trip")
	}
}

// TestBucketNamesStayWithinTheirLimit gives a dictionary of 64 names 2,000
// categories: it never holds more than 64 and keeps the names of the
// largest weights.
func TestBucketNamesStayWithinTheirLimit(t *testing.T) {
	mc := ModelConfig{Name: "m", Task: Binary, HashNames: 64}
	m, err := NewModel(mc, 0)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2, 3))
	for i := range 20000 {
		v := rng.IntN(2000)
		y := 0.0
		if v < 5 { // five strong categories, seen often
			y = 1
		}
		if i%4 == 0 {
			v = i % 5
			y = 1
		}
		f := []features.Field{{Name: []byte("id"), Kind: features.String, Str: fmt.Appendf(nil, "v%d", v)}}
		if _, err := m.LearnEvent(nil, time.Time{}, f, y); err != nil {
			t.Fatal(err)
		}
		if n := m.names.len(); n > 64 {
			t.Fatalf("event %d: %d names, limit 64", i, n)
		}
	}
	in := m.Inspect(5)
	for _, w := range in.Top {
		if w.Kind != "category" {
			t.Errorf("top weight %+v has no name", w)
		}
	}
	t.Logf("64 names for %d non-zero hashed weights; top 5: %v", in.NonZeroHashed, in.Top)
	off := mc
	off.HashNames = -1
	if m, _ := NewModel(off, 0); m.names != nil {
		t.Error("hash_names -1 keeps names")
	}
}

// TestNamingBucketsTracesFewEvents learns a stream of ever new categories
// (as ids are) once the dictionary is full: an event is transformed again
// with tracing only when the dictionary takes names (one event in 16) or
// compares hashes (one in 64), not on every event.
func TestNamingBucketsTracesFewEvents(t *testing.T) {
	m, err := NewModel(ModelConfig{Name: "m", Task: Binary, HashNames: 256}, 0)
	if err != nil {
		t.Fatal(err)
	}
	const events = 40000
	for i := range events {
		f := []features.Field{
			{Name: []byte("id"), Kind: features.String, Str: fmt.Appendf(nil, "u%d", i)},
			{Name: []byte("country"), Kind: features.String, Str: fmt.Appendf(nil, "c%d", i%30)},
		}
		if _, err := m.LearnEvent(nil, time.Time{}, f, float64(i%30%2)); err != nil {
			t.Fatal(err)
		}
	}
	if m.names.floor == 0 {
		t.Fatal("the dictionary never filled: the test does not reach the steady state")
	}
	if rate := float64(m.names.traced) / events; rate > 1.0/16+1.0/64+0.02 {
		t.Errorf("%d of %d events traced (%.3f); want at most about 1/16 + 1/64 = 0.078", m.names.traced, events, rate)
	} else {
		t.Logf("%d of %d events traced (%.3f)", m.names.traced, events, rate)
	}
}

// TestABucketTwoFeaturesShareIsMarked learns 40 categories into 4
// buckets: Inspect marks the buckets that hold more than one.
func TestABucketTwoFeaturesShareIsMarked(t *testing.T) {
	m, err := NewModel(ModelConfig{Name: "m", Task: Binary, Features: features.Config{HashBits: 2}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		f := []features.Field{{Name: []byte("c"), Kind: features.String, Str: fmt.Appendf(nil, "v%d", i%40)}}
		if _, err := m.LearnEvent(nil, time.Time{}, f, float64(i%40%2)); err != nil {
			t.Fatal(err)
		}
	}
	in := m.Inspect(4)
	for _, w := range in.Top {
		if !w.Shared {
			t.Errorf("bucket %d holds 10 categories but is not marked shared: %+v", w.Bucket, w)
		}
	}
}

func TestSelectSmallestFindsTheKSmallest(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	for trial := range 200 {
		n := 1 + rng.IntN(300)
		a := make([]rankedBucket, n)
		for i := range a {
			a[i] = rankedBucket{idx: i, w: float64(rng.IntN(20))} // many ties
		}
		want := slices.Clone(a)
		slices.SortFunc(want, func(x, y rankedBucket) int {
			if x.less(y) {
				return -1
			}
			return 1
		})
		k := 1 + rng.IntN(n)
		selectSmallest(a, k)
		got := slices.Clone(a[:k])
		slices.SortFunc(got, func(x, y rankedBucket) int {
			if x.less(y) {
				return -1
			}
			return 1
		})
		if !slices.Equal(got, want[:k]) {
			t.Fatalf("trial %d (n %d, k %d): %v, want %v", trial, n, k, got, want[:k])
		}
	}
}
