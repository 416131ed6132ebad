package stream

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/stream/devbroker"
)

// eventAt names one Kafka message.
type eventAt struct {
	partition int
	offset    int64
}

// ledger records, across every instance of a test, which events each
// instance handled and which it checkpointed.
type ledger struct {
	mu           sync.Mutex
	checkpointed map[eventAt][]string // instances that checkpointed the event
	handled      map[eventAt][]string
}

func newLedger() *ledger {
	return &ledger{checkpointed: make(map[eventAt][]string), handled: make(map[eventAt][]string)}
}

func (l *ledger) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.checkpointed)
}

// recordingHandler is one instance's handler: its "disk" holds the stored
// next offsets, like a Pebble store would, and each Checkpoint moves the
// events handled since the last one into the shared ledger, after an
// injected delay that stands for a slow synced write.
type recordingHandler struct {
	name   string
	delay  time.Duration
	ledger *ledger

	mu      sync.Mutex
	stored  map[int]int64 // partition → next offset, as checkpointed
	pending []eventAt
}

func newRecordingHandler(name string, delay time.Duration, l *ledger) *recordingHandler {
	return &recordingHandler{name: name, delay: delay, ledger: l, stored: make(map[int]int64)}
}

func (h *recordingHandler) NextOffsets(string) map[int]int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[int]int64, len(h.stored))
	for p, next := range h.stored {
		out[p] = next
	}
	return out
}

func (h *recordingHandler) Handle(_ string, ev *Event) error {
	at := eventAt{ev.Partition, ev.Offset}
	h.mu.Lock()
	h.pending = append(h.pending, at)
	h.mu.Unlock()
	h.ledger.mu.Lock()
	h.ledger.handled[at] = append(h.ledger.handled[at], h.name)
	h.ledger.mu.Unlock()
	return nil
}

func (h *recordingHandler) HandleLabel(string, *Label) error { return nil }

func (h *recordingHandler) Checkpoint(offsets []Offset) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.pending) == 0 && len(offsets) == 0 {
		return nil
	}
	time.Sleep(h.delay)
	h.ledger.mu.Lock()
	for _, at := range h.pending {
		h.ledger.checkpointed[at] = append(h.ledger.checkpointed[at], h.name)
	}
	h.ledger.mu.Unlock()
	h.pending = h.pending[:0]
	for _, o := range offsets {
		h.stored[o.Partition] = o.Next
	}
	return nil
}

