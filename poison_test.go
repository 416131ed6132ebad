package eddy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/stream"
)

// TestPoisonEventsAreDeadLetteredAndTheServiceGoesOn sends the nastiest
// events we know between valid ones: a 10 MB message, deeply nested JSON,
// numbers at the edge of float64, a label of the wrong type, and a duplicate
// id. Each bad one is dead-lettered with its reason, every valid one is
// learned, and the consumer never stops.
func TestPoisonEventsAreDeadLetteredAndTheServiceGoesOn(t *testing.T) {
	broker := startBroker(t)
	// Kafka refuses messages over 1 MB unless the topic allows them.
	if err := stream.EnsureTopics(context.Background(), []string{broker}, []stream.TopicSpec{
		{Name: "big", Partitions: 1, Configs: map[string]string{"max.message.bytes": "16777216"}}}); err != nil {
		t.Fatal(err)
	}
	svc := startTestService(t, testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m", Topic: "big"}))
	huge := `{"id":"huge","features":{"a":1,"pad":"` + strings.Repeat("x", 10<<20) + `"},"label":1}`
	nested := `{"id":"nested","features":{"a":1},"meta":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `,"label":1}`
	events := []struct{ value, reason string }{
		{`{"id":"ok-1","features":{"a":1},"label":1}`, ""},
		{huge, "too_large"},
		{nested, "invalid_json"},
		{`{"id":"edge","features":{"a":1.7976931348623157e308},"label":1}`, learner.ReasonOutOfRange},
		{`{"id":"tiny","features":{"a":4.9e-324},"label":0}`, ""},
		{`{"id":"label-type","features":{"a":1},"label":[1]}`, "wrong_type"},
		{`{"id":"ok-1","features":{"a":2},"label":0}`, ""}, // a repeated id is a new event: ids matter for delayed labels only
		{`{"id":"ok-2","features":{"a":3},"label":1}`, ""},
	}
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: "big", RequiredAcks: kafka.RequireAll, Transport: &kafka.Transport{}, BatchBytes: 12 << 20}
	defer w.Close()
	valid := 0
	for _, e := range events {
		if err := w.WriteMessages(context.Background(), kafka.Message{Value: []byte(e.value)}); err != nil {
			t.Fatalf("producing %.40s: %v", e.value, err)
		}
		if e.reason == "" {
			valid++
		}
	}
	waitFor(t, 60*time.Second, "every event handled", func() bool {
		return svc.Stats().Consumer.Consumed == uint64(len(events)) && svc.learned("m") == uint64(valid)
	})
	for _, reason := range []string{"too_large", "invalid_json", "wrong_type"} {
		if v := metricValue(svc.registry, "eddy_events_dead_lettered_total", map[string]string{"topic": "big", "reason": reason}); v != 1 {
			t.Errorf("dead letters with reason %s: %v, want 1", reason, v)
		}
	}
	if v := metricValue(svc.registry, "eddy_events_dead_lettered_total", map[string]string{"topic": "big", "reason": learner.ReasonOutOfRange}); v != 1 {
		t.Errorf("dead letters with reason out_of_range: %v, want 1", v)
	}
	t.Logf("%d events: %d learned, %d dead-lettered, service up", len(events), valid, svc.Stats().Consumer.DeadLettered)
}
