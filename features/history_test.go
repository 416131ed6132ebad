package features

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// TestHistoryMatchesBruteForceRecomputation checks every derived feature
// against a direct computation over each entity's full list of previous
// values, on a random stream with several entities and missing fields.
func TestHistoryMatchesBruteForceRecomputation(t *testing.T) {
	cfg := Config{
		Windows: []WindowConfig{{Field: "x", Size: 5, Aggs: []string{"count", "sum", "mean", "std", "min", "max", "last", "ewma"}, Alpha: 0.4}},
		Lags:    []LagConfig{{Field: "x", Lags: []int{1, 2, 7}, Diff: true}},
		Targets: []TargetConfig{{Size: 1}, {Size: 4}},
	}
	h := NewHistory(cfg)
	rng := rand.New(rand.NewPCG(4, 4))
	past := map[string][]float64{}   // entity → previous x values
	labels := map[string][]float64{} // entity → previous labels
	ewma := map[string]float64{}
	for i := range 5000 {
		key := fmt.Sprintf("e%d", rng.IntN(7))
		var fields []Field
		x := math.Round(rng.NormFloat64()*100) / 10
		hasX := rng.IntN(10) > 0 // sometimes the field is absent
		if hasX {
			fields = append(fields, num("x", x))
		}
		got := map[string]float64{}
		for _, f := range derive(h, []byte(key), time.Time{}, fields, nil) {
			got[string(f.Name)] = f.Num
		}
		want := bruteForce(past[key], labels[key], ewma[key], x, hasX)
		if len(got) != len(want) {
			t.Fatalf("event %d (%s): derived %v, want %v", i, key, got, want)
		}
		for name, w := range want {
			if g, ok := got[name]; !ok || math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
				t.Fatalf("event %d (%s): %s = %v, want %v", i, key, name, got[name], w)
			}
		}
		label, hasLabel := float64(rng.IntN(2)), rng.IntN(3) > 0
		h.Observe([]byte(key), time.Time{}, fields, label, hasLabel)
		if hasX {
			if len(past[key]) == 0 {
				ewma[key] = x
			} else {
				ewma[key] = 0.4*x + 0.6*ewma[key]
			}
			past[key] = append(past[key], x)
		}
		if hasLabel {
			labels[key] = append(labels[key], label)
		}
	}
}

func bruteForce(past, labels []float64, ewma, x float64, hasX bool) map[string]float64 {
	out := map[string]float64{}
	if n := len(past); n > 0 {
		w := past[max(0, n-5):]
		var sum, sq float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range w {
			sum += v
			sq += v * v
			lo, hi = math.Min(lo, v), math.Max(hi, v)
		}
		mean := sum / float64(len(w))
		out["x_w5_count"], out["x_w5_sum"], out["x_w5_mean"] = float64(len(w)), sum, mean
		out["x_w5_std"] = math.Sqrt(math.Max(sq/float64(len(w))-mean*mean, 0))
		out["x_w5_min"], out["x_w5_max"], out["x_w5_last"], out["x_w5_ewma"] = lo, hi, w[len(w)-1], ewma
		for _, k := range []int{1, 2, 7} {
			if k <= n {
				out[fmt.Sprintf("x_lag%d", k)] = past[n-k]
				if hasX {
					out[fmt.Sprintf("x_diff%d", k)] = x - past[n-k]
				}
			}
		}
	}
	if n := len(labels); n > 0 {
		out["label_last"] = labels[n-1]
		w := labels[max(0, n-4):]
		s := 0.0
		for _, v := range w {
			s += v
		}
		out["label_mean4"] = s / float64(len(w))
	}
	return out
}

