package stream

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Offset is the next offset to consume from one partition.
type Offset struct {
	Topic     string
	Partition int
	Next      int64
}

// Handler receives the events of a Consumer. All methods are called from one
// goroutine.
type Handler interface {
	// NextOffsets returns the stored next offset of each partition of topic
	// the handler has state for.
	NextOffsets(topic string) map[int]int64
	// Handle processes one valid event from topic. ev and its slices are
	// valid only during the call. An error that implements Rejection
	// dead-letters the event; any other error stops the Consumer.
	Handle(topic string, ev *Event) error
	// HandleLabel processes a label that arrived on a labels topic for an
	// earlier event. Errors are treated as for Handle.
	HandleLabel(topic string, l *Label) error
	// Checkpoint durably stores the handler's state together with offsets,
	// which reflect exactly the events handled so far. Between generations
	// offsets is empty: no partition is owned, and the stored offsets stand.
	// An error stops the Consumer.
	Checkpoint(offsets []Offset) error
}

// Waker may be implemented by a Handler that has work to do outside events
// (an admin command, say): a value on its channel makes the Consumer call
// Checkpoint right away rather than at the next tick.
type Waker interface {
	Wake() <-chan struct{}
}

// Rejection is implemented by Handler errors that reject one event: the
// event goes to the dead-letter topic with RejectReason as its reason code.
type Rejection interface {
	error
	RejectReason() string
}

// ConsumerConfig configures a Consumer. The zero value of every field but
// Brokers and Topics means its documented default.
type ConsumerConfig struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// TLS and SASL secure every connection the consumer makes (see
	// Cluster); nil means plaintext without authentication.
	TLS  *tls.Config
	SASL sasl.Mechanism
	// Topics are consumed as one consumer group. Required.
	Topics []string
	// LabelTopics are topics (also consumed, in the same group) whose
	// messages are delayed labels, {"id": ..., "label": ...}.
	LabelTopics []string
	// GroupID is the consumer group. The default is "eddy".
	GroupID string
	// DeadLetterSuffix is appended to a topic's name to name its dead-letter
	// topic. The default is ".dlq".
	DeadLetterSuffix string
	// CheckpointEvery checkpoints after this many events. The default is 1000.
	CheckpointEvery int
	// CheckpointInterval checkpoints at least this often while events flow.
	// The default is 1s.
	CheckpointInterval time.Duration
	// SessionTimeout is the group session timeout: how long a crashed member
	// keeps its partitions. The default is 10s (kfake's minimum is 6s).
	SessionTimeout time.Duration
	// MaxWait bounds how long a fetch waits for new data. The default is
	// 250ms.
	MaxWait time.Duration
	// Decoder configures event decoding.
	Decoder DecoderConfig
	// StateTopic, with a Handler that is an Owner, is the compacted topic
	// that holds each unit's newest exported state, so that any member can
	// take a unit over, also after its last owner lost its disk. Empty: units
	// are still assigned whole, but their state never leaves the instance.
	StateTopic string
	// StateInterval is how often each owned unit's state is exported to
	// StateTopic while it changes; it is also exported whenever ownership
	// ends (a rebalance, shutdown). It bounds what a new owner replays after
	// a crash. The default is 10s.
	StateInterval time.Duration
	// FollowOnly, with an Owner handler, joins no group and owns nothing: it
	// follows every Standby unit (Owner.Follow) from its state's positions,
	// so that a serve-only replica keeps the entity histories its
	// predictions read current; see Consumer.CaughtUp.
	FollowOnly bool
	// Start is where a partition with no stored position starts, with an
	// Owner handler: "earliest" (the default) or "latest". Positions come
	// only from the handler's state then; the group's committed offsets are
	// advisory (lag monitoring).
	Start string
}

// Consumer defaults.
const (
	DefaultGroupID            = "eddy"
	DefaultDeadLetterSuffix   = ".dlq"
	DefaultCheckpointEvery    = 1000
	DefaultCheckpointInterval = time.Second
	DefaultSessionTimeout     = 10 * time.Second
	DefaultMaxWait            = 250 * time.Millisecond
	DefaultStateInterval      = 10 * time.Second
)

