package engine

import (
	"encoding/binary"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/drift"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/features/codec"
	"github.com/eddyhq/eddy/learner"
)

// featureWatch watches the distribution of some numeric features of one
// model (learner.ModelConfig.FeatureDrift), one drift.Shift each, fed with
// the values of the events the model learns or scores. Its state is stored
// under featureDriftKey in every checkpoint and moves with the unit.
type featureWatch struct {
	names    []string       // the numeric features, then the categorical ones
	index    map[string]int // numeric feature → its index in names and shifts
	shifts   []*drift.Shift
	catIndex map[string]int // categorical feature → its index in cats (names: len(shifts) + it)
	cats     []*drift.CategoryShift
	detected []prometheus.Counter // per name; resolved once: no label lookups per event
	distance []prometheus.Gauge
	count    uint64 // detections since the engine started, for Stats
}

// indexOf returns the index of feature in names.
func (w *featureWatch) indexOf(feature string) int {
	if i, ok := w.index[feature]; ok {
		return i
	}
	return len(w.shifts) + w.catIndex[feature]
}

func featureDriftKey(name string) []byte { return []byte("fdrift/" + name) }

// newFeatureWatch returns the watch of mc, nil without feature drift.
func (e *Engine) newFeatureWatch(mc learner.ModelConfig) (*featureWatch, error) {
	w, err := e.newFeatureWatchUnregistered(mc)
	if err != nil || w == nil {
		return w, err
	}
	for _, name := range w.names {
		w.detected = append(w.detected, e.metrics.featureDrift.WithLabelValues(mc.Name, name))
		w.distance = append(w.distance, e.metrics.featureDistance.WithLabelValues(mc.Name, name))
	}
	return w, nil
}

// newFeatureWatchUnregistered is newFeatureWatch without metric handles,
// for reading a stored watch.
func (e *Engine) newFeatureWatchUnregistered(mc learner.ModelConfig) (*featureWatch, error) {
	names, cats := mc.WatchedFeatures(), mc.WatchedCategories()
	if len(names)+len(cats) == 0 {
		return nil, nil
	}
	fd := mc.FeatureDrift
	cfg := drift.ShiftConfig{Reference: fd.Reference, Window: fd.Window, Bins: fd.Bins, Threshold: fd.Threshold}
	w := &featureWatch{names: append(slices.Clone(names), cats...), index: make(map[string]int, len(names)), catIndex: make(map[string]int, len(cats))}
	for i, name := range names {
		s, err := drift.NewShift(cfg)
		if err != nil {
			return nil, fmt.Errorf("learner: model %s: feature_drift: %w", mc.Name, err)
		}
		w.index[name] = i
		w.shifts = append(w.shifts, s)
	}
	for i, name := range cats {
		s, err := drift.NewCategoryShift(drift.ShiftConfig{Reference: fd.Reference, Window: fd.Window, Bins: fd.Bins, Threshold: fd.Threshold})
		if err != nil {
			return nil, fmt.Errorf("learner: model %s: feature_drift: %w", mc.Name, err)
		}
		w.catIndex[name] = i
		w.cats = append(w.cats, s)
	}
	return w, nil
}

// observe feeds the watched numbers among raw (an event's fields as they
// came) and the watched categories among checked (after the schema, which
// makes declared categories of numbers), and calls detected with the
// feature of each detection. It allocates nothing once the categorical
// references are built.
func (w *featureWatch) observe(raw, checked []features.Field, detected func(feature string, distance float64)) {
	if len(w.cats) > 0 {
		for i := range checked {
			f := &checked[i]
			if f.Kind != features.String {
				continue
			}
			if k, ok := w.catIndex[string(f.Name)]; ok && w.cats[k].Update(f.Str) {
				w.count++
				detected(w.names[len(w.shifts)+k], w.cats[k].Distance())
			}
		}
	}
	for i := range raw {
		f := &raw[i]
		if f.Kind != features.Number {
			continue
		}
		j, ok := w.index[string(f.Name)]
		if !ok {
			continue
		}
		if s := w.shifts[j]; s.Update(f.Num) {
			w.count++
			detected(w.names[j], s.Distance())
		}
	}
}

// publish sets the distance gauges (at each checkpoint, not per event).
func (w *featureWatch) publish() {
	for i, s := range w.shifts {
		w.distance[i].Set(s.Distance())
	}
	for k, s := range w.cats {
		w.distance[len(w.shifts)+k].Set(s.Distance())
	}
}

// publishSkew sets the training/serving skew gauges of u.
func (e *Engine) publishSkew(u *modelState) {
	for _, d := range u.model.Skew().Distances() {
		e.metrics.skew.WithLabelValues(u.cfg.Name, d.Feature).Set(d.Distance)
	}
}

// appendState encodes every detector with its feature's name.
func (w *featureWatch) appendState(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(w.shifts)))
	for i, s := range w.shifts {
		dst = codec.AppendString(dst, w.names[i])
		dst = s.AppendState(dst)
	}
	dst = binary.AppendUvarint(dst, uint64(len(w.cats))) // the categorical section (absent in older states)
	for k, s := range w.cats {
		dst = codec.AppendString(dst, w.names[len(w.shifts)+k])
		dst = s.AppendState(dst)
	}
	return dst
}

