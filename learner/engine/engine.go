package engine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int
}

// Offset is the next offset to consume from one partition.
type Offset struct {
	TopicPartition
	Next int64
}

// Example is one event handed to Process. The Engine reads it during the
// call only and never writes it: the caller may reuse it, its slices
// included, for the next event.
type Example struct {
	// Partition and Offset are where the event came from, recorded with a
	// drift detection it triggers.
	Partition int
	Offset    int64
	// Key is the message key: the entity of models whose history is keyed
	// by message (features.Config.Key empty).
	Key []byte
	// ID identifies the event for a delayed label on a labels topic;
	// empty, the event cannot wait for one.
	ID []byte
	// Time is the event time, for time windows; zero means none.
	Time time.Time
	// Fields are the event's raw fields.
	Fields []features.Field
	// Label is learned when HasLabel is set; otherwise each model only
	// predicts, and an event with an ID waits for its label.
	Label    float64
	HasLabel bool
}

// ErrSnapshotNotFound is returned for a snapshot version that is not stored.
var ErrSnapshotNotFound = errors.New("learner: snapshot not found")

// Engine learns a set of models from examples and checkpoints them. See the
// package documentation for its guarantees. Create it with New.
type Engine struct {
	cfg      Config
	store    *store.Store
	states   []*modelState // one per held model, in configuration order
	parts    []*part       // units of ownership, in configuration order
	models   []*learner.Model
	byTopic  map[string][]*modelState
	offsets  map[TopicPartition]int64
	publish  func(*learner.Snapshot)
	metrics  *engineMetrics
	log      *slog.Logger
	now      func() time.Time
	promoted time.Time
	dirty    bool // some model changed since the last checkpoint
	buf      []byte
	plans    []modelPlan // scratch of Checkpoint, one per model

	admin   chan adminRequest // admin commands, run on the engine's goroutine
	wake    chan struct{}     // signals the consumer that admin commands wait
	answers []adminAnswer     // commands run, answered once the next checkpoint is durable

	stats       atomic.Pointer[Stats]                     // as of the last checkpoint
	checkpoints uint64                                    // checkpoints written by this engine
	learned     uint64                                    // examples this engine learned, of every model it held
	floor       func(model string) uint64                 // SetVersionFloor; nil: none
	onLoad      func(model string)                        // SetOnLoad; nil: none
	live        atomic.Pointer[map[string]*learner.Model] // the held models, for Live
	owns        atomic.Pointer[map[string]Holding]        // for Holds
	maxRetained int                                       // MaxRetained; lowered by tests
}

// modelState is one model and everything the engine keeps about it.
type modelState struct {
	cfg     learner.ModelConfig // defaults applied
	model   *learner.Model
	mon     *learner.Monitor
	hist    *features.History // the model's; nil when it derives nothing
	pending *pendingSet       // events waiting for a delayed label; nil without a labels topic
	handles modelMetrics

	snapped        uint64         // learned count at the newest snapshot
	promotion      string         // promotion reason decided between checkpoints ("" when none)
	records        []detection    // drift detections not stored yet
	kept           []keptSnapshot // stored snapshots, oldest first
	standby        bool           // its unit is followed (Follow), not owned
	fwatch         *featureWatch  // feature drift; nil when unused
	sweepFrom      []byte         // where the sweep of stored entities for entity_ttl goes on; nil: none under way
	overflowLogged bool           // the first feature left out at max_numeric_features was logged
	lin            lineage        // for the provenance of its snapshots
	audit          []AuditEntry   // admin actions not stored yet
	auditSeq       uint64         // sequence of the newest stored audit entry

	// What this engine saw, for Stats.
	learned, rejected, unlabeled, delayed, expired, evicted uint64
}

// New restores the configured models, offsets and newest snapshots from
// store, publishes each model's champion, and returns an Engine ready to
// learn. publish is called with every snapshot that becomes the served one,
// after it is durable. Metrics are registered with reg.
func New(cfg Config, store *store.Store, publish func(*learner.Snapshot), reg prometheus.Registerer, log *slog.Logger) (*Engine, error) {
	cfg.Models = slices.Clone(cfg.Models) // never write the caller's slice
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:     cfg,
		store:   store,
		byTopic: make(map[string][]*modelState),
		admin:   make(chan adminRequest, 16),
		wake:    make(chan struct{}, 1),
		publish: publish,
		metrics: newEngineMetrics(reg),
		log:     log.With("component", "learner"),
		now:     time.Now,

		maxRetained: MaxRetained,
	}
	parts, err := unitsOf(cfg.Models)
	if err != nil {
		return nil, err
	}
	e.parts = parts
	for _, p := range parts {
		if err := e.readPosition(p); err != nil {
			return nil, err
		}
		p.held = true // until a consumer that assigns units says otherwise
	}
	for _, mc := range cfg.Models {
		u, err := e.restore(mc)
		if err != nil {
			return nil, err
		}
		e.states = append(e.states, u)
	}
	e.index()
	e.noteOwnership()
	offsets, err := readOffsets(store)
	if err != nil {
		return nil, err
	}
	e.offsets = offsets
	e.promoted = e.now()
	e.updateStats()
	return e, nil
}