// EnsureDefaults fills zero fields with their defaults.
func (c *ConsumerConfig) EnsureDefaults() {
	if c.GroupID == "" {
		c.GroupID = DefaultGroupID
	}
	if c.DeadLetterSuffix == "" {
		c.DeadLetterSuffix = DefaultDeadLetterSuffix
	}
	if c.CheckpointEvery == 0 {
		c.CheckpointEvery = DefaultCheckpointEvery
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = DefaultCheckpointInterval
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.MaxWait == 0 {
		c.MaxWait = DefaultMaxWait
	}
	if c.StateInterval == 0 {
		c.StateInterval = DefaultStateInterval
	}
	if c.Start == "" {
		c.Start = "earliest"
	}
}

// Validate reports the first invalid setting.
func (c *ConsumerConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("stream: no brokers")
	case len(c.Topics) == 0:
		return errors.New("stream: no topics")
	case c.CheckpointEvery < 0 || c.CheckpointInterval < 0 || c.SessionTimeout < 0 || c.MaxWait < 0 || c.StateInterval < 0:
		return errors.New("stream: checkpoint and timeout settings must not be negative")
	case c.Start != "" && c.Start != "earliest" && c.Start != "latest":
		return fmt.Errorf("stream: start %q: want earliest or latest", c.Start)
	}
	return nil
}

// cluster returns the cluster the consumer connects to.
func (c *ConsumerConfig) cluster() Cluster {
	return Cluster{Brokers: c.Brokers, TLS: c.TLS, SASL: c.SASL}
}

// Stats is a snapshot of a Consumer's counters since it was created.
type Stats struct {
	Consumed     uint64 // messages handled or dead-lettered
	DeadLettered uint64
	Checkpoints  uint64
	Assigned     int // partitions owned in the current generation; 0 between generations
}

// Consumer consumes topics as a group member and feeds a Handler. Create it
// with NewConsumer; run it with Run.
type Consumer struct {
	cfg     ConsumerConfig
	handler Handler
	log     *slog.Logger
	metrics *consumerMetrics
	decoder *Decoder
	dlq     *kafka.Writer
	units   *ownership // nil unless the handler is an Owner

	consumed, deadLettered, checkpoints atomic.Uint64
	assigned                            atomic.Int64
	caughtUp                            atomic.Bool  // FollowOnly: every followed partition reached its end once
	pausedSince                         atomic.Int64 // unix nanoseconds a failing checkpoint paused learning; 0 while it runs
	pauseCause                          atomic.Value // string: the failing checkpoint's error
	lastKafkaWarn                       atomic.Int64 // unix nanoseconds
	downSince                           atomic.Int64 // unix nanoseconds the brokers became unreachable; 0 while reachable
	downReason                          atomic.Value // string: why, as the prober last saw it
}

// BrokerDownSince returns since when no broker has been usable, and why
// (a BrokerError's text: refused, TLS, SASL...), or the zero time while one
// is. Safe for concurrent use.
func (c *Consumer) BrokerDownSince() (time.Time, string) {
	if ns := c.downSince.Load(); ns != 0 {
		reason, _ := c.downReason.Load().(string)
		return time.Unix(0, ns), reason
	}
	return time.Time{}, ""
}

// probeBrokers dials the brokers every interval until ctx is done, keeping
// the broker-up gauge and BrokerDownSince current and logging each change
// once.
func (c *Consumer) probeBrokers(ctx context.Context, interval time.Duration) {
	c.metrics.brokerUp.Set(1)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		err := c.cfg.cluster().Probe(ctx)
		if ctx.Err() != nil {
			return
		}
		up := err == nil
		if !up {
			reason := err.Error()
			if old, _ := c.downReason.Swap(reason).(string); old != reason {
				c.log.Warn("Kafka unusable; consuming will resume when it is", "brokers", c.cfg.Brokers, "reason", reason)
			}
		}
		switch down := c.downSince.Load(); {
		case !up && down == 0:
			c.downSince.Store(time.Now().UnixNano())
			c.metrics.brokerUp.Set(0)
		case up && down != 0:
			c.downReason.Store("")
			c.downSince.Store(0)
			c.metrics.brokerUp.Set(1)
			c.log.Info("Kafka broker reachable again", "down_for", time.Since(time.Unix(0, down)).Round(time.Millisecond))
		}
	}
}

