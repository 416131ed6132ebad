package eddy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/stream"
)

// TestDelayedLabelsAreLearnedExactlyOnce sends events without labels, then
// their labels on the labels topic, shuffled, with duplicates and labels
// for ids never seen: every event is learned once when its label arrives,
// every other label is dead-lettered as unknown_id.
func TestDelayedLabelsAreLearnedExactlyOnce(t *testing.T) {
	const events = 2000
	broker := startBroker(t)
	config := filepath.Join(t.TempDir(), "models.yaml")
	if err := os.WriteFile(config, []byte("models:\n  - name: late\n    labels_topic: labels\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	svc := startTestService(t, withConfigFile(t, testConfig(broker, t.TempDir(), learner.ModelConfig{}), config))

	rng := rand.New(rand.NewPCG(8, 8))
	var evs, labels []kafka.Message
	truth := make([]int, events)
	for i := range events {
		f1, f2 := rng.Float64()*10, rng.Float64()*10
		if f1+f2 <= 9 {
			truth[i] = 1
		}
		value, err := stream.AppendEvent(nil, &stream.Event{ID: fmt.Appendf(nil, "ev-%d", i), Fields: []stream.Field{
			{Name: []byte("f1"), Kind: stream.KindNumber, Num: f1}, {Name: []byte("f2"), Kind: stream.KindNumber, Num: f2}}})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, kafka.Message{Value: value})
		labels = append(labels, kafka.Message{Value: fmt.Appendf(nil, `{"id":"ev-%d","label":%d}`, i, truth[i])})
	}
	rng.Shuffle(len(labels), func(i, j int) { labels[i], labels[j] = labels[j], labels[i] })
	duplicates := labels[:50]
	labels = append(labels, duplicates...)
	for i := range 10 {
		labels = append(labels, kafka.Message{Value: fmt.Appendf(nil, `{"id":"never-%d","label":1}`, i)})
	}
	write := func(topic string, msgs []kafka.Message) {
		w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}}
		defer w.Close()
		if err := w.WriteMessages(context.Background(), msgs...); err != nil {
			t.Fatal(err)
		}
	}
	write("events", evs)
	waitFor(t, 30*time.Second, "every event scored and waiting", func() bool {
		return svc.gauge("eddy_labels_pending", map[string]string{"model": "late"}) == events
	})
	if got := svc.learned("late"); got != 0 {
		t.Fatalf("%v examples learned before any label arrived", got)
	}
	write("labels", labels)
	waitFor(t, 30*time.Second, "every label handled", func() bool {
		return svc.Stats().Consumer.Consumed == uint64(events+len(labels)) && svc.gauge("eddy_labels_pending", map[string]string{"model": "late"}) == 0
	})
	waitFor(t, 10*time.Second, "the learned count checkpointed", func() bool { return svc.learned("late") == events })
	if dead := svc.Stats().Consumer.DeadLettered; dead != 60 {
		t.Errorf("%d labels dead-lettered, want the 50 duplicates and 10 unknown ids", dead)
	}
	if v := metricValue(svc.registry, "eddy_events_dead_lettered_total", map[string]string{"topic": "labels", "reason": learner.ReasonUnknownID}); v != 60 {
		t.Errorf("eddy_events_dead_lettered_total{topic=labels,reason=unknown_id} = %v, want 60", v)
	}
	acc := svc.gauge("eddy_prequential_accuracy", map[string]string{"model": "late", "window": "cumulative"})
	t.Logf("%d events learned from delayed labels (prequential accuracy %.4f, scored at event time); 60 stray labels dead-lettered", events, acc)
	// Scored at event time, in event order, the model was still learning
	// nothing while all events arrived: the prediction is the untrained one.
	if acc < 0.3 || acc > 0.8 {
		t.Errorf("accuracy %.4f: the events were scored before any label, so it must be the untrained model's", acc)
	}
}
