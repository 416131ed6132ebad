package features_test

import (
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

// BenchmarkHistoryBytesPerEntity measures the memory an entity's history
// holds, by kind of derived feature: 100,000 distinct entities observe one
// event each (so every ring is allocated at its full depth), a checkpoint
// takes their changes, and the live heap grown is divided by the entities.
// It reports bytes/entity, and est-bytes/entity, what EstimatedBytes (the
// eddy_history_memory_bytes gauge) says; ns/op is the time to build them.
//
//	go test ./features -run '^$' -bench HistoryBytesPerEntity -benchtime 3x
func BenchmarkHistoryBytesPerEntity(b *testing.B) {
	const entities = 100_000
	cases := []struct {
		name string
		cfg  features.Config
	}{
		{"window size 10, mean", features.Config{Windows: []features.WindowConfig{{Field: "amount", Size: 10}}}},
		{"window size 100, five aggregates", features.Config{Windows: []features.WindowConfig{{Field: "amount", Size: 100, Aggs: []string{"mean", "std", "min", "max", "ewma"}}}}},
		{"time window 1h, mean", features.Config{Windows: []features.WindowConfig{{Field: "amount", Duration: time.Hour}}}},
		{"lags 1 2 3", features.Config{Lags: []features.LagConfig{{Field: "amount", Lags: []int{1, 2, 3}}}}},
		{"target size 10", features.Config{Targets: []features.TargetConfig{{Size: 10}}}},
	}
	fields := []features.Field{{Name: []byte("amount"), Kind: features.Number, Num: 42}}
	at := time.Unix(1_700_000_000, 0)
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			keys := make([][]byte, entities)
			for i := range keys {
				keys[i] = []byte("user-" + strconv.Itoa(1_000_000+i))
			}
			var perEntity, estimated float64
			for b.Loop() {
				runtime.GC()
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				h := features.NewHistory(tc.cfg)
				h.SetClock(func() time.Time { return at })
				for _, k := range keys {
					h.Observe(k, at, fields, 1, true)
				}
				changes, err := h.WriteChanges(func(key, value []byte) error { return nil }, func(key []byte) error { return nil })
				if err != nil {
					b.Fatal(err)
				}
				h.ApplyChanges(changes)
				runtime.GC()
				runtime.ReadMemStats(&after)
				if h.Entities() != entities {
					b.Fatalf("%d entities held, want %d", h.Entities(), entities)
				}
				perEntity = float64(after.HeapAlloc-before.HeapAlloc) / entities
				estimated = float64(h.EstimatedBytes()) / entities
				runtime.KeepAlive(h)
			}
			b.ReportMetric(perEntity, "bytes/entity")
			b.ReportMetric(estimated, "est-bytes/entity")
		})
	}
}