// NewConsumer returns a Consumer for cfg that feeds handler and registers its
// metrics with reg.
func NewConsumer(cfg ConsumerConfig, handler Handler, reg prometheus.Registerer, log *slog.Logger) (*Consumer, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Consumer{
		cfg:     cfg,
		handler: handler,
		log:     log.With("component", "consumer", "group", cfg.GroupID),
		metrics: newConsumerMetrics(reg),
		decoder: NewDecoder(cfg.Decoder),
		dlq: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			RequiredAcks: kafka.RequireAll,
			Balancer:     &kafka.Hash{},
			BatchTimeout: time.Millisecond,
			Transport:    cfg.cluster().Transport(),
		},
	}
	if owner, ok := handler.(Owner); ok {
		units, err := newOwnership(c, owner)
		if err != nil {
			return nil, err
		}
		c.units = units
	}
	return c, nil
}

// Stats returns the Consumer's counters. Safe for concurrent use.
func (c *Consumer) Stats() Stats {
	return Stats{Consumed: c.consumed.Load(), DeadLettered: c.deadLettered.Load(), Checkpoints: c.checkpoints.Load(), Assigned: int(c.assigned.Load())}
}

// Run joins the group and processes events until ctx is done or a Handler
// error stops it. It writes a final checkpoint before returning; it returns
// nil when stopped by ctx. Between generations (a rebalance, a broker
// outage) it still serves the Handler's Waker, with Checkpoint(nil).
func (c *Consumer) Run(ctx context.Context) error {
	defer c.dlq.Close()
	if c.units != nil {
		defer c.units.close()
	}
	if c.cfg.FollowOnly {
		if c.units == nil {
			return errors.New("stream: FollowOnly needs a Handler that is an Owner")
		}
		return c.runFollower(ctx)
	}
	probeCtx, stopProbe := context.WithCancel(ctx)
	var probing sync.WaitGroup
	probing.Go(func() { c.probeBrokers(probeCtx, time.Second) })
	defer probing.Wait()
	defer stopProbe()
	var balancers []kafka.GroupBalancer // nil: kafka-go's defaults
	if c.units != nil {
		balancers = []kafka.GroupBalancer{c.units.balancer}
	}
	dialer := &abortableDialer{}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		GroupBalancers: balancers,
		ID:             c.cfg.GroupID,
		Brokers:        c.cfg.Brokers,
		Topics:         append(slices.Clone(c.cfg.Topics), c.cfg.LabelTopics...),
		Dialer:         dialer.kafkaDialer(c.cfg.cluster()),
		SessionTimeout: c.cfg.SessionTimeout,
		// Heartbeats well inside the session: kafka-go's default (3s) is
		// longer than a short session, and a member whose heartbeats come
		// too late is evicted while it still consumes, so that two members
		// learn the same events.
		HeartbeatInterval: c.cfg.SessionTimeout / 4,
		RebalanceTimeout:  c.cfg.SessionTimeout,
		JoinGroupBackoff:  time.Second,
		StartOffset:       kafka.FirstOffset,
		ErrorLogger:       kafka.LoggerFunc(c.kafkaError),
	})
	if err != nil {
		return fmt.Errorf("stream: consumer group: %w", err)
	}
	var memberID string // of the latest generation, to leave the group with
	defer func() { c.closeGroup(group, dialer, memberID) }()
	var wake <-chan struct{} // nil blocks forever: no waker
	if w, ok := c.handler.(Waker); ok {
		wake = w.Wake()
	}
	c.log.Info("joining consumer group", "topics", c.cfg.Topics, "brokers", c.cfg.Brokers)
	var failingSince time.Time
	for {
		gen, err := c.nextGeneration(ctx, group, wake)
		if ctx.Err() != nil {
			return nil
		}
		var herr *handlerError
		if errors.As(err, &herr) {
			return herr.err
		}
		if err != nil {
			// Logged once per failing streak: during an outage the group
			// retries every second.
			if failingSince.IsZero() {
				failingSince = time.Now()
				c.log.Warn("consumer group join failed; retrying every second (further failures are logged at debug)", "err", err)
			} else {
				c.log.Debug("consumer group join failed again", "err", err)
			}
			if err := c.idle(ctx, time.Second, wake); err != nil {
				return err
			}
			continue
		}
		if !failingSince.IsZero() {
			c.log.Info("consumer group joined again", "failing_for", time.Since(failingSince).Round(time.Millisecond))
			failingSince = time.Time{}
		}
		memberID = gen.MemberID
		if err := c.runGeneration(ctx, gen, wake); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return nil
		}
	}
}

