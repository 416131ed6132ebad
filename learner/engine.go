package learner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/features"
)

// Offset is the next offset to consume from one partition.
type Offset struct {
	TopicPartition
	Next int64
}

// Engine learns a set of models from examples and checkpoints them. See the
// package documentation for its guarantees. Create it with NewEngine.
type Engine struct {
	cfg      EngineConfig
	store    *Store
	models   []*Model
	byTopic  map[string][]*Model
	handles  map[*Model]modelMetrics
	snapped  map[*Model]uint64 // learned count at the newest snapshot
	offsets  map[TopicPartition]int64
	publish  func(*Snapshot)
	metrics  *engineMetrics
	log      *slog.Logger
	now      func() time.Time
	promoted time.Time
	dirty    bool // some model changed since the last checkpoint
	buf      []byte

	pos      position          // of the event being processed, for detection records
	keyBuf   []byte            // the entity key of the event being processed (owned: never the event's bytes)
	pendings map[*Model]string // promotion reasons decided between checkpoints
	admin    chan adminRequest // admin commands, run on the engine's goroutine
	wake     chan struct{}     // signals the consumer that admin commands wait
	answers  []adminAnswer     // commands run, answered once the next checkpoint is durable

	kept        map[*Model][]keptSnapshot // stored snapshots per model, oldest first
	maxRetained int                       // MaxRetained; lowered by tests
}

// position is where the event being processed came from.
type position struct {
	partition int
	offset    int64
	key       []byte // entity key, for per-entity history
	id        []byte // event id, for delayed labels
	at        time.Time
}

// NewEngine restores the configured models, offsets and newest snapshots from
// store, publishes each model's newest snapshot, and returns an Engine ready
// to learn. publish is called with every snapshot that becomes the served one,
// after it is durable. Metrics are registered with reg.
func NewEngine(cfg EngineConfig, store *Store, publish func(*Snapshot), reg prometheus.Registerer, log *slog.Logger) (*Engine, error) {
	cfg.Models = append([]ModelConfig(nil), cfg.Models...) // never write the caller's slice
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:      cfg,
		store:    store,
		byTopic:  make(map[string][]*Model),
		handles:  make(map[*Model]modelMetrics),
		snapped:  make(map[*Model]uint64),
		pendings: make(map[*Model]string),
		admin:    make(chan adminRequest, 16),
		wake:     make(chan struct{}, 1),
		kept:     make(map[*Model][]keptSnapshot),
		publish:  publish,
		metrics:  newEngineMetrics(reg),
		log:      log.With("component", "learner"),
		now:      time.Now,

		maxRetained: MaxRetained,
	}
	for _, mc := range cfg.Models {
		m, err := e.restore(mc)
		if err != nil {
			return nil, err
		}
		e.models = append(e.models, m)
		e.byTopic[mc.Topic] = append(e.byTopic[mc.Topic], m)
		e.handles[m] = e.metrics.forModel(mc.Name)
		if m.hist != nil {
			m.hist.SetClock(func() time.Time { return e.now() })
		}
		e.metrics.observe(m)
	}
	offsets, err := store.Offsets()
	if err != nil {
		return nil, err
	}
	e.offsets = offsets
	e.promoted = e.now()
	return e, nil
}

