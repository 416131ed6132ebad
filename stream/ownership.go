package stream

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// Owner is a Handler whose state is split into units that move between the
// members of the group: the Consumer assigns every partition of a unit's
// topics to one member (UnitBalancer), hands the unit's newest exported
// state to the member that takes it over, and exports it again
// periodically and whenever ownership ends. Positions then come only from
// the handler's state (NextOffsets); the group's committed offsets are
// advisory.
//
// The Consumer calls these methods from the goroutine that calls the
// Handler's.
type Owner interface {
	Handler
	// Units returns the handler's units. At the start every unit counts as
	// held (in memory, restored from local state); the first generation
	// acquires the assigned ones and relinquishes the others.
	Units() []Unit
	// Acquire makes the handler the owner of unit in epoch, a number above
	// any epoch the unit's states carry so far (the handler may raise it
	// further): it keeps the newer of its local state and remote (the
	// newest exported state; nil if none), by (Epoch, Seq).
	Acquire(unit string, remote *Checkpoint, epoch uint64) error
	// Export returns the unit's state as of the last Checkpoint, with the
	// epoch it holds it in and the sequence of that checkpoint.
	Export(unit string) (*Checkpoint, error)
	// Relinquish frees a unit another member owns now; it was checkpointed
	// and exported when its generation ended.
	Relinquish(unit string) error
	// Follow holds a Standby unit this member does not own: the handler
	// keeps the newer of its local state and remote, then gets the unit's
	// events like its owner, from its own positions, to keep its entity
	// histories current for serving.
	Follow(unit string, remote *Checkpoint) error
}

// ownership is the Consumer's part for an Owner handler.
type ownership struct {
	c        *Consumer
	owner    Owner
	balancer *UnitBalancer
	state    *StateLog // nil without ConsumerConfig.StateTopic
	metrics  *ownershipMetrics

	units      []Unit
	held       map[string]bool // units in the handler's memory
	acquired   map[string]bool // units acquired since Run started
	following  map[string]bool // Standby units followed, not owned
	client     *kafka.Client   // partition metadata of followed units
	exported   map[string][2]uint64
	lastExport time.Time
	failing    bool // exports are failing; logged once per streak
}

func newOwnership(c *Consumer, owner Owner) (*ownership, error) {
	units := owner.Units()
	o := &ownership{
		c:         c,
		owner:     owner,
		balancer:  NewUnitBalancer(units, c.log),
		metrics:   newOwnershipMetrics(c.metrics.reg),
		units:     units,
		held:      make(map[string]bool),
		acquired:  make(map[string]bool),
		following: make(map[string]bool),
		exported:  make(map[string][2]uint64),
		client:    c.cfg.cluster().client(10 * time.Second),
	}
	for _, u := range units {
		o.held[u.Name] = true
	}
	if c.cfg.StateTopic != "" {
		state, err := NewStateLog(StateLogConfig{Brokers: c.cfg.Brokers, TLS: c.cfg.TLS, SASL: c.cfg.SASL, Topic: c.cfg.StateTopic}, c.log)
		if err != nil {
			return nil, err
		}
		o.state = state
	}
	return o, nil
}

func (o *ownership) close() {
	if o.state != nil {
		o.state.Close()
	}
}

// runOwnedGeneration takes over the units the generation assigns, then
// consumes their partitions from the positions their state holds. All of
// it runs inside the generation (gen.Start), so that it ends with it.
func (c *Consumer) runOwnedGeneration(ctx context.Context, g *generation, wake <-chan struct{}) error {
	result := make(chan error, 1)
	g.gen.Start(func(gctx context.Context) {
		if err := c.units.take(ctx, gctx, g); err != nil {
			result <- err
			return
		}
		if gctx.Err() != nil || ctx.Err() != nil {
			result <- nil
			return
		}
		msgs := make(chan kafka.Message, 4096)
		c.startFetchers(g, msgs)
		if err := c.startFollowers(gctx, g, msgs); err != nil {
			c.log.Warn("cannot follow the standby units this generation; serving them from their last state", "err", err)
		}
		result <- c.consume(ctx, gctx, g, msgs, wake)
	})
	return <-result
}

// startFollowers starts a fetcher for every partition of the units this
// member follows, from the handler's positions (the earliest offset
// without one). They run within the generation, like the owned partitions'.
func (c *Consumer) startFollowers(gctx context.Context, g *generation, msgs chan<- kafka.Message) error {
	parts, err := c.units.followedPartitions(gctx)
	if err != nil {
		return err
	}
	for topic, ids := range parts {
		stored := c.handler.NextOffsets(topic)
		for _, id := range ids {
			start, ok := stored[id]
			if !ok {
				start = kafka.FirstOffset
			}
			g.followed = append(g.followed, partitionKey{topic, id})
			g.gen.Start(func(ctx context.Context) { c.fetch(ctx, topic, id, start, msgs) })
		}
	}
	if len(g.followed) > 0 {
		c.log.Info("following standby units", "partitions", len(g.followed), "generation", g.gen.ID)
	}
	return nil
}