// Bounds on stopping the consumer group; see closeGroup.
const (
	groupCloseGrace = 1500 * time.Millisecond
	groupAbortWait  = time.Second
	groupLeaveWait  = time.Second
)

// closeGroup closes the consumer group within about 3.5 s (groupCloseGrace
// + groupAbortWait + groupLeaveWait), whatever the group is doing: SIGTERM
// must not wait for a rebalance. kafka-go's Close waits for the group's
// goroutine, which does not look at Close while a JoinGroup or a SyncGroup
// waits at the coordinator for the rebalance to end (up to Timeout +
// RebalanceTimeout, 15 s by default, and Timeout + SessionTimeout), and
// leaves the group only after that. So if Close has not returned after the
// grace, the group's connections are closed, which fails that request at
// once and lets the goroutine return, and the member then leaves the group
// itself, so that the others need not wait a session timeout for it.
func (c *Consumer) closeGroup(group *kafka.ConsumerGroup, dialer *abortableDialer, memberID string) {
	closed := make(chan struct{})
	go func() {
		group.Close()
		close(closed)
	}()
	select {
	case <-closed:
		return
	case <-time.After(groupCloseGrace):
	}
	c.log.Info("stopping during a rebalance: cutting the consumer group's wait at the coordinator short", "waited", groupCloseGrace)
	dialer.abort()
	select {
	case <-closed:
	case <-time.After(groupAbortWait):
		c.log.Warn("consumer group close still blocked after its connections were closed; not waiting for it")
	}
	if memberID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), groupLeaveWait)
	defer cancel()
	client := c.cfg.cluster().client(groupLeaveWait)
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	resp, err := client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{GroupID: c.cfg.GroupID, Members: []kafka.LeaveGroupRequestMember{{ID: memberID}}})
	if err == nil {
		err = resp.Error
	}
	if err != nil && !errors.Is(err, kafka.UnknownMemberId) {
		c.log.Warn("leaving the consumer group failed; the others wait a session timeout for this instance", "err", err)
	}
}

// errGroupAborted fails the dials of a consumer group whose connections were
// closed by closeGroup.
var errGroupAborted = errors.New("stream: consumer group stopped")

// abortableDialer dials a consumer group's connections and can close them
// all, to cut short a request waiting at the coordinator.
type abortableDialer struct {
	mu      sync.Mutex
	conns   map[*abortableConn]struct{}
	aborted bool
}

// kafkaDialer is cluster's Dialer dialing through d.
func (d *abortableDialer) kafkaDialer(cluster Cluster) *kafka.Dialer {
	k := cluster.Dialer()
	k.DialFunc = d.dial
	return k
}

func (d *abortableDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	conn, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted {
		conn.Close()
		return nil, errGroupAborted
	}
	if d.conns == nil {
		d.conns = make(map[*abortableConn]struct{})
	}
	ac := &abortableConn{Conn: conn, d: d}
	d.conns[ac] = struct{}{}
	return ac, nil
}

// abort closes every open connection and fails later dials.
func (d *abortableDialer) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.aborted = true
	for ac := range d.conns {
		ac.Conn.Close()
	}
	d.conns = nil
}

type abortableConn struct {
	net.Conn
	d *abortableDialer
}

func (ac *abortableConn) Close() error {
	ac.d.mu.Lock()
	delete(ac.d.conns, ac)
	ac.d.mu.Unlock()
	return ac.Conn.Close()
}

