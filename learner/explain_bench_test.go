package learner

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

// The costs of explanations and inspection, each against its baseline in
// the same run (the ratios are the figures; see BENCHMARKS.md):
//
//	go test ./learner -run '^$' -bench 'BenchmarkExplain|BenchmarkBucketNames' -benchtime 200000x -benchmem -count 3
//	go test ./learner -run '^$' -bench 'BenchmarkInspect' -benchtime 500x -benchmem -count 3

var (
	benchViolation  features.Violation
	benchTerms      int
	benchInspection Inspection
)

// BenchmarkExplain is a snapshot's Score against its Explain (every term,
// and the top 5) for the same events, for 8 numeric features and for 8
// numeric + 72 categorical ones.
func BenchmarkExplain(b *testing.B) {
	for _, tc := range benchSizes {
		m, data := warmModel(b, tc.numeric, tc.categorical)
		snap := m.Snapshot(1, time.Time{}, "bench")
		b.Run(tc.name+"/score", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				benchScore, _, _ = snap.Score(nil, data[i%len(data)].Fields)
				i++
			}
		})
		for _, top := range []int{0, 5} {
			b.Run(tc.name+"/explain top "+strconv.Itoa(top), func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					e, viol, _ := snap.Explain(nil, data[i%len(data)].Fields, ExplainOptions{TopK: top})
					i++
					benchScore, benchTerms = e.Score, len(e.Terms)
					if len(viol) > 0 {
						benchViolation = viol[0]
					}
				}
			})
		}
	}
}

// BenchmarkBucketNames is what keeping the names of hashed buckets
// (hash_names, on by default) costs per learned event, off (HashNames: -1)
// against the default in one run: LearnEvent, and the live model's
// Predict (its vector is traced too), for 8 numeric features (nothing to
// name: the traced vector is the whole cost), for 8 numeric + 72 categorical
// features (72 hashed entries per event, about 1,440 distinct names, all
// named during the warm-up: the steady state is one map lookup per hashed
// entry), for 8 numeric × 8 categorical crossed (namespaces num and cat,
// 72 hashed entries per event, about 1,440 distinct names), and for 8
// categorical features of 50,000 values each (up to 400,000 distinct
// names, far more than the 4,096 kept: the dictionary keeps evicting and
// naming). names is the dictionary's size at the end.
func BenchmarkBucketNames(b *testing.B) {
	var nums, cats []string
	for j := range 8 {
		nums, cats = append(nums, "n"+strconv.Itoa(j)), append(cats, "c"+strconv.Itoa(j))
	}
	crossed := features.Config{Namespaces: map[string][]string{"num": nums, "cat": cats}, Interactions: [][2]string{{"num", "cat"}}}
	cases := []struct {
		name string
		fc   features.Config
		data []example
	}{
		{"8 numeric", features.Config{}, wideEvents(5, 1024, 8, 0)},
		{"80 mostly categorical", features.Config{}, wideEvents(5, 1024, 8, 72)},
		{"interaction 8 numeric x 8 categorical", crossed, wideEvents(5, 1024, 8, 8)},
		{"8 categorical of 50,000 values", features.Config{HashBits: 18}, highCardinalityEvents(8, 50000, 1<<16)},
	}
	for _, tc := range cases {
		for _, mode := range []struct {
			name  string
			names int
		}{{"off", -1}, {"on", 0}} {
			cfg := testModelConfig("bench", Binary)
			cfg.Features = tc.fc
			cfg.HashNames = mode.names
			cfg.EnsureDefaults()
			m := newModel(cfg, DefaultRollingWindow)
			for range 2 { // every name seen, every buffer grown
				for _, ex := range tc.data {
					if _, err := m.LearnEvent(nil, time.Time{}, ex.Fields, ex.Y); err != nil {
						b.Fatal(err)
					}
				}
			}
			if (m.names != nil) != (mode.names == 0) {
				b.Fatalf("hash_names %s: names kept %v", mode.name, m.names != nil)
			}
			i := 0
			b.Run(tc.name+"/learn/names "+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					ex := &tc.data[i%len(tc.data)]
					i++
					if _, err := m.LearnEvent(nil, time.Time{}, ex.Fields, ex.Y); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(m.names.len()), "names")
			})
			b.Run(tc.name+"/predict/names "+mode.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					benchScore = m.Predict(nil, tc.data[i%len(tc.data)].Fields)
					i++
				}
			})
		}
	}
}

// highCardinalityEvents returns n events of categorical features whose
// values cycle through vocab values each, in a different order per
// feature, with a label from the first one's parity.
func highCardinalityEvents(categorical, vocab, n int) []example {
	out := make([]example, n)
	for i := range out {
		fields := make([]features.Field, 0, categorical)
		for c := range categorical {
			fields = append(fields, strField("c"+strconv.Itoa(c), "v"+strconv.Itoa((i*(c+7))%vocab)))
		}
		out[i] = example{Fields: fields, Y: float64(i % 2)}
	}
	return out
}

// BenchmarkInspect is Inspect (top 20) of a model of 2^18 hashed weights,
// most of them non-zero (16 categorical features of 50,000 values each,
// 800,000 distinct categories learned once), with the default 4,096 bucket
// names: a stored snapshot's, and the live model's (which first takes a
// snapshot of it, as Admin Inspect of a live model does).
func BenchmarkInspect(b *testing.B) {
	cfg := testModelConfig("bench", Binary)
	cfg.Features.HashBits = 18
	cfg.EnsureDefaults()
	m := newModel(cfg, DefaultRollingWindow)
	const values, cats = 50000, 16
	for i := range values {
		fields := make([]features.Field, 0, cats+1)
		for c := range cats {
			fields = append(fields, strField("c"+strconv.Itoa(c), "v"+strconv.Itoa((i*(2*c+1))%values)))
		}
		fields = append(fields, numField("x", float64(i%100)))
		if _, err := m.LearnEvent(nil, time.Time{}, fields, float64(i%2)); err != nil {
			b.Fatal(err)
		}
	}
	snap := m.Snapshot(1, time.Time{}, "bench")
	in := snap.Inspect(20)
	if hashed := 1 << 18; in.NonZeroHashed < hashed/2 || len(in.Top) != 20 {
		b.Fatalf("%d of %d hashed weights non-zero, %d top weights: want most non-zero and 20", in.NonZeroHashed, hashed, len(in.Top))
	}
	b.Logf("%d non-zero weights (%d hashed of %d), %d bucket names; the largest: %s %.4f",
		in.NonZero, in.NonZeroHashed, 1<<18, in.BucketNames, in.Top[0].Name, in.Top[0].Weight)
	for _, tc := range []struct {
		name    string
		inspect func() Inspection
	}{
		{"snapshot", func() Inspection { return snap.Inspect(20) }},
		{"live model", func() Inspection { return m.Inspect(20) }},
	} {
		b.Run(fmt.Sprintf("2^18 weights/%s/top 20", tc.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				benchInspection = tc.inspect()
			}
		})
	}
}
