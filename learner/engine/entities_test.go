package engine

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// entityConfig is a model of payments keyed by user with windows, lags and
// a past-label target, holding at most bound histories in memory.
func entityConfig(bound int, ttl time.Duration) Config {
	return Config{Models: []learner.ModelConfig{{Name: "m", Topic: "events", Features: features.Config{
		Key: "user", MaxEntitiesInMemory: bound, EntityTTL: ttl,
		Windows: []features.WindowConfig{
			{Field: "amount", Size: 5, Aggs: []string{"mean", "max", "ewma"}},
			{Field: "amount", Duration: time.Minute, Aggs: []string{"count", "sum"}},
		},
		Lags:    []features.LagConfig{{Field: "amount", Lags: []int{1}, Diff: true}},
		Targets: []features.TargetConfig{{Size: 3}},
	}}}}
}

func payment(user int, amount float64) []features.Field {
	return []features.Field{strField("user", fmt.Sprintf("user-%d", user)), numField("amount", amount)}
}

// TestBoundedHistoriesLearnWhatUnboundedOnesDo runs the same 6,000
// payments of 1,500 users (a hot tenth makes half of them) through an
// engine that holds at most 50 histories in memory after each checkpoint
// and one that holds all, on real Pebble stores. After every checkpoint the
// bounded one holds at most 50 (eddy_history_entities); at the end both
// learned the same model bit for bit, every user's history derives the same
// features, and the served snapshots score every user the same, although
// most of the bounded engine's users are only on disk (the Predict of an
// entity only stored derives what training would).
func TestBoundedHistoriesLearnWhatUnboundedOnesDo(t *testing.T) {
	const bound, users, events, every = 50, 1500, 6000, 200
	clock := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	type run struct {
		e   *Engine
		rec *snapshotRecorder
	}
	var runs [2]run
	for i, b := range []int{bound, -1} {
		store, _ := openTestStore(t, t.TempDir())
		rec := &snapshotRecorder{}
		e, reg := newTestEngine(t, store, entityConfig(b, 0), rec)
		e.now = func() time.Time { return clock }
		runs[i] = run{e, rec}
		if i == 0 {
			defer func() {
				labels := map[string]string{"model": "m"}
				t.Logf("bounded: %v hits, %v misses, %v unloaded, %v bytes estimated",
					metricValue(t, reg, "eddy_history_cache_hits_total", labels), metricValue(t, reg, "eddy_history_cache_misses_total", labels),
					metricValue(t, reg, "eddy_history_unloaded_total", labels), metricValue(t, reg, "eddy_history_memory_bytes", labels))
				if metricValue(t, reg, "eddy_history_unloaded_total", labels) == 0 || metricValue(t, reg, "eddy_history_cache_misses_total", labels) == 0 {
					t.Error("the bounded engine never unloaded or read an entity: the test exercised nothing")
				}
			}()
		}
	}
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range events {
		user := rng.IntN(users)
		if i%2 == 0 {
			user = rng.IntN(users / 10)
		}
		clock = clock.Add(time.Second)
		ex := &Example{Offset: int64(i), Time: clock, Fields: payment(user, math.Round(rng.ExpFloat64()*50)), HasLabel: i%4 != 0, Label: float64(user % 2)}
		for _, r := range runs {
			if err := r.e.Process("events", ex); err != nil {
				t.Fatal(err)
			}
		}
		if i%every == every-1 {
			for _, r := range runs {
				checkpoint(t, r.e, eventsOffset(0, int64(i+1)))
			}
			if n := runs[0].e.states[0].hist.Entities(); n > bound {
				t.Fatalf("after event %d: %d histories in memory, bound %d", i, n, bound)
			}
		}
	}
	bounded, all := runs[0].e.states[0], runs[1].e.states[0]
	if a, b := bounded.model.AppendState(nil), all.model.AppendState(nil); string(a) != string(b) {
		t.Fatal("the bounded engine's model differs from the unbounded one's")
	}
	servedB, servedA := runs[0].rec.take(), runs[1].rec.take()
	if len(servedB) == 0 || len(servedB) != len(servedA) {
		t.Fatalf("%d and %d snapshots published", len(servedB), len(servedA))
	}
	snapB, snapA := servedB[len(servedB)-1], servedA[len(servedA)-1]
	onDisk := 0
	for user := range users {
		key := []byte(fmt.Sprintf("user-%d", user))
		if !bounded.hist.Holds(key) {
			onDisk++
		}
		got, err := bounded.hist.Derive(key, clock, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		want, err := all.hist.Derive(key, clock, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("user %d derives %v bounded (in memory: %v), %v unbounded", user, got, bounded.hist.Holds(key), want)
		}
		probe := payment(user, 120)
		p, _, err := snapB.Score(nil, probe)
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := snapA.Score(nil, probe)
		if err != nil {
			t.Fatal(err)
		}
		if math.Float64bits(p) != math.Float64bits(q) {
			t.Fatalf("user %d: Predict scores %v bounded (in memory: %v), %v unbounded", user, p, bounded.hist.Holds(key), q)
		}
	}
	if onDisk < users-bound {
		t.Errorf("only %d of %d users were only on disk", onDisk, users)
	}
}

// TestARestartReadsNoHistoryUntilItsEntityComes: an engine reopened on a
// store of 3,000 entities holds none in memory and has read none; the next
// event of one reads that one, and derives what its stored history says.
func TestARestartReadsNoHistoryUntilItsEntityComes(t *testing.T) {
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	e, _ := newTestEngine(t, store, entityConfig(0, 0), nil)
	for i := range 3000 {
		if err := e.Process("events", &Example{Fields: payment(i, float64(i)), Label: 1, HasLabel: true}); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint(t, e, eventsOffset(0, 3000))
	closeStore()
	reopened, _ := openTestStore(t, dir)
	e2, reg := newTestEngine(t, reopened, entityConfig(0, 0), nil)
	h := e2.states[0].hist
	if n, c := h.Entities(), h.Cache(); n != 0 || c.Misses != 0 {
		t.Fatalf("after the restart: %d histories in memory, %d read; want none before an event needs one", n, c.Misses)
	}
	if err := e2.Process("events", &Example{Fields: payment(1234, 5), Label: 1, HasLabel: true}); err != nil {
		t.Fatal(err)
	}
	got, err := h.Derive([]byte("user-1234"), time.Time{}, []features.Field{numField("amount", 5)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) == "[]" || h.Entities() != 1 {
		t.Fatalf("after one event: %d in memory, derives %v", h.Entities(), got)
	}
	for _, f := range got {
		if string(f.Name) == "amount_w5_max" && f.Num != 1234 {
			t.Errorf("amount_w5_max = %v, want 1234 (the stored event; 5 is this one's)", f.Num)
		}
	}
	checkpoint(t, e2, eventsOffset(0, 3001))
	if m := metricValue(t, reg, "eddy_history_cache_misses_total", map[string]string{"model": "m"}); m != 1 {
		t.Errorf("eddy_history_cache_misses_total = %v, want 1: one store read", m)
	}
}

// TestIdleEntitiesOnlyStoredAreSweptForTheirTTL: entities that left memory
// (a bound of 10) or were never read back after a restart are deleted from
// the store once idle for entity_ttl, as the ones in memory are; an entity
// with a recent event stays.
func TestIdleEntitiesOnlyStoredAreSweptForTheirTTL(t *testing.T) {
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	clock := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	cfg := entityConfig(10, time.Hour)
	e, _ := newTestEngine(t, store, cfg, nil)
	e.now = func() time.Time { return clock }
	for i := range 500 {
		if err := e.Process("events", &Example{Fields: payment(i, 1), Label: 1, HasLabel: true}); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint(t, e, eventsOffset(0, 500))
	closeStore()
	reopened, _ := openTestStore(t, dir)
	e2, reg := newTestEngine(t, reopened, cfg, nil)
	e2.now = func() time.Time { return clock }
	clock = clock.Add(2 * time.Hour)
	if err := e2.Process("events", &Example{Fields: payment(7, 1), Label: 1, HasLabel: true}); err != nil {
		t.Fatal(err)
	}
	checkpoint(t, e2, eventsOffset(0, 501))
	stored := 0
	if err := reopened.Scan(historyKey("m", nil), func(_, _ []byte) error { stored++; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, reg, "eddy_history_evicted_total", map[string]string{"model": "m"}); stored != 1 || got != 499 {
		t.Errorf("after the TTL: %d histories stored, %v evicted; want 1 (user-7, just seen) and 499", stored, got)
	}
}
