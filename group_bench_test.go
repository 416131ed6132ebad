package eddy_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/stream"
)

// BenchmarkUnitStateToKafka measures what a handover or a periodic export
// costs: a unit's state read from Pebble (Engine.Export) and written to the
// state topic (StateLog.Write, chunked, acks=all) on the embedded broker,
// for a model with 2^18 hashed weights and for a windowed model with
// 100,000 entities. bytes/state is the exported size.
//
//	go test -run '^$' -bench UnitStateToKafka -benchtime 20x .
func BenchmarkUnitStateToKafka(b *testing.B) {
	cases := []struct {
		name  string
		model learner.ModelConfig
		event func(i int) *engine.Example
		n     int
	}{
		{"hashed 2^18 weights", learner.ModelConfig{Name: "m", Task: learner.Binary, Features: features.Config{HashBits: 18}}, func(i int) *engine.Example {
			fields := make([]features.Field, 0, 9)
			for c := range 8 {
				fields = append(fields, features.Field{Name: fmt.Appendf(nil, "c%d", c), Kind: features.String, Str: fmt.Appendf(nil, "v%d", (i*(c+7))%50000)})
			}
			fields = append(fields, features.Field{Name: []byte("x"), Kind: features.Number, Num: float64(i % 100)})
			return &engine.Example{Fields: fields, Label: float64(i % 2), HasLabel: true}
		}, 50000},
		{"100,000 entities", learner.ModelConfig{Name: "m", Task: learner.Binary, Features: features.Config{Key: "user",
			Windows: []features.WindowConfig{{Field: "x", Size: 5, Aggs: []string{"mean", "max"}}}, Lags: []features.LagConfig{{Field: "x", Lags: []int{1}}}}}, func(i int) *engine.Example {
			return &engine.Example{Fields: []features.Field{{Name: []byte("user"), Kind: features.String, Str: fmt.Appendf(nil, "u%d", i%100000)},
				{Name: []byte("x"), Kind: features.Number, Num: float64(i % 97)}}, Label: float64(i % 2), HasLabel: true}
		}, 200000},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			broker := startBroker(b)
			log := slog.New(slog.DiscardHandler)
			db, err := store.Open(b.TempDir(), log, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			e, err := engine.New(engine.Config{Models: []learner.ModelConfig{tc.model}, PromoteInterval: time.Hour}, db, func(*learner.Snapshot) {}, prometheus.NewRegistry(), log)
			if err != nil {
				b.Fatal(err)
			}
			if err := e.Acquire("m", nil, 1); err != nil {
				b.Fatal(err)
			}
			for i := range tc.n {
				if err := e.Process("events", tc.event(i)); err != nil {
					b.Fatal(err)
				}
			}
			sl, err := stream.NewStateLog(stream.StateLogConfig{Brokers: []string{broker}, Topic: "bench.state"}, log)
			if err != nil {
				b.Fatal(err)
			}
			defer sl.Close()
			if err := sl.EnsureTopic(context.Background()); err != nil {
				b.Fatal(err)
			}
			var size int
			b.ResetTimer()
			for i := range b.N {
				if err := e.Checkpoint([]engine.Offset{{TopicPartition: engine.TopicPartition{Topic: "events"}, Next: int64(tc.n + i)}}); err != nil {
					b.Fatal(err)
				}
				st, err := e.Export("m")
				if err != nil {
					b.Fatal(err)
				}
				size = len(st.Data)
				if err := sl.Write(context.Background(), stream.Checkpoint{Unit: "m", Epoch: st.Epoch, Seq: st.Seq, Data: st.Data}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(size), "bytes/state")
		})
	}
}

// BenchmarkPromotionReachesAReplica measures how long a new champion takes
// to serve on a serve-only replica after the instance that learns the model
// serves it: an operator action (rollback, then release, alternately) on
// the owner, then the time until the replica's Predict answers its version.
//
//	go test -run '^$' -bench PromotionReachesAReplica -benchtime 50x .
func BenchmarkPromotionReachesAReplica(b *testing.B) {
	t := b
	broker := startBroker(t)
	start := func(role string) *running {
		c := testConfig(broker, b.TempDir(), learner.ModelConfig{Name: "sea"})
		c.Role = role
		return startTestService(t, c)
	}
	owner, replica := start(""), start(eddy.RoleServe)
	// Two versions to go back and forth between; then no more events, so
	// that only the operator's actions change what serves.
	for round := range 2 {
		produceSEAEvents(t, broker, "events", 1000)
		for owner.model("sea").ServedVersion <= uint64(round) || owner.model("sea").ServedLearned != uint64(1000*(round+1)) ||
			replica.model("sea").ServedVersion != owner.model("sea").ServedVersion {
			time.Sleep(10 * time.Millisecond)
		}
	}
	admin := adminOf(t, owner.GRPCAddr())
	b.ResetTimer()
	var total time.Duration
	for i := range b.N {
		var version uint64
		if i%2 == 1 {
			r, err := admin.Release(context.Background(), &eddyv1.ReleaseRequest{Model: "sea"})
			if err != nil {
				b.Fatal(err)
			}
			version = r.GetServingVersion()
		} else {
			r, err := admin.Rollback(context.Background(), &eddyv1.RollbackRequest{Model: "sea"})
			if err != nil {
				b.Fatal(err)
			}
			version = r.GetServingVersion()
		}
		served := time.Now()
		for replica.model("sea").ServedVersion != version {
			time.Sleep(50 * time.Microsecond)
		}
		total += time.Since(served)
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/propagation")
}