// take relinquishes the units this member no longer owns and acquires the
// ones it owns anew, each from the newer of its local state and the newest
// exported one, and exports each acquired unit at once: that claims its
// epoch, so that whatever an earlier owner still writes is older.
func (o *ownership) take(ctx, gctx context.Context, g *generation) error {
	g.units = o.balancer.Joined(g.gen)
	// What this member found when it last led the group's assignment.
	o.metrics.mismatches.Set(float64(len(o.balancer.Mismatches())))
	owned := make(map[string]bool, len(g.units))
	for _, u := range g.units {
		owned[u] = true
	}
	for u := range o.held {
		if owned[u] || o.following[u] {
			continue
		}
		delete(o.acquired, u)
		delete(o.exported, u)
		o.metrics.owned.WithLabelValues(u).Set(0)
		if o.standby(u) {
			if err := o.owner.Follow(u, nil); err != nil { // its final checkpoint is local: keep it
				return err
			}
			o.following[u] = true
			continue
		}
		if err := o.owner.Relinquish(u); err != nil {
			return err
		}
		delete(o.held, u)
	}
	if err := o.follow(ctx, gctx, owned); err != nil {
		return err
	}
	for _, u := range g.units {
		if o.acquired[u] {
			continue
		}
		start := time.Now()
		remote, maxEpoch, err := o.read(ctx, gctx, u)
		if err != nil || gctx.Err() != nil || ctx.Err() != nil {
			return err
		}
		if err := o.owner.Acquire(u, remote, max(uint64(g.gen.ID), maxEpoch+1)); err != nil {
			return err
		}
		o.held[u], o.acquired[u] = true, true
		delete(o.following, u)
		o.metrics.owned.WithLabelValues(u).Set(1)
		if o.state != nil {
			o.exportUnit(gctx, u)
		}
		source := "no exported state"
		if remote != nil {
			source = fmt.Sprintf("exported state epoch %d seq %d (%d bytes)", remote.Epoch, remote.Seq, len(remote.Data))
		}
		o.c.log.Info("unit taken over", "unit", u, "generation", g.gen.ID, "remote", source, "seconds", time.Since(start).Seconds())
		o.metrics.takeover.Observe(time.Since(start).Seconds())
	}
	return nil
}

// standby reports whether unit is followed where it is not owned.
func (o *ownership) standby(unit string) bool {
	for _, u := range o.units {
		if u.Name == unit {
			return u.Standby
		}
	}
	return false
}

// follow makes the handler follow every Standby unit not in owned that it
// does not follow yet, from the newer of its local and its exported state.
func (o *ownership) follow(ctx, gctx context.Context, owned map[string]bool) error {
	for _, u := range o.units {
		if !u.Standby || owned[u.Name] || o.following[u.Name] {
			continue
		}
		remote, _, err := o.read(ctx, gctx, u.Name)
		if err != nil || gctx.Err() != nil || ctx.Err() != nil {
			return err
		}
		if err := o.owner.Follow(u.Name, remote); err != nil {
			return err
		}
		o.held[u.Name], o.following[u.Name] = true, true
	}
	return nil
}

// followedPartitions returns the partitions of the topics of the units
// followed, by topic.
func (o *ownership) followedPartitions(ctx context.Context) (map[string][]int, error) {
	var topics []string
	for _, u := range o.units {
		if o.following[u.Name] {
			topics = append(topics, u.Topics...)
		}
	}
	out := make(map[string][]int)
	if len(topics) == 0 {
		return out, nil
	}
	md, err := o.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("stream: partitions of the followed topics: %w", err)
	}
	for _, t := range md.Topics {
		if t.Error != nil {
			continue // not created yet: followed once it exists and the group rebalances
		}
		for _, p := range t.Partitions {
			out[t.Name] = append(out[t.Name], p.ID)
		}
	}
	return out, nil
}

