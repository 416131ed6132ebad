package features

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// derivedOf returns the derived features of key's next event at, by name.
func derivedOf(h *History, key string, at time.Time) map[string]float64 {
	out := map[string]float64{}
	for _, f := range derive(h, []byte(key), at, nil, nil) {
		out[string(f.Name)] = f.Num
	}
	return out
}

// TestWindowAggregatesStayExactOnLargeValues feeds a long stream of values
// around 1e12 (epoch milliseconds, amounts in micro-units) that differ by
// small integers, through a count window and a time window. Their sums are
// exact in float64, and so must be the window's count, sum, mean, variance
// and standard deviation, at every event, however long the stream:
// E[x²]−E[x]² loses every digit of a variance of 2/3 next to squares of
// 1e24.
func TestWindowAggregatesStayExactOnLargeValues(t *testing.T) {
	aggs := []string{"count", "sum", "mean", "var", "std"}
	cfg := Config{Windows: []WindowConfig{
		{Field: "x", Size: 3, Aggs: aggs},
		{Field: "x", Duration: 3 * time.Second, Aggs: aggs},
	}}
	h := NewHistory(cfg)
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	h.SetClock(func() time.Time { return base.Add(100 * time.Hour) })
	for i := range 100_000 {
		at := base.Add(time.Duration(i) * time.Second)
		if i >= 3 {
			got := derivedOf(h, "k", at)
			// The window holds 1e12+a, 1e12+b, 1e12+c with {a,b,c} = {0,1,2}.
			want := map[string]float64{"count": 3, "sum": 3e12 + 3, "mean": 1e12 + 1, "var": 2.0 / 3, "std": math.Sqrt(2.0 / 3)}
			for _, prefix := range []string{"x_w3_", "x_t3s_"} {
				for agg, w := range want {
					if g := got[prefix+agg]; g != w && math.Abs(g-w) > 1e-12*math.Abs(w) {
						t.Fatalf("event %d: %s%s = %v, want %v", i, prefix, agg, g, w)
					}
				}
			}
		}
		h.Observe([]byte("k"), at, []Field{num("x", 1e12+float64(i%3))}, 0, false)
	}
}

// TestAWindowSumCancelsLargeValuesExactly puts 1e17, 1 and −1e17 in one
// window: the sum is 1 and the mean 1/3, which plain left-to-right addition
// (1e17 + 1 is 1e17) gets wrong as 0.
func TestAWindowSumCancelsLargeValuesExactly(t *testing.T) {
	cfg := Config{Windows: []WindowConfig{
		{Field: "x", Size: 3, Aggs: []string{"sum", "mean"}},
		{Field: "x", Duration: time.Minute, Aggs: []string{"sum", "mean"}},
	}}
	h := NewHistory(cfg)
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	h.SetClock(func() time.Time { return base.Add(time.Hour) })
	for i, x := range []float64{-1e17, 1, 1e17} {
		h.Observe([]byte("k"), base.Add(time.Duration(i)*time.Second), []Field{num("x", x)}, 0, false)
	}
	got := derivedOf(h, "k", base.Add(10*time.Second))
	for name, want := range map[string]float64{"x_w3_sum": 1, "x_w3_mean": 1.0 / 3, "x_t1m0s_sum": 1, "x_t1m0s_mean": 1.0 / 3} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
}

// TestAFarFutureEventDoesNotMoveTheWatermark sends one event stamped a year
// ahead of the processing clock (a producer's clock or unit bug): it is
// counted as a future event and enters no time window, and the events that
// follow, on time, are neither late nor missing from their windows.
func TestAFarFutureEventDoesNotMoveTheWatermark(t *testing.T) {
	for _, tc := range []struct {
		name      string
		maxFuture time.Duration
		ahead     time.Duration // of the bad event, beyond now
	}{
		{"a year ahead, default bound", 0, 365 * 24 * time.Hour},
		{"just beyond a custom bound", 5 * time.Minute, 5*time.Minute + time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Windows: []WindowConfig{{Field: "x", Duration: time.Minute, Aggs: []string{"count", "sum"}}}, MaxFuture: tc.maxFuture}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			h := NewHistory(cfg)
			now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
			h.SetClock(func() time.Time { return now })
			h.Observe([]byte("k"), now, []Field{num("x", 1)}, 0, false)
			h.Observe([]byte("k"), now.Add(tc.ahead), []Field{num("x", 1000)}, 0, false)
			for i := 1; i <= 3; i++ {
				now = now.Add(time.Second)
				h.Observe([]byte("k"), now, []Field{num("x", float64(i+1))}, 0, false)
			}
			if h.Late() != 0 || h.Future() != 1 {
				t.Errorf("late %d, future %d; want 0 late and 1 future event", h.Late(), h.Future())
			}
			got := derivedOf(h, "k", now.Add(time.Second))
			if got["x_t1m0s_count"] != 4 || got["x_t1m0s_sum"] != 1+2+3+4 {
				t.Errorf("window after the future event: %v, want the 4 on-time events (sum 10)", got)
			}
		})
	}
}