func TestHistoryRoundTripsThroughItsEncoding(t *testing.T) {
	cfg := Config{Windows: []WindowConfig{{Field: "x", Size: 3, Aggs: []string{"mean", "ewma"}}}, Targets: []TargetConfig{{Size: 2}}}
	h := NewHistory(cfg)
	for i := range 10 {
		h.Observe([]byte("k"), time.Time{}, []Field{num("x", float64(i))}, float64(i%2), true)
	}
	stored := map[string][]byte{}
	if err := h.TakeDirty(func(k, v []byte) error { stored[string(k)] = append([]byte(nil), v...); return nil }); err != nil {
		t.Fatal(err)
	}
	restored := NewHistory(cfg)
	for k, v := range stored {
		if err := restored.Load([]byte(k), v); err != nil {
			t.Fatal(err)
		}
	}
	want := derive(h, []byte("k"), time.Time{}, nil, nil)
	got := derive(restored, []byte("k"), time.Time{}, nil, nil)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored history derives %v, want %v", got, want)
	}
	for n := range stored["k"] {
		if err := NewHistory(cfg).Load([]byte("k"), stored["k"][:n]); err == nil {
			t.Fatalf("a history truncated to %d bytes loaded", n)
		}
	}
	other := NewHistory(Config{Windows: []WindowConfig{{Field: "x", Size: 9}}})
	if err := other.Load([]byte("k"), stored["k"]); err == nil {
		t.Fatal("a history stored under another window size loaded")
	}
}

