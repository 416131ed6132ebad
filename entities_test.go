package eddy_test

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// TestAPredictForAnEntityOnlyOnDiskDerivesWhatTrainingDid sends 400
// payments of 100 users through Kafka to a service that holds at most 5
// histories in memory, then asks Predict over gRPC, with an explanation,
// about every user: the features derived from each user's history (a
// window and lags), read back from Pebble for the 95 not in memory, are
// exactly what a history that saw the same events in memory derives.
func TestAPredictForAnEntityOnlyOnDiskDerivesWhatTrainingDid(t *testing.T) {
	const users, events = 100, 400
	fc := features.Config{Key: "user", MaxEntitiesInMemory: 5,
		Windows: []features.WindowConfig{{Field: "amount", Size: 3, Aggs: []string{"mean", "max"}}},
		Lags:    []features.LagConfig{{Field: "amount", Lags: []int{1, 2}, Diff: true}}}
	broker := startBroker(t)
	svc := startTestService(t, testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m", Features: fc}))
	offline := features.NewHistory(fc)
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "events", RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}, BatchTimeout: time.Millisecond}
	defer w.Close()
	var msgs []kafka.Message
	for i := range events {
		user, amount := fmt.Sprintf("user-%d", i%users), float64(i*7%53)
		msgs = append(msgs, kafka.Message{Value: fmt.Appendf(nil, `{"id":"e-%d","features":{"user":%q,"amount":%v},"label":%d}`, i, user, amount, i%2)})
		if err := offline.Observe([]byte(user), time.Time{}, []features.Field{{Name: []byte("amount"), Kind: features.Number, Num: amount}}, float64(i%2), true); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteMessages(context.Background(), msgs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "every payment learned and served", func() bool {
		return svc.learned("m") == events && svc.model("m").ServedLearned == events
	})
	if n := svc.gauge("eddy_history_entities", map[string]string{"model": "m"}); n > 5 {
		t.Fatalf("%v histories in memory, bound 5", n)
	}
	client := predictClient(t, svc.GRPCAddr())
	for u := range users {
		user := fmt.Sprintf("user-%d", u)
		resp, err := client.Predict(context.Background(), &eddyv1.PredictRequest{Model: "m", Explain: true, Features: map[string]*structpb.Value{
			"user": structpb.NewStringValue(user), "amount": structpb.NewNumberValue(10)}})
		if err != nil {
			t.Fatalf("Predict for %s: %v", user, err)
		}
		got := map[string]float64{}
		for _, term := range resp.GetExplanation().GetTerms() {
			if term.GetDerived() {
				got[term.GetName()] = term.GetRawValue()
			}
		}
		want := map[string]float64{}
		derived, err := offline.Derive([]byte(user), time.Time{}, []features.Field{{Name: []byte("amount"), Kind: features.Number, Num: 10}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range derived {
			want[string(f.Name)] = f.Num
		}
		if len(got) != len(want) || len(want) != 6 {
			t.Fatalf("%s: Predict derived %v, training %v", user, got, want)
		}
		for name, x := range want {
			if math.Float64bits(got[name]) != math.Float64bits(x) {
				t.Fatalf("%s: Predict derived %s = %v, training %v", user, name, got[name], x)
			}
		}
	}
	if misses := svc.gauge("eddy_history_cache_misses_total", map[string]string{"model": "m"}); misses < users-5 {
		t.Errorf("eddy_history_cache_misses_total = %v: the histories were not read from Pebble", misses)
	}
}