// handlerError marks an error of the Handler, which stops the Consumer, as
// opposed to a group error, which is retried.
type handlerError struct{ err error }

func (e *handlerError) Error() string { return e.err.Error() }

// nextGeneration waits for the group's next generation while serving wake:
// an admin command must not wait for a rebalance or an outage to end.
func (c *Consumer) nextGeneration(ctx context.Context, group *kafka.ConsumerGroup, wake <-chan struct{}) (*kafka.Generation, error) {
	type next struct {
		gen *kafka.Generation
		err error
	}
	done := make(chan next, 1) // the goroutine never blocks: group.Close or ctx ends its Next
	go func() {
		gen, err := group.Next(ctx)
		done <- next{gen, err}
	}()
	for {
		select {
		case n := <-done:
			return n.gen, n.err
		case <-wake:
			if err := c.handler.Checkpoint(nil); err != nil {
				return nil, &handlerError{err}
			}
		}
	}
}

// idle waits for d or ctx while serving wake.
func (c *Consumer) idle(ctx context.Context, d time.Duration, wake <-chan struct{}) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
			return nil
		case <-wake:
			if err := c.handler.Checkpoint(nil); err != nil {
				return err
			}
		}
	}
}

// kafkaError logs kafka-go's internal errors. The group reports expected
// errors (rebalances in progress) through it and the reader retries failing
// fetches silently, so they go to debug, but at most every 10 seconds one is
// logged as a warning: a fetch that keeps failing must not be invisible.
func (c *Consumer) kafkaError(msg string, args ...any) {
	text := fmt.Sprintf(msg, args...)
	now := time.Now().UnixNano()
	outage := c.downSince.Load() != 0 // already logged once by the prober
	if last := c.lastKafkaWarn.Load(); !outage && now-last > int64(10*time.Second) && c.lastKafkaWarn.CompareAndSwap(last, now) {
		c.log.Warn("kafka client error (retrying; repeats are logged at debug)", "err", text)
		return
	}
	c.log.Debug("kafka-go", "msg", text)
}

// generation is the processing state of one group generation.
type generation struct {
	gen      *kafka.Generation
	next     map[partitionKey]int64
	lag      map[partitionKey]prometheus.Gauge
	pending  int                    // events since the last checkpoint
	uncommit bool                   // checkpointed offsets not yet committed to the group
	units    []string               // the units this member owns in the generation (Owner handlers)
	followed []partitionKey         // partitions of the units it follows as a standby
	ends     map[partitionKey]int64 // FollowOnly: where each followed partition ended at the start
	dlq      []kafka.Message
	event    Event // reused for every message: decoding allocates nothing
}

type partitionKey struct {
	topic     string
	partition int
}

// runGeneration consumes the partitions gen assigns until the generation
// ends or ctx is done, then writes the final checkpoint and commits it.
//
// The processing loop runs as one of the generation's functions (gen.Start):
// kafka-go keeps the coordinator connection open, and does not rejoin the
// group, until every such function has returned. So the final checkpoint and
// its commit complete before the rebalance can, and the next owner of a
// partition resumes exactly where this instance stopped.
func (c *Consumer) runGeneration(ctx context.Context, gen *kafka.Generation, wake <-chan struct{}) error {
	g := &generation{gen: gen, next: make(map[partitionKey]int64), lag: make(map[partitionKey]prometheus.Gauge)}
	defer c.releaseGauges(g)
	if c.units != nil {
		return c.runOwnedGeneration(ctx, g, wake)
	}
	msgs := make(chan kafka.Message, 4096)
	c.startFetchers(g, msgs)
	result := make(chan error, 1)
	gen.Start(func(gctx context.Context) { result <- c.consume(ctx, gctx, g, msgs, wake) })
	return <-result
}