// read returns the newest exported state of unit, retrying every second
// while the broker fails; nil without a state topic.
func (o *ownership) read(ctx, gctx context.Context, unit string) (*Checkpoint, uint64, error) {
	if o.state == nil {
		return nil, 0, nil
	}
	for {
		cp, maxEpoch, err := o.state.Read(gctx, unit)
		if err == nil {
			return cp, maxEpoch, nil
		}
		if gctx.Err() != nil || ctx.Err() != nil {
			return nil, 0, nil
		}
		o.c.log.Warn("reading the unit's exported state failed; retrying", "unit", unit, "err", err)
		select {
		case <-gctx.Done():
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// export writes the state of every unit the generation owns to the state
// topic, if StateInterval has passed since the last export or final is
// set (ownership ends), and the unit changed since its last export.
// Failures are logged and counted, never fatal: the local state stands, and
// a new owner replays from the older exported state's own offsets.
func (o *ownership) export(ctx context.Context, g *generation, final bool) {
	if o.state == nil || !final && time.Since(o.lastExport) < o.c.cfg.StateInterval {
		return
	}
	if since, _ := o.c.BrokerDownSince(); !since.IsZero() {
		// No broker: the write could only time out, holding up the
		// consumer (and the admin commands it serves). The local state
		// stands; the next checkpoint after the outage exports.
		return
	}
	o.lastExport = time.Now()
	timeout := exportTimeout
	if final {
		timeout = finalExportTimeout
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, u := range g.units {
		o.exportUnit(ectx, u)
	}
}

// Bounds on exports: a periodic one may take its time; the one that hands
// a unit over runs while the group waits and shutdown must stay within 5s.
const (
	exportTimeout      = 10 * time.Second
	finalExportTimeout = 3 * time.Second
)

func (o *ownership) exportUnit(ctx context.Context, unit string) {
	cp, err := o.owner.Export(unit)
	if err != nil {
		o.exportFailed(unit, err)
		return
	}
	position := [2]uint64{cp.Epoch, cp.Seq}
	if o.exported[unit] == position {
		return // unchanged since its last export
	}
	start := time.Now()
	cp.Unit = unit
	if err := o.state.Write(ctx, *cp); err != nil {
		o.exportFailed(unit, err)
		return
	}
	o.exported[unit] = position
	o.metrics.exports.WithLabelValues("ok").Inc()
	o.metrics.exportBytes.WithLabelValues(unit).Set(float64(len(cp.Data)))
	o.metrics.exportSeconds.Observe(time.Since(start).Seconds())
	if o.failing {
		o.failing = false
		o.c.log.Info("exporting unit state works again", "unit", unit)
	}
}

func (o *ownership) exportFailed(unit string, err error) {
	o.metrics.exports.WithLabelValues("failed").Inc()
	if errors.Is(err, context.Canceled) || o.failing {
		o.c.log.Debug("export of unit state failed", "unit", unit, "err", err)
		return
	}
	o.failing = true
	o.c.log.Warn("export of unit state to the state topic failed; the local state stands, the export is retried at the next interval",
		"unit", unit, "topic", o.c.cfg.StateTopic, "err", err)
}

// handOver writes the final checkpoint of a generation and, for an Owner,
// exports every owned unit, so that the next owner continues exactly where
// this one stopped; then it commits the offsets (advisory).
func (c *Consumer) handOver(ctx context.Context, g *generation) error {
	return c.checkpointFinal(ctx, g, true)
}

type ownershipMetrics struct {
	mismatches    prometheus.Gauge
	owned         *prometheus.GaugeVec
	exports       *prometheus.CounterVec
	exportBytes   *prometheus.GaugeVec
	exportSeconds prometheus.Histogram
	takeover      prometheus.Histogram
}

func newOwnershipMetrics(reg prometheus.Registerer) *ownershipMetrics {
	m := &ownershipMetrics{
		mismatches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eddy_group_config_mismatches",
			Help: "Conflicts this instance found when it last assigned the group's units as leader: units whose members declare different model configurations (such members are given none of them; the log names them).",
		}),
		owned: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_unit_owned",
			Help: "1 for each unit (models sharing topics) this instance learns, 0 for one it learned and handed over.",
		}, []string{"unit"}),
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_state_exports_total",
			Help: "Exports of a unit's state to the state topic, by result (ok, failed).",
		}, []string{"result"}),
		exportBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_state_export_bytes",
			Help: "Size of the newest exported state of each unit this instance learns.",
		}, []string{"unit"}),
		exportSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eddy_state_export_seconds",
			Help:    "Time to write one unit's state to the state topic.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		takeover: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eddy_unit_takeover_seconds",
			Help:    "Time to take a unit over: read its exported state, restore it, export the claim.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
	}
	reg.MustRegister(m.mismatches, m.owned, m.exports, m.exportBytes, m.exportSeconds, m.takeover)
	return m
}