// decode restores the detectors of the features data holds that w still
// watches (a feature dropped from the configuration is forgotten; a new
// one starts afresh).
func (w *featureWatch) decode(data []byte) error {
	r := codec.NewReader(data, learner.ErrCorrupt)
	n := r.Count()
	for range n {
		name := r.String()
		if r.Err() != nil {
			return r.Err()
		}
		d, rest, err := drift.Decode(r.Rest())
		if err != nil {
			return fmt.Errorf("%w: feature drift of %q: %v", learner.ErrCorrupt, name, err)
		}
		r = codec.NewReader(rest, learner.ErrCorrupt)
		s, ok := d.(*drift.Shift)
		if !ok {
			return fmt.Errorf("%w: feature drift of %q is not a shift detector", learner.ErrCorrupt, name)
		}
		if j, watched := w.index[name]; watched && s.Config() == w.shifts[j].Config() {
			w.shifts[j] = s
		}
	}
	if r.Err() != nil || len(r.Rest()) == 0 {
		return r.Err()
	}
	n = r.Count()
	for range n {
		name := r.String()
		if r.Err() != nil {
			return r.Err()
		}
		s, rest, err := drift.DecodeCategoryShift(r.Rest())
		if err != nil {
			return fmt.Errorf("%w: feature drift of %q: %v", learner.ErrCorrupt, name, err)
		}
		r = codec.NewReader(rest, learner.ErrCorrupt)
		if k, watched := w.catIndex[name]; watched && s.Config() == w.cats[k].Config() {
			w.cats[k] = s
		}
	}
	return r.Err()
}

// featureDrifted logs and counts a detection of u's feature watch.
func (e *Engine) featureDrifted(u *modelState, ex *Example, feature string, distance float64) {
	if u.standby { // the owner reports it
		return
	}
	u.fwatch.detected[u.fwatch.indexOf(feature)].Inc()
	challenger := u.cfg.FeatureDrift.Challenger && u.mon.Champion() != nil
	if challenger {
		u.mon.StartChallenger(u.model)
		u.lin.ChallengerBegan = u.lin.position()
		u.lin.ChallengerBegan[ex.Partition] = ex.Offset // the challenger learns ex too
	}
	e.log.Warn("feature drift detected: the distribution of a feature changed (a unit change, a broken upstream join?)",
		"model", u.cfg.Name, "feature", feature, "distance", distance, "partition", ex.Partition, "offset", ex.Offset, "challenger_started", challenger)
}

// describeSchema lists a schema's features as name:kind, sorted.
func describeSchema(s *features.Schema) string {
	names := slices.Sorted(maps.Keys(s.Features))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + ":" + s.Features[n].Kind
	}
	return strings.Join(parts, " ")
}

// SchemaReport describes a model's schema in force and its feature-drift
// detectors, as of the last checkpoint (see Engine.Schema).
type SchemaReport struct {
	Schema    *features.Schema // nil: the model has none
	Inferring bool             // the schema's kinds are still being learned
	InferSeen int
	InferWant int
	Drift     []FeatureDriftReport
}

// FeatureDriftReport is one feature-drift detector's state, and the
// feature's training/serving skew where it is measured.
type FeatureDriftReport struct {
	Feature  string
	Distance float64
	Ready    bool
	Skew     *float64 // nil until training and serving values are both seen here
	Serving  int
}

// Schema returns the schema of model in force (configured, or inferred)
// and its feature-drift detectors, as the store holds them after the last
// checkpoint. It reads the store only and may be called from any
// goroutine.
func (e *Engine) Schema(model string) (SchemaReport, error) {
	var mc *learner.ModelConfig
	for i := range e.cfg.Models {
		if e.cfg.Models[i].Name == model {
			mc = &e.cfg.Models[i]
		}
	}
	if mc == nil {
		return SchemaReport{}, fmt.Errorf("learner: no model named %q", model)
	}
	r := SchemaReport{Schema: mc.Schema}
	view := e.store.NewView()
	defer view.Close()
	if mc.Schema != nil && mc.Schema.Infer > 0 {
		m, err := learner.NewModel(*mc, 0)
		if err != nil {
			return r, err
		}
		if blob, ok, err := view.Get(schemaKey(model)); err != nil {
			return r, fmt.Errorf("learner: %w", err)
		} else if ok {
			if err := m.RestoreSchemaState(blob); err != nil {
				return r, err
			}
		}
		r.Schema = m.Schema()
		r.InferSeen, r.InferWant, r.Inferring = m.InferenceProgress()
	}
	w, err := e.newFeatureWatchUnregistered(*mc)
	if err != nil || w == nil {
		return r, err
	}
	if blob, ok, err := view.Get(featureDriftKey(model)); err != nil {
		return r, fmt.Errorf("learner: %w", err)
	} else if ok {
		if err := w.decode(blob); err != nil {
			return r, err
		}
	}
	skews := make(map[string]learner.SkewDistance)
	if m := e.Live(model); m != nil {
		for _, d := range m.Skew().Distances() {
			skews[d.Feature] = d
		}
	}
	for i, s := range w.shifts {
		name := w.names[i]
		fr := FeatureDriftReport{Feature: name, Distance: s.Distance(), Ready: s.Ready()}
		if d, ok := skews[name]; ok {
			fr.Skew, fr.Serving = &d.Distance, d.Serving
		}
		r.Drift = append(r.Drift, fr)
	}
	for k, s := range w.cats {
		name := w.names[len(w.shifts)+k]
		fr := FeatureDriftReport{Feature: name, Distance: s.Distance(), Ready: s.Ready()}
		if d, ok := skews[name]; ok {
			fr.Skew, fr.Serving = &d.Distance, d.Serving
		}
		r.Drift = append(r.Drift, fr)
	}
	return r, nil
}