// startFetchers starts one fetcher per partition of the generation, each
// from the partition's start offset.
func (c *Consumer) startFetchers(g *generation, msgs chan<- kafka.Message) {
	gen := g.gen
	assigned := 0
	for topic, assignments := range gen.Assignments {
		stored := c.handler.NextOffsets(topic)
		for _, a := range assignments {
			start, source := c.startOffset(stored, a)
			key := partitionKey{topic, a.ID}
			g.lag[key] = c.metrics.lag.WithLabelValues(topic, strconv.Itoa(a.ID))
			c.log.Info("partition assigned", "topic", topic, "partition", a.ID, "offset", start, "from", source, "generation", gen.ID)
			gen.Start(func(gctx context.Context) { c.fetch(gctx, topic, a.ID, start, msgs) })
			assigned++
		}
	}
	c.metrics.assigned.Set(float64(assigned))
	c.assigned.Store(int64(assigned))
	c.metrics.rebalances.Inc()
}

// releaseGauges removes the lag series of a generation's partitions: once it
// ends they are no longer this instance's, and a stale lag would mislead.
func (c *Consumer) releaseGauges(g *generation) {
	for key := range g.lag {
		c.metrics.lag.DeleteLabelValues(key.topic, strconv.Itoa(key.partition))
	}
	c.metrics.assigned.Set(0)
	c.assigned.Store(0)
}

// consume is the processing loop of one generation; gctx ends with it.
func (c *Consumer) consume(ctx, gctx context.Context, g *generation, msgs <-chan kafka.Message, wake <-chan struct{}) error {
	err := c.consumeLoop(ctx, gctx, g, msgs, wake)
	if errors.Is(err, errPausedOut) || temporary(err) { // the final checkpoint may fail too
		return c.endPaused(ctx, g)
	}
	return err
}

func (c *Consumer) consumeLoop(ctx, gctx context.Context, g *generation, msgs <-chan kafka.Message, wake <-chan struct{}) error {
	ticker := time.NewTicker(c.cfg.CheckpointInterval)
	defer ticker.Stop()
	for {
		// The end of the generation and shutdown come first: messages
		// already buffered from revoked partitions must not be handled.
		// Fetched but unprocessed messages are simply dropped: their
		// offsets were never recorded, so they are fetched again.
		select {
		case <-gctx.Done():
			if g.gen != nil {
				c.log.Info("generation ended; rebalancing", "generation", g.gen.ID)
			}
			return c.handOver(ctx, g)
		case <-ctx.Done():
			return c.handOver(ctx, g)
		default:
		}
		select {
		case <-gctx.Done():
		case <-ctx.Done():
		case <-wake:
			if err := c.checkpointOrPause(ctx, gctx, g, wake); err != nil {
				return err
			}
		case m := <-msgs:
			if err := c.process(g, &m); err != nil {
				return err
			}
			if g.pending >= c.cfg.CheckpointEvery {
				if err := c.checkpointOrPause(ctx, gctx, g, wake); err != nil {
					return err
				}
			}
		case <-ticker.C:
			// Also when idle: the handler may have time-based work (snapshot
			// promotion) and skips the write when nothing changed.
			if err := c.checkpointOrPause(ctx, gctx, g, wake); err != nil {
				return err
			}
		}
	}
}

// startOffset picks where a partition resumes: the handler's stored offset
// (exact for its own state), unless the group's committed offset is further
// along, which means another instance consumed the partition since this one
// last did and already learned those events; else the earliest.
//
// Offsets are committed to Kafka right after each checkpoint, so for a
// restart of the same instance the stored offset is never behind.
func (c *Consumer) startOffset(stored map[int]int64, a kafka.PartitionAssignment) (int64, string) {
	next, ok := stored[a.ID]
	if c.units != nil { // positions come only from state
		switch {
		case ok:
			return next, "state"
		case c.cfg.Start == "latest":
			return kafka.LastOffset, "latest (no state)"
		}
		return kafka.FirstOffset, "earliest (no state)"
	}
	switch {
	case ok && a.Offset > next:
		return a.Offset, "committed by another instance"
	case ok:
		return next, "store"
	case a.Offset >= 0:
		return a.Offset, "committed"
	}
	return kafka.FirstOffset, "earliest"
}