// restore loads one model and its monitor and publishes its champion (the
// snapshot it served when it stopped), if any.
func (e *Engine) restore(mc ModelConfig) (*Model, error) {
	mon, err := newMonitor(mc, e.cfg.RollingWindow)
	if err != nil {
		return nil, err
	}
	data, ok, err := e.store.get(modelKey(mc.Name))
	if err != nil {
		return nil, err
	}
	if !ok {
		e.log.Info("new model", "model", mc.Name, "task", mc.Task, "topic", mc.Topic, "drift_detector", mc.Drift.Detector)
		m := newModel(mc, e.cfg.RollingWindow)
		m.mon = mon
		if mc.LabelsTopic != "" {
			m.pending = newPendingSet()
		}
		return m, nil
	}
	m, _, err := decodeState(mc, e.cfg.RollingWindow, data)
	if err != nil {
		return nil, err
	}
	m.mon = mon
	if err := e.loadHistory(m); err != nil {
		return nil, err
	}
	if err := e.loadPending(m); err != nil {
		return nil, err
	}
	champion := m.version
	if blob, ok, err := e.store.get(monitorKey(mc.Name)); err != nil {
		return nil, err
	} else if ok {
		if champion, err = mon.decode(mc, e.cfg.RollingWindow, blob); err != nil {
			return nil, err
		}
		if mon.fresh != nil {
			mon.fresh.hist = m.hist
		}
	}
	if err := e.loadRetained(m); err != nil {
		return nil, err
	}
	e.log.Info("model restored", "model", mc.Name, "learned", m.learned, "newest_version", m.version, "champion", champion, "pinned", mon.pinned)
	if m.version > 0 {
		newest, err := e.Snapshot(mc.Name, m.version)
		if err != nil {
			return nil, err
		}
		e.snapped[m] = newest.Learned()
	}
	if champion > 0 {
		snap, err := e.Snapshot(mc.Name, champion)
		if err != nil {
			return nil, err
		}
		snap.hist = m.hist
		mon.champion = snap // not setChampion: the detector state is restored as it was
		e.publish(snap)
	}
	return m, nil
}