func TestAnEventWithinTheFutureBoundEntersItsWindow(t *testing.T) {
	h := NewHistory(Config{Windows: []WindowConfig{{Field: "x", Duration: time.Hour, Aggs: []string{"count"}}}})
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	h.SetClock(func() time.Time { return now })
	ahead := now.Add(DefaultMaxFuture) // clocks a little ahead are normal
	h.Observe([]byte("k"), ahead, []Field{num("x", 1)}, 0, false)
	if got := derivedOf(h, "k", ahead.Add(time.Second)); got["x_t1h0m0s_count"] != 1 || h.Future() != 0 {
		t.Errorf("an event exactly max_future ahead: window %v, future %d; want it counted in its window", got, h.Future())
	}
}

func TestANegativeMaxFutureIsInvalid(t *testing.T) {
	cfg := Config{Windows: []WindowConfig{{Field: "x", Duration: time.Minute}}, MaxFuture: -time.Second}
	if err := cfg.Validate(); err == nil {
		t.Fatal("max_future -1s validated")
	}
}

// TestConcurrentTakeDirtyCallsHandOutEachChangeOnce has two goroutines
// take the changed entities at once (a checkpoint and, say, a replica
// shipping state) while predictions read the history: every changed entity
// goes to exactly one of them.
func TestConcurrentTakeDirtyCallsHandOutEachChangeOnce(t *testing.T) {
	cfg := Config{Lags: []LagConfig{{Field: "x", Lags: []int{1}}}}
	h := NewHistory(cfg)
	const keys = 20_000
	for i := range keys {
		h.Observe(fmt.Appendf(nil, "user-%d", i), time.Time{}, []Field{num("x", float64(i))}, 0, false)
	}
	taken := make([]map[string]int, 2)
	done := make(chan error, len(taken))
	stop := make(chan struct{})
	go func() { // a reader, as Predict is
		for {
			select {
			case <-stop:
				return
			default:
				derive(h, []byte("user-7"), time.Time{}, nil, nil)
			}
		}
	}()
	for g := range taken {
		taken[g] = map[string]int{}
		go func() {
			done <- h.TakeDirty(func(key, _ []byte) error { taken[g][string(key)]++; return nil })
		}()
	}
	for range taken {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	for i := range keys {
		key := fmt.Sprintf("user-%d", i)
		if n := taken[0][key] + taken[1][key]; n != 1 {
			t.Fatalf("entity %s was handed out %d times, want once", key, n)
		}
	}
	if err := h.TakeDirty(func(key, _ []byte) error { return fmt.Errorf("entity %s handed out again", key) }); err != nil {
		t.Fatal(err)
	}
}

// TestTakeDirtyKeepsChangesItFailedToStore: a failed checkpoint must leave
// every change to be taken by the next one.
func TestTakeDirtyKeepsChangesItFailedToStore(t *testing.T) {
	h := NewHistory(Config{Lags: []LagConfig{{Field: "x", Lags: []int{1}}}})
	for _, key := range []string{"a", "b", "c"} {
		h.Observe([]byte(key), time.Time{}, []Field{num("x", 1)}, 0, false)
	}
	calls := 0
	if err := h.TakeDirty(func(key, _ []byte) error {
		if calls++; calls == 2 {
			return fmt.Errorf("disk full")
		}
		return nil
	}); err == nil {
		t.Fatal("want the store's error")
	}
	got := map[string]bool{}
	if err := h.TakeDirty(func(key, _ []byte) error { got[string(key)] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Errorf("after a failed TakeDirty the next one stored %v, want a, b and c", got)
	}
}

// TestWriteChangesForgetsNothingUntilApplied: a checkpoint hands out the
// changes and the evictions due without changing the History; if it fails,
// the next one hands out the same (and what changed since), and only
// ApplyChanges forgets them and evicts.
func TestWriteChangesForgetsNothingUntilApplied(t *testing.T) {
	now := time.Unix(1000, 0)
	h := NewHistory(Config{Lags: []LagConfig{{Field: "x", Lags: []int{1}}}, EntityTTL: time.Minute})
	h.SetClock(func() time.Time { return now })
	h.Observe([]byte("idle"), time.Time{}, []Field{num("x", 1)}, 0, false)
	now = now.Add(2 * time.Minute)
	h.Observe([]byte("busy"), time.Time{}, []Field{num("x", 2)}, 0, false)
	write := func() (HistoryChanges, map[string]bool, []string) {
		t.Helper()
		set, del := map[string]bool{}, []string(nil)
		c, err := h.WriteChanges(func(key, _ []byte) error { set[string(key)] = true; return nil },
			func(key []byte) error { del = append(del, string(key)); return nil })
		if err != nil {
			t.Fatal(err)
		}
		return c, set, del
	}
	for attempt := range 2 { // the first checkpoint fails to commit
		c, set, del := write()
		if len(set) != 2 || !set["idle"] || !set["busy"] || !slices.Equal(del, []string{"idle"}) || c.Evicted() != 1 {
			t.Fatalf("attempt %d handed out sets %v and deletions %v, want both entities set and idle deleted", attempt, set, del)
		}
		if h.Entities() != 2 {
			t.Fatalf("attempt %d: %d entities before the changes are applied, want 2", attempt, h.Entities())
		}
	}
	c, _, _ := write()
	h.ApplyChanges(c)
	if h.Entities() != 1 || len(derivedOf(h, "idle", now)) != 0 {
		t.Fatalf("after ApplyChanges %d entities, idle derives %v; want busy alone", h.Entities(), derivedOf(h, "idle", now))
	}
	if _, set, del := write(); len(set) != 0 || len(del) != 0 {
		t.Fatalf("after ApplyChanges the next checkpoint got sets %v and deletions %v, want none", set, del)
	}
}

// TestAFarFutureWatermarkStoredEarlierIsForgotten loads an entity whose
// stored watermark is a year ahead (written before event times were
// bounded, or under a clock that was wrong): its next on-time events are
// not late and enter their windows, and the far-future value is gone. (What
// that watermark already pushed out of the buffers cannot come back.)
func TestAFarFutureWatermarkStoredEarlierIsForgotten(t *testing.T) {
	cfg := Config{Windows: []WindowConfig{{Field: "x", Duration: time.Minute, Aggs: []string{"count", "sum"}}}}
	now := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)
	year := 365 * 24 * time.Hour
	before := NewHistory(cfg)
	before.SetClock(func() time.Time { return now.Add(2 * year) })
	before.Observe([]byte("k"), now, []Field{num("x", 1)}, 0, false)
	before.Observe([]byte("k"), now.Add(year), []Field{num("x", 1000)}, 0, false)
	stored := map[string][]byte{}
	if err := before.TakeDirty(func(k, v []byte) error { stored[string(k)] = append([]byte(nil), v...); return nil }); err != nil {
		t.Fatal(err)
	}

	h := NewHistory(cfg)
	h.SetClock(func() time.Time { return now.Add(time.Second) })
	if err := h.Load([]byte("k"), stored["k"]); err != nil {
		t.Fatal(err)
	}
	h.Observe([]byte("k"), now.Add(time.Second), []Field{num("x", 2)}, 0, false)
	got := derivedOf(h, "k", now.Add(2*time.Second))
	if h.Late() != 0 || got["x_t1m0s_count"] != 1 || got["x_t1m0s_sum"] != 2 {
		t.Errorf("late %d, window %v; want no late event and the on-time event alone (sum 2)", h.Late(), got)
	}
}