func (c *Consumer) fetch(ctx context.Context, topic string, partition int, start int64, out chan<- kafka.Message) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.cfg.Brokers,
		Dialer:    c.cfg.cluster().Dialer(),
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		// Small enough that a loaded broker sends a fetch well within
		// kafka-go's read deadline (16 MiB fetches timed out forever on a
		// busy machine), large enough for any message the decoder accepts.
		MaxBytes: 2 << 20,
		MaxWait:  c.cfg.MaxWait,
		// Reconnects after broker errors; kafka-go retries internally.
		ErrorLogger: kafka.LoggerFunc(c.kafkaError),
	})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		c.log.Error("cannot seek partition", "topic", topic, "partition", partition, "offset", start, "err", err)
		return
	}
	failing := false
	for {
		m, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			if !failing {
				c.log.Warn("fetch failing; retrying", "topic", topic, "partition", partition, "err", err)
				failing = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		if failing {
			c.log.Info("fetch recovered", "topic", topic, "partition", partition)
			failing = false
		}
		select {
		case out <- m:
		case <-ctx.Done():
			return
		}
	}
}

// process decodes and handles one message and records its offset.
func (c *Consumer) process(g *generation, m *kafka.Message) error {
	key := partitionKey{m.Topic, m.Partition}
	if next, ok := g.next[key]; ok && m.Offset < next {
		return nil // already handled: a fetcher restarted behind us
	}
	c.consumed.Add(1)
	c.metrics.consumed.WithLabelValues(m.Topic).Inc()
	if gauge := g.lag[key]; gauge != nil && m.HighWaterMark > 0 {
		gauge.Set(float64(m.HighWaterMark - m.Offset - 1))
	}
	if slices.Contains(c.cfg.LabelTopics, m.Topic) {
		if err := c.processLabel(g, m); err != nil {
			return err
		}
		g.next[key] = m.Offset + 1
		g.pending++
		return nil
	}
	ev := &g.event
	if err := c.decoder.DecodeMessage(m, ev); err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			return err
		}
		c.deadLetter(g, m, string(de.Reason), de.Detail)
	} else {
		if err := c.handler.Handle(m.Topic, ev); err != nil {
			var rej Rejection
			if !errors.As(err, &rej) {
				return err
			}
			c.deadLetter(g, m, rej.RejectReason(), rej.Error())
		}
	}
	g.next[key] = m.Offset + 1
	g.pending++
	if g.ends != nil && !c.caughtUp.Load() && g.reachedEnds() {
		c.caughtUp.Store(true)
		c.log.Info("caught up with the followed topics", "partitions", len(g.ends))
	}
	return nil
}

// processLabel decodes and hands over one delayed label.
func (c *Consumer) processLabel(g *generation, m *kafka.Message) error {
	var l Label
	if err := c.decoder.DecodeLabel(m.Value, &l); err != nil {
		var de *DecodeError
		if !errors.As(err, &de) {
			return err
		}
		c.deadLetter(g, m, string(de.Reason), de.Detail)
		return nil
	}
	if err := c.handler.HandleLabel(m.Topic, &l); err != nil {
		var rej Rejection
		if !errors.As(err, &rej) {
			return err
		}
		c.deadLetter(g, m, rej.RejectReason(), rej.Error())
	}
	return nil
}

// maxDeadLetterValue bounds the copy of an event a dead letter carries: a
// dead-letter topic has Kafka's default 1 MB message limit, and a poison
// message (10 MB, say) must not stop the consumer. A longer value is cut and
// the dead letter says so; the whole event stays in its source topic at the
// offset the headers give.
const maxDeadLetterValue = 256 << 10

func (c *Consumer) deadLetter(g *generation, m *kafka.Message, reason, detail string) {
	c.deadLettered.Add(1)
	c.metrics.deadLettered.WithLabelValues(m.Topic, reason).Inc()
	value := m.Value
	var extra []kafka.Header
	if len(value) > maxDeadLetterValue {
		value = value[:maxDeadLetterValue]
		extra = append(extra, kafka.Header{Key: "eddy-truncated-from", Value: []byte(strconv.Itoa(len(m.Value)))})
	}
	g.dlq = append(g.dlq, kafka.Message{
		Topic: m.Topic + c.cfg.DeadLetterSuffix,
		Key:   m.Key,
		Value: value,
		Headers: append(extra, []kafka.Header{
			{Key: "eddy-reason", Value: []byte(reason)},
			{Key: "eddy-detail", Value: []byte(detail)},
			{Key: "eddy-source-topic", Value: []byte(m.Topic)},
			{Key: "eddy-source-partition", Value: []byte(strconv.Itoa(m.Partition))},
			{Key: "eddy-source-offset", Value: []byte(strconv.FormatInt(m.Offset, 10))},
		}...),
	})
}