// startTestBroker starts an embedded broker with one topic of the given
// partition count and returns its address.
func startTestBroker(t *testing.T, topic string, partitions int) string {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, []string{b.Addr()}, []TopicSpec{{Name: topic, Partitions: partitions}, {Name: topic + ".dlq", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	return b.Addr()
}

// produceEvents writes n valid events to topic, spread over its partitions
// by key, at about rate events per second.
func produceEvents(ctx context.Context, t *testing.T, addr, topic string, n, rate int) {
	w := &kafka.Writer{Addr: kafka.TCP(addr), Topic: topic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	const batch = 50
	tick := time.NewTicker(time.Second * batch / time.Duration(rate))
	defer tick.Stop()
	for i := 0; i < n; i += batch {
		msgs := make([]kafka.Message, 0, batch)
		for j := i; j < i+batch && j < n; j++ {
			ev := Event{ID: []byte("e-" + strconv.Itoa(j)), Label: 1, HasLabel: true,
				Fields: []Field{{Name: []byte("x"), Kind: KindNumber, Num: float64(j % 7)}}}
			value, err := AppendEvent(nil, &ev)
			if err != nil { // t.Errorf: produceEvents may run on its own goroutine
				t.Errorf("encoding event %d: %v", j, err)
				return
			}
			msgs = append(msgs, kafka.Message{Key: []byte("k" + strconv.Itoa(j)), Value: value})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Errorf("produce: %v", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func testConsumer(t *testing.T, addr, topic string, h Handler) *Consumer {
	t.Helper()
	c, err := NewConsumer(ConsumerConfig{
		Brokers:            []string{addr},
		Topics:             []string{topic},
		GroupID:            "ledger",
		CheckpointEvery:    200,
		CheckpointInterval: 100 * time.Millisecond,
		SessionTimeout:     2 * time.Second,
		MaxWait:            50 * time.Millisecond,
	}, h, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestRebalancesNeverMakeTwoInstancesLearnTheSameEvent runs two members with
// slow checkpoints (50 ms and 300 ms) while a third joins and leaves again
// and again, and keeps a per-event ledger: every event must be handled and
// checkpointed by exactly one instance. Before the final checkpoint and its
// commit ran inside the generation, a rebalance let the next owner resume
// from a stale committed offset and learn the same events again.
func TestRebalancesNeverMakeTwoInstancesLearnTheSameEvent(t *testing.T) {
	if testing.Short() {
		t.Log("short mode: fewer events and churn rounds")
	}
	const topic, partitions = "events", 6
	events, churn := 6000, 6
	if testing.Short() {
		events, churn = 2000, 3
	}
	addr := startTestBroker(t, topic, partitions)
	l := newLedger()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var wg sync.WaitGroup
	run := func(ctx context.Context, h Handler) {
		defer wg.Done()
		if err := testConsumer(t, addr, topic, h).Run(ctx); err != nil {
			t.Errorf("consumer: %v", err)
		}
	}
	stable := []*recordingHandler{newRecordingHandler("a", 50*time.Millisecond, l), newRecordingHandler("b", 300*time.Millisecond, l)}
	for _, h := range stable {
		wg.Add(1)
		go run(ctx, h)
	}
	go produceEvents(ctx, t, addr, topic, events, events/6)

	joiner := newRecordingHandler("c", 50*time.Millisecond, l)
	for i := 0; i < churn; i++ {
		cctx, stop := context.WithCancel(ctx)
		wg.Add(1)
		go run(cctx, joiner)
		time.Sleep(time.Duration(1500+200*i) * time.Millisecond)
		stop()
		time.Sleep(500 * time.Millisecond)
	}
	deadline := time.Now().Add(60 * time.Second)
	for l.count() < events && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cancel()
	wg.Wait()

	l.mu.Lock()
	defer l.mu.Unlock()
	twice, unhandled := 0, 0
	for at, who := range l.checkpointed {
		if len(who) != 1 {
			twice++
			if twice <= 5 {
				t.Errorf("partition %d offset %d checkpointed by %v", at.partition, at.offset, who)
			}
		}
	}
	for at, who := range l.handled {
		if len(who) != 1 || len(l.checkpointed[at]) != 1 {
			unhandled++
			if unhandled <= 5 {
				t.Errorf("partition %d offset %d handled by %v, checkpointed by %v", at.partition, at.offset, who, l.checkpointed[at])
			}
		}
	}
	if len(l.checkpointed) != events || twice > 0 || unhandled > 0 {
		t.Fatalf("%d of %d events checkpointed; %d checkpointed more than once; %d handled other than once or not checkpointed",
			len(l.checkpointed), events, twice, unhandled)
	}
}

// nopHandler accepts every event and stores nothing.
type nopHandler struct{}

func (nopHandler) NextOffsets(string) map[int]int64 { return nil }
func (nopHandler) Handle(string, *Event) error      { return nil }
func (nopHandler) HandleLabel(string, *Label) error { return nil }
func (nopHandler) Checkpoint([]Offset) error        { return nil }

// BenchmarkConsumerProcess measures the consumer's per-message path (offset
// bookkeeping, metrics, decoding, the handler call) for events of 8 and 80
// features. It must allocate nothing.
func BenchmarkConsumerProcess(b *testing.B) {
	for _, n := range []int{8, 80} {
		b.Run(fmt.Sprintf("features=%d", n), func(b *testing.B) {
			ev := Event{ID: []byte("e-1"), Time: time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC), HasTime: true, Label: 1, HasLabel: true}
			for i := 0; i < n; i++ {
				if i%2 == 0 {
					ev.Fields = append(ev.Fields, Field{Name: fmt.Appendf(nil, "f%d", i), Kind: KindNumber, Num: float64(i) + 0.25})
				} else {
					ev.Fields = append(ev.Fields, Field{Name: fmt.Appendf(nil, "c%d", i), Kind: KindString, Str: fmt.Appendf(nil, "v%d", i)})
				}
			}
			value := mustAppendEvent(b, &ev)
			c, err := NewConsumer(ConsumerConfig{Brokers: []string{"127.0.0.1:1"}, Topics: []string{"events"}},
				nopHandler{}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				b.Fatal(err)
			}
			g := &generation{next: make(map[partitionKey]int64), lag: make(map[partitionKey]prometheus.Gauge)}
			m := kafka.Message{Topic: "events", Key: []byte("user-1"), Value: value, HighWaterMark: 1 << 40}
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			for i := 0; b.Loop(); i++ {
				m.Offset = int64(i)
				if err := c.process(g, &m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func metricSeries(t *testing.T, reg *prometheus.Registry, name string) []float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			switch {
			case m.GetGauge() != nil:
				out = append(out, m.GetGauge().GetValue())
			case m.GetCounter() != nil:
				out = append(out, m.GetCounter().GetValue())
			}
		}
	}
	return out
}

// TestLagGaugesOfRevokedPartitionsAreDeleted starts one member on two
// partitions, then a second: the first must stop exporting the lag of the
// partition it gave away (a stale lag would hide the new owner's real one).
func TestLagGaugesOfRevokedPartitionsAreDeleted(t *testing.T) {
	const topic = "events"
	addr := startTestBroker(t, topic, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produceEvents(ctx, t, addr, topic, 200, 10000)
	l := newLedger()
	var wg sync.WaitGroup
	start := func(name string) *prometheus.Registry {
		reg := prometheus.NewRegistry()
		c, err := NewConsumer(ConsumerConfig{Brokers: []string{addr}, Topics: []string{topic}, GroupID: "lag",
			CheckpointInterval: 50 * time.Millisecond, SessionTimeout: 2 * time.Second, MaxWait: 50 * time.Millisecond},
			newRecordingHandler(name, 0, l), reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Run(ctx); err != nil {
				t.Errorf("consumer %s: %v", name, err)
			}
		}()
		return reg
	}
	first := start("a")
	waitUntil(t, 20*time.Second, "the first member owns and reports both partitions", func() bool {
		return len(metricSeries(t, first, "eddy_consumer_lag")) == 2 && l.count() == 200
	})
	second := start("b")
	waitUntil(t, 20*time.Second, "the partitions are split", func() bool {
		a, b := metricSeries(t, first, "eddy_consumer_partitions_assigned"), metricSeries(t, second, "eddy_consumer_partitions_assigned")
		return len(a) == 1 && len(b) == 1 && a[0] == 1 && b[0] == 1
	})
	produceEvents(ctx, t, addr, topic, 200, 10000) // both members see their partition's lag
	waitUntil(t, 20*time.Second, "the second batch handled", func() bool { return l.count() == 400 })
	if n := len(metricSeries(t, first, "eddy_consumer_lag")); n != 1 {
		t.Fatalf("the first member exports the lag of %d partitions after giving one away, want 1", n)
	}
	cancel()
	wg.Wait()
}

// TestRunReturnsOnlyAfterItsGoroutinesHaveStopped checks that nothing a
// Consumer started (the broker prober among them) outlives Run.
func TestRunReturnsOnlyAfterItsGoroutinesHaveStopped(t *testing.T) {
	addr := startTestBroker(t, "events", 1)
	for i := 0; i < 5; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		c := testConsumer(t, addr, "events", nopHandler{})
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		time.Sleep(1200 * time.Millisecond) // the prober has probed once
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1<<20)
		if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "probeBrokers") {
			t.Fatalf("the broker prober still runs after Run returned:\n%s", stacks)
		}
	}
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// syncBuffer is a log sink safe for the consumer's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestAnOutageLogsTheJoinFailureOnce stops the broker under a consumer for
// several seconds: the group retries its join every second, but the log
// says so once (and once more when it joins again), not every second.
func TestAnOutageLogsTheJoinFailureOnce(t *testing.T) {
	dir := t.TempDir()
	b, err := devbroker.Start(devbroker.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr, port := b.Addr(), b.Port()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, []string{addr}, []TopicSpec{{Name: "events", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	c, err := NewConsumer(ConsumerConfig{Brokers: []string{addr}, Topics: []string{"events"}, GroupID: "outage",
		SessionTimeout: 2 * time.Second, MaxWait: 50 * time.Millisecond}, nopHandler{}, prometheus.NewRegistry(),
		slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	waitUntil(t, 10*time.Second, "the first generation", func() bool { return strings.Contains(logs.String(), "partition assigned") })
	b.Close()
	time.Sleep(6 * time.Second)
	b, err = devbroker.Start(devbroker.Config{Port: port, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitUntil(t, 20*time.Second, "a generation after the outage", func() bool {
		return strings.Count(logs.String(), "partition assigned") >= 2
	})
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "consumer group join failed"); n > 1 {
		t.Fatalf("the join failure was logged %d times during one outage, want once:\n%s", n, logs.String())
	}
}

// slowFinalHandler checkpoints at once until slow is set, then takes 4 s.
type slowFinalHandler struct {
	nopHandler
	slow atomic.Bool
}

func (h *slowFinalHandler) Checkpoint([]Offset) error {
	if h.slow.Load() {
		time.Sleep(4 * time.Second)
	}
	return nil
}

// TestAFailedCommitIsAWarningAndAMetric makes a member's checkpoint outlast
// the group's rebalance timeout while a second member joins, so that the
// group goes on without it and its commit is refused: that must be a
// warning and a counted failure, never silent.
func TestAFailedCommitIsAWarningAndAMetric(t *testing.T) {
	addr := startTestBroker(t, "events", 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produceEvents(ctx, t, addr, "events", 100, 10000)
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	slow := &slowFinalHandler{}
	c, err := NewConsumer(ConsumerConfig{Brokers: []string{addr}, Topics: []string{"events"}, GroupID: "commit",
		CheckpointInterval: 50 * time.Millisecond, SessionTimeout: 2 * time.Second, MaxWait: 50 * time.Millisecond},
		slow, reg, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("slow consumer: %v", err)
		}
	})
	waitUntil(t, 10*time.Second, "the first member consumed", func() bool { return c.Stats().Consumed == 100 })
	slow.slow.Store(true)
	produceEvents(ctx, t, addr, "events", 10, 10000) // their checkpoint is slow, their commit late
	waitUntil(t, 10*time.Second, "the next events consumed", func() bool { return c.Stats().Consumed == 110 })
	other, err := NewConsumer(ConsumerConfig{Brokers: []string{addr}, Topics: []string{"events"}, GroupID: "commit",
		SessionTimeout: 2 * time.Second}, nopHandler{}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		if err := other.Run(ctx); err != nil {
			t.Errorf("second consumer: %v", err)
		}
	})
	waitUntil(t, 30*time.Second, "the commit failure counted", func() bool {
		v := metricSeries(t, reg, "eddy_kafka_commit_failures_total")
		return len(v) == 1 && v[0] >= 1
	})
	if !strings.Contains(logs.String(), "level=WARN msg=\"offset commit to the group failed") {
		t.Fatalf("no warning for the failed commit:\n%s", logs.String())
	}
	cancel()
	wg.Wait()
}