// runFollower is Run with FollowOnly: it follows every Standby unit and
// feeds its events to the handler until ctx ends, checkpointing locally.
func (c *Consumer) runFollower(ctx context.Context) error {
	o := c.units
	for u := range o.held {
		if !o.standby(u) {
			if err := o.owner.Relinquish(u); err != nil {
				return err
			}
			delete(o.held, u)
		}
	}
	c.log.Info("following the models' topics for serving; joining no group", "units", len(o.units))
	var parts map[string][]int
	for {
		err := o.follow(ctx, ctx, nil)
		if err == nil {
			parts, err = o.followedPartitions(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			break
		}
		c.log.Warn("cannot start following; retrying in a second", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	g := &generation{next: make(map[partitionKey]int64), lag: make(map[partitionKey]prometheus.Gauge), ends: make(map[partitionKey]int64)}
	defer c.releaseGauges(g)
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	msgs := make(chan kafka.Message, 4096)
	var fetchers sync.WaitGroup
	defer fetchers.Wait()
	defer stop()
	for topic, ids := range parts {
		stored := c.handler.NextOffsets(topic)
		ends, err := o.endOffsets(ctx, topic, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			key := partitionKey{topic, id}
			start, ok := stored[id]
			if !ok {
				start = kafka.FirstOffset
			}
			if ends[id] > max(start, 0) {
				g.ends[key] = ends[id]
			}
			g.lag[key] = c.metrics.lag.WithLabelValues(topic, strconv.Itoa(id))
			g.followed = append(g.followed, key)
			fetchers.Go(func() { c.fetch(fctx, topic, id, start, msgs) })
		}
	}
	if len(g.ends) == 0 {
		c.caughtUp.Store(true)
	}
	var wake <-chan struct{}
	if w, ok := c.handler.(Waker); ok {
		wake = w.Wake()
	}
	return c.consume(ctx, fctx, g, msgs, wake)
}

// endOffsets returns the high watermark of each partition of topic.
func (o *ownership) endOffsets(ctx context.Context, topic string, ids []int) (map[int]int64, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, id := range ids {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(id))
	}
	resp, err := o.client.ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("stream: end offsets of %s: %w", topic, err)
	}
	out := make(map[int]int64)
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			return nil, fmt.Errorf("stream: end offset of %s/%d: %w", topic, p.Partition, p.Error)
		}
		out[p.Partition] = p.LastOffset
	}
	return out, nil
}

// reachedEnds reports whether every partition with an end to reach has.
func (g *generation) reachedEnds() bool {
	for key, end := range g.ends {
		if g.next[key] < end {
			return false
		}
	}
	return true
}

// CaughtUp reports, for a FollowOnly consumer, whether it has once handled
// every event that was in the followed topics when it started (true at once
// when there was none); for a group member, true. Safe for concurrent use.
func (c *Consumer) CaughtUp() bool { return !c.cfg.FollowOnly || c.caughtUp.Load() }

// EnsureStateTopic creates topic, as a StateLog with the default chunk size
// needs it, if it does not exist, with replicationFactor replicas (0: the
// broker's default). Then it checks the topic's configuration and returns
// what is wrong with an existing one, each with the fix: a state topic must
// be compacted (with cleanup.policy=delete, retention deletes checkpoints
// and a new owner may find none) and accept messages of MaxMessageBytes.
func EnsureStateTopic(ctx context.Context, cluster Cluster, topic string, replicationFactor int) (problems []string, err error) {
	cfg := StateLogConfig{Brokers: cluster.Brokers, TLS: cluster.TLS, SASL: cluster.SASL, Topic: topic}
	cfg.EnsureDefaults()
	want := cfg.MaxMessageBytes()
	err = cluster.EnsureTopics(ctx, []TopicSpec{{
		Name: topic, Partitions: 1, ReplicationFactor: replicationFactor,
		Configs: map[string]string{"cleanup.policy": "compact", "max.message.bytes": strconv.Itoa(want)},
	}})
	if err != nil {
		return nil, fmt.Errorf("stream: state topic %s: %w", topic, err)
	}
	configs, err := cluster.TopicConfigs(ctx, topic)
	if err != nil {
		return nil, err
	}
	if policy, ok := configs["cleanup.policy"]; ok && !strings.Contains(policy, "compact") {
		problems = append(problems, fmt.Sprintf("topic %s has cleanup.policy=%s: it must be compacted, or retention deletes checkpoints and a new owner may find none; "+
			"fix: kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config cleanup.policy=compact", topic, policy, topic))
	}
	if v, ok := configs["max.message.bytes"]; ok {
		if n, err := strconv.Atoi(v); err == nil && n < want {
			problems = append(problems, fmt.Sprintf("topic %s has max.message.bytes=%d, below the %d a state chunk needs: exports will fail; "+
				"fix: kafka-configs.sh --alter --entity-type topics --entity-name %s --add-config max.message.bytes=%d", topic, n, want, topic, want))
		}
	}
	return problems, nil
}