// writeDeadLetters writes the dead letters of a checkpoint before it
// stores anything: a failure is a *DeadLetterError, Temporary, so the
// consumer pauses (nothing is stored, nothing lost) and tries again. While
// running, a write waits at most 10 s and ends with ctx; at shutdown (ctx
// done) it still gets 2 s, so that a dead-letter topic that cannot be
// written does not hold up a stop.
func (c *Consumer) writeDeadLetters(ctx context.Context, msgs []kafka.Message) error {
	var dctx context.Context
	var cancel context.CancelFunc
	if ctx.Err() == nil {
		dctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	} else {
		dctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	}
	defer cancel()
	if err := c.dlq.WriteMessages(dctx, msgs...); err != nil {
		topics := make([]string, 0, 1)
		for _, m := range msgs {
			if !slices.Contains(topics, m.Topic) {
				topics = append(topics, m.Topic)
			}
		}
		return &DeadLetterError{Count: len(msgs), Topics: topics, Err: err}
	}
	return nil
}

// DeadLetterError is a checkpoint that could not write its dead letters.
// It is Temporary: the consumer pauses and retries, and stores nothing
// until they are written.
type DeadLetterError struct {
	Count  int
	Topics []string
	Err    error
}

func (e *DeadLetterError) Error() string {
	return fmt.Sprintf("stream: cannot write %d dead letters to %s: %v; learning waits until they are written (check that the topic exists and that eddy may write to it)",
		e.Count, strings.Join(e.Topics, ", "), e.Err)
}

func (e *DeadLetterError) Unwrap() error   { return e.Err }
func (e *DeadLetterError) Temporary() bool { return true }

// checkpoint flushes dead letters, then has the handler store its state with
// the next offsets, then commits those offsets to Kafka (advisory).
func (c *Consumer) checkpoint(ctx context.Context, g *generation) error {
	return c.checkpointFinal(ctx, g, false)
}

// checkpointFinal is checkpoint; final (the generation or the consumer
// ends) also exports every owned unit whatever StateInterval says.
func (c *Consumer) checkpointFinal(ctx context.Context, g *generation, final bool) error {
	// Shutdown cancels ctx, but the final checkpoint must still complete.
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if len(g.dlq) > 0 {
		if err := c.writeDeadLetters(ctx, g.dlq); err != nil {
			return err
		}
		g.dlq = g.dlq[:0]
	}
	offsets := make([]Offset, 0, len(g.next))
	for key, next := range g.next {
		offsets = append(offsets, Offset{Topic: key.topic, Partition: key.partition, Next: next})
	}
	if err := c.handler.Checkpoint(offsets); err != nil {
		return err
	}
	if c.units != nil {
		c.units.export(wctx, g, final)
	}
	if g.pending > 0 {
		c.checkpoints.Add(1)
		g.pending = 0
		g.uncommit = true
	}
	if !g.uncommit || g.gen == nil {
		return nil // idle tick, or no group: nothing to commit
	}
	commit := make(map[string]map[int]int64)
	for _, o := range offsets {
		if slices.Contains(g.followed, partitionKey{o.Topic, o.Partition}) {
			continue // its owner's to commit
		}
		if commit[o.Topic] == nil {
			commit[o.Topic] = make(map[int]int64)
		}
		commit[o.Topic][o.Partition] = o.Next
	}
	if err := g.gen.CommitOffsets(commit); err != nil {
		// The stored offsets stay exact; the group's committed offsets lag
		// behind until the next commit succeeds.
		c.metrics.commitFailures.Inc()
		c.log.Warn("offset commit to the group failed; state is checkpointed, the commit is retried at the next checkpoint",
			"generation", g.gen.ID, "err", err)
		return nil
	}
	g.uncommit = false
	return nil
}