// Topics returns the topics the models learn from.
func (e *Engine) Topics() []string {
	var topics []string
	for _, mc := range e.cfg.Models {
		if len(topics) == 0 || !contains(topics, mc.Topic) {
			topics = append(topics, mc.Topic)
		}
	}
	return topics
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// NextOffsets returns the stored next offset of each known partition of
// topic: where consumption must resume so that nothing is learned twice or
// skipped.
func (e *Engine) NextOffsets(topic string) map[int]int64 {
	out := make(map[int]int64)
	for tp, next := range e.offsets {
		if tp.Topic == topic {
			out[tp.Partition] = next
		}
	}
	return out
}

// Models returns the live models, in configuration order.
func (e *Engine) Models() []*Model { return e.models }

// At records where the next event comes from (for drift detection records)
// and its entity key (for windows, lags and target aggregates). key is read
// during the next Process only.
func (e *Engine) At(partition int, offset int64, key []byte) {
	e.pos = position{partition: partition, offset: offset, key: key}
}

// WithEvent records the id of the next event, whose label may arrive later
// on a labels topic, and its event time, for time windows. id is read during
// the next Process only.
func (e *Engine) WithEvent(id []byte, at time.Time) { e.pos.id, e.pos.at = id, at }

// Process hands one event from topic to every model that learns from it. With
// a label, each model predicts, is scored and learns (LearnOne), and its
// champion and challengers are scored on it too; without one, each model
// only predicts. If a model rejects the example, Process still offers it to
// the others and returns the first *RejectError.
func (e *Engine) Process(topic string, fields []features.Field, label float64, hasLabel bool) error {
	e.runAdmin()
	var first error
	for _, m := range e.byTopic[topic] {
		h := e.handles[m]
		key := e.pos.key
		if m.hist != nil {
			e.keyBuf = features.EntityKey(m.cfg.Features.Key, fields, e.pos.key, e.keyBuf)
			key = e.keyBuf
		}
		all := m.withHistory(key, e.pos.at, fields)
		if !hasLabel {
			m.tr.Transform(all, &m.vec)
			score, predicted := m.lin.predict(&m.vec)
			if m.pending != nil && len(e.pos.id) > 0 {
				m.pending.put(string(e.pos.id), &pendingEvent{key: append([]byte(nil), key...), fields: copyFields(all),
					score: score, predicted: predicted, at: e.now()})
				e.dirty = true
			}
			if m.hist != nil {
				m.hist.Observe(key, e.pos.at, fields, 0, false)
				e.dirty = true
			}
			h.unlabeled.Inc()
			continue
		}
		if _, err := m.LearnOne(all, label); err != nil {
			var rej *RejectError
			if errors.As(err, &rej) {
				e.metrics.rejected.WithLabelValues(m.cfg.Name, rej.Reason).Inc()
			}
			if first == nil {
				first = err
			}
			continue
		}
		h.learned.Inc()
		e.dirty = true
		e.watch(m, all, label)
		if m.hist != nil { // after everything that reads the history of this event
			m.hist.Observe(key, e.pos.at, fields, label, true)
		}
	}
	return first
}

// Label learns, for every model whose labels topic is topic, the waiting
// event id with label y, scored with the prediction made when the event
// arrived. A label for no waiting event (unknown, already learned, expired)
// is rejected with ReasonUnknownID: nothing is ever learned twice.
func (e *Engine) Label(topic string, id []byte, y float64) error {
	e.runAdmin()
	var first error
	matched := false
	for _, m := range e.models {
		if m.pending == nil || m.cfg.LabelsTopic != topic {
			continue
		}
		p := m.pending.take(string(id))
		if p == nil {
			continue
		}
		matched = true
		e.dirty = true
		if err := m.learnDelayed(p.fields, y, p.score, p.predicted); err != nil {
			var rej *RejectError
			if errors.As(err, &rej) {
				e.metrics.rejected.WithLabelValues(m.cfg.Name, rej.Reason).Inc()
			}
			if first == nil {
				first = err
			}
			continue
		}
		e.handles[m].learned.Inc()
		e.metrics.delayed.WithLabelValues(m.cfg.Name).Inc()
		if m.hist != nil {
			m.hist.Observe(p.key, time.Time{}, nil, y, true)
		}
	}
	if !matched && first == nil {
		return reject(ReasonUnknownID, "no event %q waits for a label on %s (never seen, already labeled, or expired)", id, topic)
	}
	return first
}

// LabelTopics returns the labels topics of the models.
func (e *Engine) LabelTopics() []string {
	var topics []string
	for _, mc := range e.cfg.Models {
		if mc.LabelsTopic != "" && !contains(topics, mc.LabelsTopic) {
			topics = append(topics, mc.LabelsTopic)
		}
	}
	return topics
}

// expiryDue reports whether a model has an event waiting longer than its
// label TTL: a quiet stream must still let waiting events expire.
func (e *Engine) expiryDue(now time.Time) bool {
	for _, m := range e.models {
		if m.pending != nil && m.pending.expiryDue(now, m.cfg.LabelTTL) {
			return true
		}
	}
	return false
}

// writePending adds m's new waiting events and removes its learned and
// expired ones in batch. Expiry looks only at the events past their TTL and
// the oldest one left, not at every event waiting.
func (e *Engine) writePending(batch *pebble.Batch, m *Model, now time.Time) error {
	ps := m.pending
	if expired := ps.expire(now, m.cfg.LabelTTL); expired > 0 {
		e.metrics.expired.WithLabelValues(m.cfg.Name).Add(float64(expired))
	}
	for id := range ps.added {
		e.buf = ps.events[id].appendState(e.buf[:0])
		if err := batch.Set(pendingKey(m.cfg.Name, []byte(id)), e.buf, nil); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	for id := range ps.removed {
		if err := batch.Delete(pendingKey(m.cfg.Name, []byte(id)), nil); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	clear(ps.added)
	clear(ps.removed)
	e.metrics.pending.WithLabelValues(m.cfg.Name).Set(float64(len(ps.events)))
	return nil
}

// loadPending restores m's waiting events.
func (e *Engine) loadPending(m *Model) error {
	if m.cfg.LabelsTopic == "" {
		return nil
	}
	m.pending = newPendingSet()
	prefix := pendingKey(m.cfg.Name, nil)
	return e.store.scan(prefix, func(key, value []byte) error {
		p, err := decodePending(value)
		if err != nil {
			return fmt.Errorf("learner: model %s pending event %q: %w", m.cfg.Name, key[len(prefix):], err)
		}
		m.pending.events[string(key[len(prefix):])] = p
		return nil
	})
}

// watch scores the champion and the challengers of m on a labeled example
// that m has just learned, feeds the drift detector, and decides promotions
// of the post-drift challenger (made durable and published at the next
// checkpoint).
func (e *Engine) watch(m *Model, fields []features.Field, y float64) {
	mon := m.mon
	champErr, ok := mon.scoreChampion(m.cfg.Task, fields, y)
	if !ok {
		return
	}
	mon.live.add(m.lastErr - champErr)
	if mon.fresh != nil {
		if _, err := mon.fresh.LearnOne(fields, y); err == nil {
			mon.freshDiff.add(mon.fresh.lastErr - champErr)
			mon.freshLive.add(mon.fresh.lastErr - m.lastErr)
		}
	}
	if mon.det == nil {
		return
	}
	if mon.det.Update(champErr) {
		e.detected(m)
	}
	// The post-drift challenger must beat the champion and the live model:
	// it replaces both.
	if mon.fresh != nil && mon.beats(&mon.freshDiff) && mon.beats(&mon.freshLive) && e.pendings[m] == "" {
		m.adopt(mon.fresh)
		mon.fresh = nil
		e.pendings[m] = ReasonDrift
	}
}

// detected records a drift detection and starts a fresh challenger that
// learns only from what follows.
func (e *Engine) detected(m *Model) {
	mon := m.mon
	now := e.now()
	mon.detections++
	mon.lastDetection = now
	mon.pending = append(mon.pending, detection{at: now, partition: e.pos.partition, offset: e.pos.offset, summary: mon.summary()})
	mon.fresh = newModel(m.cfg, e.cfg.RollingWindow)
	mon.fresh.hist = m.hist // the entities' history is data, not model: shared
	mon.freshDiff.reset()
	mon.freshLive.reset()
	e.metrics.detections.WithLabelValues(m.cfg.Name, mon.cfg.Detector).Inc()
	e.log.Info("drift detected", "model", m.cfg.Name, "detector", mon.cfg.Detector, "partition", e.pos.partition,
		"offset", e.pos.offset, "state", mon.summary(), "champion", mon.champion.version)
}

// Checkpoint durably writes, in one synced batch, the state of every model
// and the given next offsets (which must reflect exactly the events processed
// so far). If the promotion policy says so, it also creates a snapshot of
// each model that learned since its last one, and publishes it once durable.
// Admin commands waiting (see Wake) run first and are answered once the
// batch that stores them is durable. When nothing changed and no promotion is due, it writes nothing, so
// callers may call it on every tick. An error means the stored state is the
// previous checkpoint; the Engine's
// in-memory state is ahead of it, so the caller must stop and restart from
// the store.
func (e *Engine) Checkpoint(offsets []Offset) (err error) {
	e.runAdmin()
	defer func() { e.answerAdmin(err) }()
	start := e.now()
	periodic := e.promotionDue(start)
	reasons := e.promotions(start, periodic)
	if !e.dirty && !e.offsetsChanged(offsets) && len(reasons) == 0 && !e.expiryDue(start) {
		return nil // nothing to write: idle ticks cost nothing
	}
	batch := e.store.db.NewBatch()
	defer batch.Close()
	var snaps []*Snapshot
	for _, m := range e.models {
		if reason := reasons[m]; reason != "" {
			snap, err := e.addSnapshot(batch, m, start, reason)
			if err != nil {
				return err
			}
			snaps = append(snaps, snap)
		}
		e.buf = m.appendState(e.buf[:0])
		if err := batch.Set(modelKey(m.cfg.Name), e.buf, nil); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
		if err := e.writeMonitor(batch, m, snaps); err != nil {
			return err
		}
		if m.hist != nil {
			err := m.hist.TakeDirty(func(key, value []byte) error { return batch.Set(historyKey(m.cfg.Name, key), value, nil) })
			if err != nil {
				return fmt.Errorf("learner: checkpoint: %w", err)
			}
			evicted, err := m.hist.Evict(func(key []byte) error { return batch.Delete(historyKey(m.cfg.Name, key), nil) })
			if err != nil {
				return fmt.Errorf("learner: checkpoint: %w", err)
			}
			e.metrics.evicted.WithLabelValues(m.cfg.Name).Add(float64(evicted))
			e.metrics.entities.WithLabelValues(m.cfg.Name).Set(float64(m.hist.Entities()))
			e.metrics.observeHistory(m.cfg.Name, m.hist.Late(), m.hist.Future())
		}
		if m.pending != nil {
			if err := e.writePending(batch, m, start); err != nil {
				return err
			}
		}
	}
	for _, o := range offsets {
		if err := batch.Set(offsetKey(o.Topic, o.Partition), binary.BigEndian.AppendUint64(nil, uint64(o.Next)), nil); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	for _, o := range offsets {
		e.offsets[o.TopicPartition] = o.Next
	}
	e.dirty = false
	if periodic {
		e.promoted = start
	}
	for _, m := range e.models {
		m.mon.pending = m.mon.pending[:0]
	}
	for _, s := range snaps {
		e.champion(s, start)
	}
	for _, m := range e.models {
		e.metrics.observe(m)
	}
	e.metrics.checkpoint.Observe(e.now().Sub(start).Seconds())
	return nil
}

// promotions decides which models get a new snapshot at this checkpoint and
// why: a post-drift challenger that won, a model's first snapshot, and then
// either the periodic policy or (with a drift detector) the live model
// beating the champion, checked as often as the periodic policy would run.
func (e *Engine) promotions(now time.Time, periodic bool) map[*Model]string {
	reasons := make(map[*Model]string)
	for _, m := range e.models {
		switch {
		case e.pendings[m] != "":
			reasons[m] = e.pendings[m]
		case m.learned == 0 || m.learned == e.snapped[m] && m.mon.champion != nil:
		case m.mon.champion == nil:
			reasons[m] = ReasonInitial
		case !m.mon.challengers() && periodic:
			reasons[m] = ReasonPeriodic
		case m.mon.challengers() && periodic && m.mon.beats(&m.mon.live):
			reasons[m] = ReasonChallenger
		}
	}
	return reasons
}

// champion makes a durable snapshot the champion and publishes it, unless
// an operator pinned the champion: then the snapshot stays stored, unserved.
// Periodic and challenger promotions serve a newer snapshot of the same
// live model, routinely (every promote interval in the demo), so they are
// logged at debug level; the others change what serves and are logged at
// info.
func (e *Engine) champion(s *Snapshot, now time.Time) {
	m := e.model(s.model)
	delete(e.pendings, m)
	if m.mon.pinned {
		m.mon.lastDetection = time.Time{} // nothing is served for this detection
		e.log.Debug("snapshot stored, not served: the champion is pinned", "model", s.model, "version", s.version,
			"reason", s.reason, "champion", m.mon.champion.version)
		return
	}
	if s.reason == ReasonDrift && !m.mon.lastDetection.IsZero() {
		e.metrics.detectionToServing.WithLabelValues(s.model).Observe(now.Sub(m.mon.lastDetection).Seconds())
		m.mon.lastDetection = time.Time{}
	}
	m.mon.setChampion(s, s.reason == ReasonChallenger || s.reason == ReasonPeriodic)
	e.metrics.promotions.WithLabelValues(s.model, s.reason).Inc()
	level := slog.LevelInfo
	if s.reason == ReasonPeriodic || s.reason == ReasonChallenger {
		level = slog.LevelDebug
	}
	e.log.Log(context.Background(), level, "snapshot promoted", "model", s.model, "version", s.version, "reason", s.reason, "learned", s.learned)
	e.publish(s)
}

// model returns the model named name, or nil.
func (e *Engine) model(name string) *Model {
	for _, m := range e.models {
		if m.cfg.Name == name {
			return m
		}
	}
	return nil
}

// writeMonitor adds m's monitor and its new detection records to batch.
// snaps are the snapshots this checkpoint creates: unless the champion is
// pinned, the stored champion version must be theirs, since they are
// published once the batch commits.
func (e *Engine) writeMonitor(batch *pebble.Batch, m *Model, snaps []*Snapshot) error {
	saved := m.mon.champion
	for _, s := range snaps {
		if s.model == m.cfg.Name && !m.mon.pinned {
			m.mon.champion = s
		}
	}
	e.buf = m.mon.appendState(e.buf[:0])
	m.mon.champion = saved
	if err := batch.Set(monitorKey(m.cfg.Name), e.buf, nil); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	first := m.mon.detections - uint64(len(m.mon.pending))
	for i, d := range m.mon.pending {
		value := fmt.Sprintf("%s partition=%d offset=%d %s", d.at.UTC().Format(time.RFC3339Nano), d.partition, d.offset, d.summary)
		if err := batch.Set(detectionKey(m.cfg.Name, first+uint64(i)+1), []byte(value), nil); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	return nil
}

func (e *Engine) offsetsChanged(offsets []Offset) bool {
	for _, o := range offsets {
		if next, ok := e.offsets[o.TopicPartition]; !ok || next != o.Next {
			return true
		}
	}
	return false
}

// promotionDue reports whether the periodic check is due.
func (e *Engine) promotionDue(now time.Time) bool {
	return now.Sub(e.promoted) >= e.cfg.PromoteInterval
}

// addSnapshot bumps m's version and adds its snapshot and the snapshot's
// info to batch, deleting versions retention no longer keeps.
func (e *Engine) addSnapshot(batch *pebble.Batch, m *Model, now time.Time, reason string) (*Snapshot, error) {
	m.version++
	meta := snapshotMeta{created: now.UTC(), reason: reason}
	if err := batch.Set(snapshotKey(m.cfg.Name, m.version), appendSnapshot(nil, meta, m), nil); err != nil {
		return nil, fmt.Errorf("learner: snapshot: %w", err)
	}
	snap := newSnapshot(m, meta)
	if err := batch.Set(snapshotInfoKey(m.cfg.Name, m.version), appendSnapshotInfo(nil, snap.info()), nil); err != nil {
		return nil, fmt.Errorf("learner: snapshot: %w", err)
	}
	e.kept[m] = append(e.kept[m], keptSnapshot{m.version, meta.created})
	if err := e.retire(batch, m, now); err != nil {
		return nil, err
	}
	e.snapped[m] = m.learned
	return snap, nil
}

// ErrSnapshotNotFound is returned for a snapshot version that is not stored.
var ErrSnapshotNotFound = errors.New("learner: snapshot not found")

// Snapshot loads a stored snapshot of a configured model.
func (e *Engine) Snapshot(model string, version uint64) (*Snapshot, error) {
	var mc *ModelConfig
	for i := range e.cfg.Models {
		if e.cfg.Models[i].Name == model {
			mc = &e.cfg.Models[i]
		}
	}
	if mc == nil {
		return nil, fmt.Errorf("%w: no model named %q", ErrSnapshotNotFound, model)
	}
	data, ok, err := e.store.get(snapshotKey(model, version))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: model %s version %d", ErrSnapshotNotFound, model, version)
	}
	snap, err := decodeSnapshot(*mc, e.cfg.RollingWindow, data)
	if err != nil {
		return nil, err
	}
	for _, m := range e.models {
		if m.cfg.Name == model {
			snap.hist = m.hist // predictions read the live history
		}
	}
	return snap, nil
}

// loadHistory restores the stored per-entity history of m.
func (e *Engine) loadHistory(m *Model) error {
	if m.hist == nil {
		return nil
	}
	prefix := historyKey(m.cfg.Name, nil)
	start := e.now()
	err := e.store.scan(prefix, func(key, value []byte) error { return m.hist.Load(key[len(prefix):], value) })
	if err != nil {
		return fmt.Errorf("learner: model %s history: %w", m.cfg.Name, err)
	}
	e.log.Info("history restored", "model", m.cfg.Name, "entities", m.hist.Entities(), "seconds", e.now().Sub(start).Seconds())
	return nil
}
