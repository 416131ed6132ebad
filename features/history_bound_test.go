package features

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// mapStore is a History's store as the engine's checkpoints keep it: what
// WriteChanges handed out, once "committed" by ApplyChanges.
type mapStore map[string][]byte

func (s mapStore) load(key []byte) ([]byte, bool, error) {
	v, ok := s[string(key)]
	return v, ok, nil
}

// checkpoint stores h's changes in s and applies them, as a committed
// checkpoint does; it returns how many entities left memory.
func (s mapStore) checkpoint(t *testing.T, h *History) int {
	t.Helper()
	c, err := h.WriteChanges(func(k, v []byte) error { s[string(k)] = slices.Clone(v); return nil },
		func(k []byte) error { delete(s, string(k)); return nil })
	if err != nil {
		t.Fatal(err)
	}
	return h.ApplyChanges(c)
}

func boundConfig(max int) Config {
	return Config{MaxEntitiesInMemory: max,
		Windows: []WindowConfig{{Field: "x", Size: 5, Aggs: []string{"mean", "std", "ewma"}}, {Field: "x", Duration: time.Minute, Aggs: []string{"count", "sum"}}},
		Lags:    []LagConfig{{Field: "x", Lags: []int{1, 3}, Diff: true}}, Targets: []TargetConfig{{Size: 4}}}
}

