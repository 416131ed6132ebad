package eddy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
	"github.com/eddyhq/eddy/stream"
)

// Event production for the tests, written here rather than shared with
// cmd/eddy (package main, which no test can import). seaEvents and
// produceCSV write the same JSON as cmd/eddy's SEA generator and `eddy
// produce`, so that the figures of these tests are those of the CLI.

// seaEvents generates the SEA concepts stream (Street & Kim 2001) as
// cmd/eddy's generator does: three features uniform in [0, 10), label 1
// when f1 + f2 <= θ, θ cycling through 8, 9, 7, 9.5 every driftEvery
// events, a fraction noise of labels flipped.
type seaEvents struct {
	rng        *rand.Rand
	driftEvery int
	noise      float64
	n          int
}

var seaThresholds = [...]float64{8, 9, 7, 9.5}

func newSEA(seed uint64, driftEvery int, noise float64) *seaEvents {
	return &seaEvents{rng: rand.New(rand.NewPCG(seed, seed^0x5ea)), driftEvery: driftEvery, noise: noise}
}

// next returns the next event as JSON, its id idPrefix and its number.
func (g *seaEvents) next(idPrefix string) []byte {
	f1, f2, f3 := g.rng.Float64()*10, g.rng.Float64()*10, g.rng.Float64()*10
	threshold := seaThresholds[0]
	if g.driftEvery > 0 {
		threshold = seaThresholds[(g.n/g.driftEvery)%len(seaThresholds)]
	}
	label := 0
	if f1+f2 <= threshold {
		label = 1
	}
	if g.rng.Float64() < g.noise {
		label = 1 - label
	}
	ev := stream.Event{ID: fmt.Appendf(nil, "%s%d", idPrefix, g.n), Label: float64(label), HasLabel: true,
		Fields: []stream.Field{
			{Name: []byte("f1"), Kind: stream.KindNumber, Num: sixDigits(f1)},
			{Name: []byte("f2"), Kind: stream.KindNumber, Num: sixDigits(f2)},
			{Name: []byte("f3"), Kind: stream.KindNumber, Num: sixDigits(f3)},
		}}
	g.n++
	out, err := stream.AppendEvent(nil, &ev)
	if err != nil {
		panic(err) // unreachable: a non-empty id and finite features
	}
	return out
}

// sixDigits rounds x to 6 significant digits, as the generator writes its
// features (cmd/eddy does the same, faster).
func sixDigits(x float64) float64 {
	y, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 6, 64), 64)
	return y
}

// produceN writes n SEA events (seed 1, a drift every 25,000, 10% noise)
// to topic, as `eddy bench` does.
func produceN(ctx context.Context, brokers []string, topic string, n int) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchSize: 1000, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	gen := newSEA(1, 25000, 0.1)
	batch := make([]kafka.Message, 0, 1000)
	for sent := 0; sent < n; sent += len(batch) {
		batch = batch[:0]
		for len(batch) < cap(batch) && sent+len(batch) < n {
			batch = append(batch, kafka.Message{Value: gen.next("b-")})
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return fmt.Errorf("produce: %w", err)
		}
	}
	return nil
}

// produceCSV sends a CSV file as events (ids <file>-<row>, label from
// target) through the reader and encoder eddy produce uses.
func produceCSV(broker, topic, file, target string) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := stream.NewCSVReader(f, stream.CSVConfig{Target: target})
	if err != nil {
		return 0, fmt.Errorf("%s: %w", file, err)
	}
	prefix := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
	var msgs []kafka.Message
	var ev stream.Event
	for {
		if err := r.Read(&ev); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return 0, fmt.Errorf("%s: %w", file, err)
		}
		ev.ID = []byte(prefix + "-" + strconv.Itoa(r.Row()))
		value, err := stream.AppendEvent(nil, &ev)
		if err != nil {
			return 0, fmt.Errorf("%s row %d: %w", file, r.Row(), err)
		}
		msgs = append(msgs, kafka.Message{Value: value})
	}
	ctx := context.Background()
	if err := stream.EnsureTopics(ctx, []string{broker}, []stream.TopicSpec{{Name: topic, Partitions: 1}}); err != nil {
		return 0, err
	}
	w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll, Balancer: &kafka.Hash{},
		BatchSize: 1000, BatchTimeout: 5 * time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	sent := 0
	for sent < len(msgs) {
		batch := msgs[sent:min(sent+500, len(msgs))]
		if err := w.WriteMessages(ctx, batch...); err != nil {
			return sent, err
		}
		sent += len(batch)
	}
	return sent, nil
}

// storedWeights reads the weights of the first model of cfg from the store
// of a stopped service.
func storedWeights(t *testing.T, cfg eddy.Config) ([]float64, float64) {
	t.Helper()
	db, err := store.Open(filepath.Join(cfg.DataDir, "pebble"), slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := engine.New(cfg.Learner, db, func(*learner.Snapshot) {}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return e.Models()[0].Weights()
}

// metricValue returns the value of the gauge (or counter) name with exactly
// labels, or 0.
func metricValue(g prometheus.Gatherer, name string, labels map[string]string) float64 {
	families, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if labelsMatch(m, labels) {
				if m.GetGauge() != nil {
					return m.GetGauge().GetValue()
				}
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	if len(m.GetLabel()) != len(want) {
		return false
	}
	for _, l := range m.GetLabel() {
		if want[l.GetName()] != l.GetValue() {
			return false
		}
	}
	return true
}

// readDeadLetters reads the first n records of a dead-letter topic,
// failing the test if they do not all arrive within 20 s.
func readDeadLetters(t *testing.T, broker, topic string, n int) []kafka.Message {
	t.Helper()
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []kafka.Message
	for len(out) < n {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatalf("reading %s after %d of %d dead letters: %v", topic, len(out), n, err)
		}
		out = append(out, m)
	}
	return out
}