func BenchmarkHistory(b *testing.B) {
	cfg := Config{
		Windows: []WindowConfig{{Field: "x", Size: 10, Aggs: []string{"mean", "std", "min", "max"}}},
		Lags:    []LagConfig{{Field: "x", Lags: []int{1}, Diff: true}},
		Targets: []TargetConfig{{Size: 1}, {Size: 10}},
	}
	for _, tc := range []struct {
		keys   int
		stored bool // backed by a store (every key in memory: the engine's path on a hit)
	}{{1, false}, {1_000_000, false}, {1_000_000, true}} {
		keys := tc.keys
		name := fmt.Sprintf("keys=%d", keys)
		if tc.stored {
			name += "/stored-hits"
		}
		b.Run(name, func(b *testing.B) {
			h := NewHistory(cfg)
			if tc.stored {
				h.SetLoader(func([]byte) ([]byte, bool, error) { return nil, false, nil })
			}
			names := make([][]byte, keys)
			for i := range names {
				names[i] = []byte(fmt.Sprintf("user-%d", i))
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			for i := range names {
				h.Observe(names[i], time.Time{}, []Field{num("x", 1)}, 1, true)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			perKey := float64(after.HeapAlloc-before.HeapAlloc) / float64(keys)
			fields := []Field{num("x", 2)}
			dst := make([]Field, 0, 16)
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				key := names[rng.IntN(keys)]
				if tc.stored {
					if err := h.Fetch(key); err != nil {
						b.Fatal(err)
					}
				}
				dst = derive(h, key, time.Time{}, fields, dst[:0])
				h.Observe(key, time.Time{}, fields, 0, true)
			}
			b.ReportMetric(perKey, "heap-bytes/key")
		})
	}
}

// TestTimeWindowsMatchBruteForceWithOutOfOrderEvents checks sliding and
// tumbling event-time windows against a direct computation, on a stream
// whose timestamps arrive out of order, some within the allowed lateness and
// some beyond it, under both late policies.
func TestTimeWindowsMatchBruteForceWithOutOfOrderEvents(t *testing.T) {
	const (
		lateness = 5 * time.Second
		span     = 30 * time.Second
		tumble   = 20 * time.Second
	)
	for _, policy := range []string{LateDrop, LateInclude} {
		t.Run(policy, func(t *testing.T) {
			cfg := Config{
				Windows: []WindowConfig{
					{Field: "x", Duration: span, Aggs: []string{"count", "sum", "mean", "std", "min", "max", "last"}},
					{Field: "x", Duration: tumble, Tumbling: true, Aggs: []string{"count", "sum"}},
				},
				AllowedLateness: lateness, LatePolicy: policy,
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			h := NewHistory(cfg)
			rng := rand.New(rand.NewPCG(6, 6))
			type obs struct {
				at int64
				x  float64
			}
			accepted := map[string][]obs{}
			watermark := map[string]int64{}
			base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixNano()
			// Processing happens after the stream's last event (about 22
			// minutes), whatever the machine's date: no event is in the future.
			h.SetClock(func() time.Time { return time.Unix(0, base).Add(time.Hour) })
			lateSeen := 0
			for i := range 4000 {
				key := fmt.Sprintf("e%d", rng.IntN(3))
				at := base + int64(i)*int64(time.Second)/3
				switch r := rng.IntN(20); {
				case r < 4: // within the lateness
					at -= rng.Int64N(int64(lateness))
				case r == 4: // well beyond it
					at -= int64(lateness) + rng.Int64N(int64(40*time.Second))
				}
				x := math.Round(rng.NormFloat64()*100) / 10
				fields := []Field{num("x", x)}
				isLate := watermark[key] != 0 && at < watermark[key]-int64(lateness)
				got := map[string]float64{}
				for _, f := range derive(h, []byte(key), time.Unix(0, at), fields, nil) {
					got[string(f.Name)] = f.Num
				}
				if !isLate { // a late event's own windows may reach beyond the kept horizon
					want := map[string]float64{}
					addWindow := func(prefix string, lo int64, aggs []string) {
						var xs []float64
						for _, o := range accepted[key] {
							if o.at >= lo && o.at < at {
								xs = append(xs, o.x)
							}
						}
						if len(xs) == 0 {
							return
						}
						var sum, sq float64
						lo2, hi2 := math.Inf(1), math.Inf(-1)
						for _, v := range xs {
							sum += v
							sq += v * v
							lo2, hi2 = math.Min(lo2, v), math.Max(hi2, v)
						}
						mean := sum / float64(len(xs))
						all := map[string]float64{"count": float64(len(xs)), "sum": sum, "mean": mean,
							"std": math.Sqrt(math.Max(sq/float64(len(xs))-mean*mean, 0)), "min": lo2, "max": hi2}
						for _, a := range aggs {
							want[prefix+a] = all[a]
						}
					}
					addWindow("x_t30s_", at-int64(span), []string{"count", "sum", "mean", "std", "min", "max"})
					addWindow("x_tt20s_", at-((at%int64(tumble))+int64(tumble))%int64(tumble), []string{"count", "sum"})
					delete(got, "x_t30s_last") // "last" depends on arrival order among equal times; checked below
					if len(got) != len(want) {
						t.Fatalf("event %d (%s at %d): derived %v, want %v", i, key, at, got, want)
					}
					for name, w := range want {
						if g := got[name]; math.Abs(g-w) > 1e-9*math.Max(1, math.Abs(w)) {
							t.Fatalf("event %d (%s): %s = %v, want %v", i, key, name, g, w)
						}
					}
				}
				h.Observe([]byte(key), time.Unix(0, at), fields, 0, false)
				if isLate {
					lateSeen++
				}
				if !isLate || policy == LateInclude {
					accepted[key] = append(accepted[key], obs{at, x})
					watermark[key] = max(watermark[key], at)
				}
			}
			if uint64(lateSeen) != h.Late() || lateSeen == 0 {
				t.Fatalf("late events: history counted %d, the stream had %d", h.Late(), lateSeen)
			}
			t.Logf("%s: %d late events of 4000", policy, lateSeen)
		})
	}
}

// TestEntityKeyNeverHandsOutTheEventsBytes reuses one scratch buffer for
// keys from the fallback and from a field, as the engine does event after
// event: the caller's fallback and fields must come out unchanged.
func TestEntityKeyNeverHandsOutTheEventsBytes(t *testing.T) {
	messageKey := []byte("AAAAAAAA")
	fields := []Field{cat("user", "bob"), num("id", 42)}
	var scratch []byte
	for _, step := range []struct{ keyField, want string }{
		{"", "AAAAAAAA"}, {"user", "bob"}, {"", "AAAAAAAA"}, {"id", "42"}, {"missing", "AAAAAAAA"}, {"user", "bob"},
	} {
		scratch = EntityKey(step.keyField, fields, messageKey, scratch)
		if string(scratch) != step.want {
			t.Fatalf("key field %q: key %q, want %q", step.keyField, scratch, step.want)
		}
		if string(messageKey) != "AAAAAAAA" || string(fields[0].Str) != "bob" {
			t.Fatalf("key field %q: the event changed: message key %q, user %q", step.keyField, messageKey, fields[0].Str)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { scratch = EntityKey("", fields, messageKey, scratch) }); allocs != 0 {
		t.Errorf("EntityKey allocates %v times once warm, want 0", allocs)
	}
}

// derive is Derive of a History without a Loader, which cannot fail.
func derive(h *History, key []byte, at time.Time, fields, dst []Field) []Field {
	out, err := h.Derive(key, at, fields, dst)
	if err != nil {
		panic(err) // no Loader: unreachable
	}
	return out
}
