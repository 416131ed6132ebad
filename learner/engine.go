package learner

import (
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
		cfg:     cfg,
		store:   store,
		byTopic: make(map[string][]*Model),
		handles: make(map[*Model]modelMetrics),
		snapped: make(map[*Model]uint64),
		publish: publish,
		metrics: newEngineMetrics(reg),
		log:     log.With("component", "learner"),
		now:     time.Now,
	}
	for _, mc := range cfg.Models {
		m, err := e.restore(mc)
		if err != nil {
			return nil, err
		}
		e.models = append(e.models, m)
		e.byTopic[mc.Topic] = append(e.byTopic[mc.Topic], m)
		e.handles[m] = e.metrics.forModel(mc.Name)
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

// restore loads one model and publishes its newest snapshot, if any.
func (e *Engine) restore(mc ModelConfig) (*Model, error) {
	data, ok, err := e.store.get(modelKey(mc.Name))
	if err != nil {
		return nil, err
	}
	if !ok {
		e.log.Info("new model", "model", mc.Name, "task", mc.Task, "topic", mc.Topic)
		return newModel(mc, e.cfg.RollingWindow), nil
	}
	m, _, err := decodeState(mc, e.cfg.RollingWindow, data)
	if err != nil {
		return nil, err
	}
	e.log.Info("model restored", "model", mc.Name, "learned", m.learned, "version", m.version)
	if m.version > 0 {
		snap, err := e.Snapshot(mc.Name, m.version)
		if err != nil {
			return nil, err
		}
		e.snapped[m] = snap.Learned()
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

// Process hands one event from topic to every model that learns from it. With
// a label, each model predicts, is scored and learns (LearnOne); without one,
// each model only predicts. If a model rejects the example, Process still
// offers it to the others and returns the first *RejectError.
func (e *Engine) Process(topic string, fields []features.Field, label float64, hasLabel bool) error {
	var first error
	for _, m := range e.byTopic[topic] {
		h := e.handles[m]
		if !hasLabel {
			m.Predict(fields)
			h.unlabeled.Inc()
			continue
		}
		if _, err := m.LearnOne(fields, label); err != nil {
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
	}
	return first
}

// Checkpoint durably writes, in one synced batch, the state of every model
// and the given next offsets (which must reflect exactly the events processed
// so far). If the promotion policy says so, it also creates a snapshot of
// each model that learned since its last one, and publishes it once durable.
// When nothing changed and no promotion is due, it writes nothing, so
// callers may call it on every tick. An error means the stored state is the
// previous checkpoint; the Engine's
// in-memory state is ahead of it, so the caller must stop and restart from
// the store.
func (e *Engine) Checkpoint(offsets []Offset) error {
	start := e.now()
	promote := e.promotionDue(start)
	if !e.dirty && !e.offsetsChanged(offsets) && !(promote && e.unsnapped()) {
		return nil // nothing to write: idle ticks cost nothing
	}
	batch := e.store.db.NewBatch()
	defer batch.Close()
	var snaps []*Snapshot
	for _, m := range e.models {
		if promote && m.learned > e.snapped[m] {
			snap, err := e.addSnapshot(batch, m, start, "periodic")
			if err != nil {
				return err
			}
			snaps = append(snaps, snap)
		}
		e.buf = m.appendState(e.buf[:0])
		if err := batch.Set(modelKey(m.cfg.Name), e.buf, nil); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
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
	if promote {
		e.promoted = start
	}
	for _, s := range snaps {
		e.metrics.promotions.WithLabelValues(s.model, s.reason).Inc()
		e.log.Info("snapshot promoted", "model", s.model, "version", s.version, "reason", s.reason, "learned", s.learned)
		e.publish(s)
	}
	for _, m := range e.models {
		e.metrics.observe(m)
	}
	e.metrics.checkpoint.Observe(e.now().Sub(start).Seconds())
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

// unsnapped reports whether some model learned since its newest snapshot.
func (e *Engine) unsnapped() bool {
	for _, m := range e.models {
		if m.learned > e.snapped[m] {
			return true
		}
	}
	return false
}

// promotionDue is the v0 policy: periodically, and right away for a model
// that has no snapshot yet so that it can be served as soon as it learned.
func (e *Engine) promotionDue(now time.Time) bool {
	if now.Sub(e.promoted) >= e.cfg.PromoteInterval {
		return true
	}
	for _, m := range e.models {
		if m.version == 0 && m.learned > 0 {
			return true
		}
	}
	return false
}

// addSnapshot bumps m's version and adds its snapshot to batch, deleting
// versions beyond the retention.
func (e *Engine) addSnapshot(batch *pebble.Batch, m *Model, now time.Time, reason string) (*Snapshot, error) {
	m.version++
	meta := snapshotMeta{created: now.UTC(), reason: reason}
	if err := batch.Set(snapshotKey(m.cfg.Name, m.version), appendSnapshot(nil, meta, m), nil); err != nil {
		return nil, fmt.Errorf("learner: snapshot: %w", err)
	}
	if m.version > uint64(e.cfg.Retain) {
		oldest := m.version - uint64(e.cfg.Retain)
		if err := batch.DeleteRange(snapshotKey(m.cfg.Name, 0), snapshotKey(m.cfg.Name, oldest+1), nil); err != nil {
			return nil, fmt.Errorf("learner: snapshot retention: %w", err)
		}
	}
	e.snapped[m] = m.learned
	return newSnapshot(m, meta), nil
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
	return decodeSnapshot(*mc, e.cfg.RollingWindow, data)
}