// Topics returns the topics the models learn from.
func (e *Engine) Topics() []string {
	var topics []string
	for _, mc := range e.cfg.Models {
		if !slices.Contains(topics, mc.Topic) {
			topics = append(topics, mc.Topic)
		}
	}
	return topics
}

// LabelTopics returns the labels topics of the models.
func (e *Engine) LabelTopics() []string {
	var topics []string
	for _, mc := range e.cfg.Models {
		if mc.LabelsTopic != "" && !slices.Contains(topics, mc.LabelsTopic) {
			topics = append(topics, mc.LabelsTopic)
		}
	}
	return topics
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

// Models returns the live models, in configuration order. They belong to
// the engine's goroutine: read them there, between calls of Process.
func (e *Engine) Models() []*learner.Model { return e.models }

// Process hands one event from topic to every model that learns from it.
// With a label, each model predicts, is scored and learns (LearnOne), and
// its champion and challengers are scored on it too; without one, each
// model only predicts, and the event waits for a delayed label if the model
// has a labels topic and the event an ID. If a model rejects the example,
// Process still offers it to the others and returns the first
// *learner.RejectError.
func (e *Engine) Process(topic string, ex *Example) error {
	e.runAdmin()
	var first error
	for _, u := range e.byTopic[topic] {
		if err := e.process(u, ex); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (e *Engine) process(u *modelState, ex *Example) error {
	m := u.model
	u.lin.observe(ex.Partition, ex.Offset, ex.Time)
	fields, violations, err := m.Check(ex.Fields)
	if s, ok := m.TakeInferred(); ok {
		e.log.Info("schema inferred from the first events: it is checked from now on", "model", u.cfg.Name,
			"events", u.cfg.Schema.Infer, "features", describeSchema(s))
	}
	for _, v := range violations {
		feature := "other"
		if v.Declared {
			feature = v.Feature
		}
		e.metrics.violations.WithLabelValues(u.cfg.Name, v.Kind, feature).Inc()
	}
	if u.fwatch != nil {
		// The raw values, also of an event the schema refuses: a change
		// upstream is what feature drift is about.
		u.fwatch.observe(ex.Fields, fields, func(feature string, distance float64) { e.featureDrifted(u, ex, feature, distance) })
		e.dirty = true
	}
	if err != nil {
		e.rejected(u, err)
		return err
	}
	entity := ex.Key
	if u.hist != nil {
		entity = m.EntityKey(ex.Key, fields)
		// Into memory before anything changes: a history the store cannot
		// give back stops the engine with its state as it was.
		if err := u.hist.Fetch(entity); err != nil {
			return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
		}
	}
	all, err := m.Derive(entity, ex.Time, fields)
	if err != nil {
		return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
	}
	if !ex.HasLabel {
		p := m.PredictDerived(all)
		if u.pending != nil && len(ex.ID) > 0 {
			if err := u.pending.put(string(ex.ID), &pendingEvent{key: bytes.Clone(entity), fields: copyFields(all), prediction: p, at: e.now()}); err != nil {
				return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
			}
			e.dirty = true
		}
		if u.hist != nil {
			if err := u.hist.Observe(entity, ex.Time, fields, 0, false); err != nil {
				return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
			}
			e.dirty = true
		}
		u.handles.unlabeled.Inc()
		u.unlabeled++
		return nil
	}
	if _, err := m.LearnOne(all, ex.Label); err != nil {
		e.rejected(u, err)
		return err
	}
	e.dirty = true
	if !u.standby { // a standby's learning only keeps its histories current
		u.handles.learned.Inc()
		u.learned++
		e.learned++
	}
	e.watch(u, all, ex)
	if u.hist != nil { // after everything that reads the history of this event
		if err := u.hist.Observe(entity, ex.Time, fields, ex.Label, true); err != nil {
			return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
		}
	}
	return nil
}

// rejected counts a rejection of an example by u's model.
func (e *Engine) rejected(u *modelState, err error) {
	var rej *learner.RejectError
	if errors.As(err, &rej) {
		e.metrics.rejected.WithLabelValues(u.cfg.Name, rej.Reason).Inc()
	}
	u.rejected++
	u.lin.Rejected++
}

// byName returns the state of the model named name, or nil.
func (e *Engine) byName(name string) *modelState {
	for _, u := range e.states {
		if u.cfg.Name == name {
			return u
		}
	}
	return nil
}

// Snapshot loads a stored snapshot of a configured model. It reads the
// store only and may be called from any goroutine.
func (e *Engine) Snapshot(model string, version uint64) (*learner.Snapshot, error) {
	u := e.byName(model)
	if u == nil {
		return nil, fmt.Errorf("%w: no model named %q", ErrSnapshotNotFound, model)
	}
	return loadSnapshot(e.store, u.model, version)
}

// loadSnapshot reads snapshot version of m from s.
func loadSnapshot(s *store.Store, m *learner.Model, version uint64) (*learner.Snapshot, error) {
	name := m.Name()
	data, ok, err := s.Get(snapshotKey(name, version))
	if err != nil {
		return nil, fmt.Errorf("learner: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("%w: model %s version %d", ErrSnapshotNotFound, name, version)
	}
	return m.DecodeSnapshot(data)
}