// TestABoundedHistoryDerivesWhatAnUnboundedOneDoes sends 20,000 events of
// 3,000 entities (a hot tenth gets half of them) through a History that
// holds at most 200 entities after each checkpoint and reads the rest from
// its store, and through one that holds all: every event derives bitwise
// the same features, memory stays within the bound plus the entities first
// seen between two checkpoints, and the hot entities are mostly hits.
func TestABoundedHistoryDerivesWhatAnUnboundedOneDoes(t *testing.T) {
	const bound, entities, events, every = 200, 3000, 20000, 100
	bounded, all := NewHistory(boundConfig(bound)), NewHistory(boundConfig(-1))
	store := mapStore{}
	bounded.SetLoader(store.load)
	clock := time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)
	for _, h := range []*History{bounded, all} {
		h.SetClock(func() time.Time { return clock })
	}
	rng := rand.New(rand.NewPCG(1, 2))
	unloaded, peak := 0, 0
	for i := range events {
		k := rng.IntN(entities)
		if i%2 == 0 {
			k = rng.IntN(entities / 10)
		}
		key := fmt.Appendf(nil, "user-%d", k)
		clock = clock.Add(time.Second)
		fields := []Field{{Name: []byte("x"), Kind: Number, Num: rng.NormFloat64()*10 + float64(k%7)}}
		if i%3 != 0 { // a third of the events come without their entity in memory: a Predict first
			if err := bounded.Fetch(key); err != nil {
				t.Fatal(err)
			}
		}
		got, err := bounded.Derive(key, clock, fields, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := derive(all, key, clock, fields, nil)
		if !sameFields(got, want) {
			t.Fatalf("event %d of %s: bounded derives %v, unbounded %v", i, key, got, want)
		}
		label, hasLabel := float64(i%2), i%5 != 0
		if err := bounded.Observe(key, clock, fields, label, hasLabel); err != nil {
			t.Fatal(err)
		}
		all.Observe(key, clock, fields, label, hasLabel)
		peak = max(peak, bounded.Entities())
		if i%every == every-1 {
			unloaded += store.checkpoint(t, bounded)
			if n := bounded.Entities(); n > bound {
				t.Fatalf("after checkpoint %d: %d entities in memory, bound %d", i/every, n, bound)
			}
		}
	}
	c := bounded.Cache()
	t.Logf("peak %d entities in memory (bound %d), %d unloaded, %d hits, %d misses, %d stored", peak, bound, unloaded, c.Hits, c.Misses, len(store))
	if peak > bound+every {
		t.Errorf("peak %d entities in memory, want at most the bound %d plus the %d events between checkpoints", peak, bound, every)
	}
	if unloaded == 0 || c.Unloaded != uint64(unloaded) || c.Misses == 0 {
		t.Errorf("%d unloaded (counted %d), %d misses: the bound was never exercised", unloaded, c.Unloaded, c.Misses)
	}
	// Every entity, wherever it is, derives what the unbounded one does.
	for k := range entities {
		key := fmt.Appendf(nil, "user-%d", k)
		got, err := bounded.Derive(key, clock, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := derive(all, key, clock, nil, nil); !sameFields(got, want) {
			t.Fatalf("%s at the end (in memory: %v): bounded %v, unbounded %v", key, bounded.Holds(key), got, want)
		}
	}
}

// TestTheLeastRecentlyUsedEntitiesLeaveMemoryFirst: an entity read by a
// prediction (Derive) between two checkpoints stays in memory while ones
// nobody asked for leave.
func TestTheLeastRecentlyUsedEntitiesLeaveMemoryFirst(t *testing.T) {
	h := NewHistory(Config{MaxEntitiesInMemory: 10, Lags: []LagConfig{{Field: "x", Lags: []int{1}}}})
	store := mapStore{}
	h.SetLoader(store.load)
	x := []Field{{Name: []byte("x"), Kind: Number, Num: 1}}
	for i := range 10 {
		h.Observe(fmt.Appendf(nil, "old-%d", i), time.Time{}, x, 0, false)
	}
	store.checkpoint(t, h) // all ten fit
	if _, err := h.Derive([]byte("old-3"), time.Time{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		h.Observe(fmt.Appendf(nil, "new-%d", i), time.Time{}, x, 0, false)
	}
	if n := store.checkpoint(t, h); n != 5 {
		t.Fatalf("%d entities left memory, want 5", n)
	}
	if !h.Holds([]byte("old-3")) {
		t.Error("old-3, read by a prediction since the last checkpoint, left memory")
	}
	for i := range 5 {
		if !h.Holds(fmt.Appendf(nil, "new-%d", i)) {
			t.Errorf("new-%d, just written, left memory", i)
		}
	}
	for _, key := range []string{"old-0", "old-4"} { // the oldest, after old-3's second chance
		if got := derive(h, []byte(key), time.Time{}, nil, nil); h.Holds([]byte(key)) || len(got) != 1 || got[0].Num != 1 {
			t.Errorf("%s (in memory: %v) derives %v from the store, want x_lag1 = 1", key, h.Holds([]byte(key)), got)
		}
	}
}

// TestAStoreThatCannotBeReadFailsTheLookupAndChangesNothing: Derive and
// Observe of an entity not in memory return the store's error; the entity
// is not created empty in its place.
func TestAStoreThatCannotBeReadFailsTheLookupAndChangesNothing(t *testing.T) {
	h := NewHistory(Config{Lags: []LagConfig{{Field: "x", Lags: []int{1}}}})
	broken := errors.New("disk gone")
	h.SetLoader(func([]byte) ([]byte, bool, error) { return nil, false, broken })
	x := []Field{{Name: []byte("x"), Kind: Number, Num: 1}}
	if _, err := h.Derive([]byte("k"), time.Time{}, x, nil); !errors.Is(err, broken) {
		t.Errorf("Derive: %v, want the store's error", err)
	}
	if err := h.Observe([]byte("k"), time.Time{}, x, 0, false); !errors.Is(err, broken) {
		t.Errorf("Observe: %v, want the store's error", err)
	}
	if err := h.Fetch([]byte("k")); !errors.Is(err, broken) {
		t.Errorf("Fetch: %v, want the store's error", err)
	}
	if h.Entities() != 0 {
		t.Errorf("%d entities after failed reads, want 0", h.Entities())
	}
}

func sameFields(a, b []Field) bool {
	return slices.EqualFunc(a, b, func(x, y Field) bool {
		return string(x.Name) == string(y.Name) && math.Float64bits(x.Num) == math.Float64bits(y.Num)
	})
}

// TestPredictionsReadABoundedHistoryWhileItLearnsAndUnloads has four
// goroutines deriving the lag of random entities, most of them only in the
// store, while the writer observes and checkpoints with a bound of 20 (run
// under -race in CI): every read sees a value the entity really had, and
// never one it has not had yet.
func TestPredictionsReadABoundedHistoryWhileItLearnsAndUnloads(t *testing.T) {
	const entities, events = 500, 20000
	h := NewHistory(Config{MaxEntitiesInMemory: 20, Lags: []LagConfig{{Field: "x", Lags: []int{1}}}})
	var mu sync.Mutex // guards store: the "Pebble" of this test
	store := mapStore{}
	h.SetLoader(func(key []byte) ([]byte, bool, error) {
		mu.Lock()
		defer mu.Unlock()
		return store.load(key)
	})
	// Per entity the values 0, 1, 2, … are observed: started counts those
	// whose Observe began, written those whose Observe returned.
	var started, written [entities]atomic.Int64
	done := make(chan struct{})
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			rng := rand.New(rand.NewPCG(uint64(g), 1))
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				k := rng.IntN(entities)
				seen := written[k].Load()
				got, err := h.Derive(fmt.Appendf(nil, "e%d", k), time.Time{}, nil, nil)
				if err != nil {
					errs <- err
					return
				}
				if upto := started[k].Load(); len(got) == 1 && (got[0].Num < float64(seen-1) || got[0].Num >= float64(upto)) {
					errs <- fmt.Errorf("e%d: lag1 %v, but between %d and %d values were written", k, got[0].Num, seen, upto)
					return
				}
			}
		}()
	}
	rng := rand.New(rand.NewPCG(9, 9))
	for i := range events {
		k := rng.IntN(entities)
		n := written[k].Load()
		started[k].Add(1)
		if err := h.Observe(fmt.Appendf(nil, "e%d", k), time.Time{}, []Field{{Name: []byte("x"), Kind: Number, Num: float64(n)}}, 0, false); err != nil {
			t.Fatal(err)
		}
		written[k].Add(1)
		if i%50 == 49 {
			c, err := h.WriteChanges(func(k, v []byte) error { mu.Lock(); store[string(k)] = slices.Clone(v); mu.Unlock(); return nil },
				func([]byte) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			h.ApplyChanges(c)
		}
	}
	close(done)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if c := h.Cache(); c.Misses == 0 || c.Unloaded == 0 {
		t.Fatalf("cache %+v: the bound was never exercised", c)
	}
}
