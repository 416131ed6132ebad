package eddy_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/protobuf/proto"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/stream"
)

// BenchmarkPredictExplain is Predict through the real service's gRPC
// server over loopback (one connection, one request at a time), answered
// by the snapshot a model learned through Kafka, with explain off against
// explain on (every term, and the top 5) in one run: requests of 8 numeric
// features, and of 8 numeric + 72 categorical ones (the model learned
// 2,000 events of the latter). The allocations count both the client's and
// the server's; resp-bytes is the size of the last response.
//
//	go test -run '^$' -bench PredictExplain -benchtime 20000x -benchmem -count 3 .
func BenchmarkPredictExplain(b *testing.B) {
	const model, n = "wide", 2000
	broker := startBroker(b)
	svc := startTestService(b, testConfig(broker, b.TempDir(), learner.ModelConfig{Name: model, Task: learner.Binary}))
	events := wideEventFields(n, 8, 72)
	produceWideEvents(b, broker, "events", events)
	deadline := time.Now().Add(60 * time.Second)
	for m := svc.model(model); m.Learned != n || m.ServedLearned != n; m = svc.model(model) {
		if time.Now().After(deadline) {
			b.Fatalf("learned %d, served %d after 60s; want %d", m.Learned, m.ServedLearned, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	client := predictClient(b, svc.GRPCAddr())
	for _, shape := range []struct {
		name   string
		fields int
	}{{"8 numeric", 8}, {"80 mostly categorical", 80}} {
		reqs := make([]*eddyv1.PredictRequest, 64)
		for i := range reqs {
			reqs[i] = &eddyv1.PredictRequest{Model: model, Features: requestOf(events[i].fields[:shape.fields])}
		}
		for _, mode := range []struct {
			name    string
			explain bool
			top     uint32
		}{{"explain off", false, 0}, {"explain on", true, 0}, {"explain on top 5", true, 5}} {
			b.Run(shape.name+"/"+mode.name, func(b *testing.B) {
				for _, r := range reqs {
					r.Explain, r.TopK = mode.explain, mode.top
				}
				var resp *eddyv1.PredictResponse
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					var err error
					if resp, err = client.Predict(context.Background(), reqs[i%len(reqs)]); err != nil {
						b.Fatal(err)
					}
					i++
				}
				b.StopTimer()
				terms := len(resp.GetExplanation().GetTerms()) + int(resp.GetExplanation().GetOmitted())
				if mode.explain != (resp.GetExplanation() != nil) || (mode.explain && terms != shape.fields) {
					b.Fatalf("explain %v: explanation %v, %d terms; want %d", mode.explain, resp.GetExplanation() != nil, terms, shape.fields)
				}
				b.ReportMetric(float64(proto.Size(resp)), "resp-bytes")
			})
		}
	}
}

type wideEvent struct {
	fields []features.Field
	label  float64
}

// wideEventFields returns n deterministic events of numeric features
// n0.. followed by categorical ones c0.. (values v0..v19), labelled from
// a logistic rule: the shape of the learner's benchmarks (learntest's
// WideEvents, internal to learner).
func wideEventFields(n, numeric, categorical int) []wideEvent {
	rng := rand.New(rand.NewPCG(5, 11))
	out := make([]wideEvent, n)
	for i := range out {
		var logit float64
		fields := make([]features.Field, 0, numeric+categorical)
		for j := range numeric {
			x := rng.NormFloat64()
			logit += x / float64(j+1)
			fields = append(fields, features.Field{Name: fmt.Appendf(nil, "n%d", j), Kind: features.Number, Num: x})
		}
		for j := range categorical {
			v := rng.IntN(20)
			if v < 3 {
				logit += 0.2
			}
			fields = append(fields, features.Field{Name: fmt.Appendf(nil, "c%d", j), Kind: features.String, Str: fmt.Appendf(nil, "v%d", v)})
		}
		label := 0.0
		if rng.Float64() < 1/(1+math.Exp(-logit)) {
			label = 1
		}
		out[i] = wideEvent{fields, label}
	}
	return out
}

// produceWideEvents writes events to topic as JSON (ids w-0..).
func produceWideEvents(tb testing.TB, broker, topic string, events []wideEvent) {
	tb.Helper()
	ctx := context.Background()
	if err := stream.EnsureTopics(ctx, []string{broker}, []stream.TopicSpec{{Name: topic, Partitions: 1}}); err != nil {
		tb.Fatal(err)
	}
	msgs := make([]kafka.Message, len(events))
	for i, e := range events {
		ev := stream.Event{ID: fmt.Appendf(nil, "w-%d", i), Label: e.label, HasLabel: true}
		for _, f := range e.fields {
			sf := stream.Field{Name: f.Name, Kind: stream.KindNumber, Num: f.Num}
			if f.Kind == features.String {
				sf = stream.Field{Name: f.Name, Kind: stream.KindString, Str: f.Str}
			}
			ev.Fields = append(ev.Fields, sf)
		}
		value, err := stream.AppendEvent(nil, &ev)
		if err != nil {
			tb.Fatal(err)
		}
		msgs[i] = kafka.Message{Value: value}
	}
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll, BatchSize: 500, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		tb.Fatal(err)
	}
}
