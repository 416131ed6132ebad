package features

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/cespare/xxhash/v2"
)

// Kind says which JSON type a raw field value had.
type Kind uint8

// The kinds of raw field values.
const (
	Number Kind = iota + 1
	String
	Bool
)

// Field is one raw feature of an event or a prediction request. Name and Str
// may alias a caller's buffer; a Transformer never retains them.
type Field struct {
	Name []byte
	Kind Kind
	Num  float64 // Number: the value; Bool: 1 for true, 0 for false
	Str  []byte  // String: the category
}

// Scaler names how numeric features are scaled.
type Scaler string

// The supported scalers.
const (
	ScalerStandard Scaler = "standard"
	ScalerNone     Scaler = "none"
)

// Config describes the feature pipeline of one model. The zero value is valid
// and means the documented defaults.
type Config struct {
	// Scaler scales numeric features. The default is ScalerStandard.
	Scaler Scaler `yaml:"scaler"`
	// HashBits sets the size of the hashed space (categorical values and
	// interactions) to 2^HashBits. The default is 18; the maximum is 24.
	HashBits int `yaml:"hash_bits"`
	// MaxNumeric bounds the number of distinct numeric feature names a model
	// accepts; more are rejected so that a misbehaving producer cannot grow
	// state without bound. The default is 1024. A stored model may be given
	// another value, down to the slots it uses (SetMaxNumeric): its weights
	// are re-indexed, not relearned.
	MaxNumeric int `yaml:"max_numeric_features"`
	// TooManyFeatures is what an event gets that would give a numeric
	// feature a slot beyond MaxNumeric: dead_letter (the default: Update
	// fails with ErrTooManyFeatures) or ignore_feature (learned without
	// the new feature, which gets no slot; counted by Overflowed). Without
	// a schema, ignore_feature keeps a producer that floods the model with
	// new names from closing it to every later event with a new feature.
	TooManyFeatures string `yaml:"too_many_features" json:",omitempty"`
	// Ignore lists field names that are never used as features.
	Ignore []string `yaml:"ignore"`
	// Namespaces groups field names (numeric or categorical) under a name,
	// for Interactions. Fields not listed belong to no namespace.
	Namespaces map[string][]string `yaml:"namespaces"`
	// Interactions lists pairs of namespaces whose features are crossed
	// (like Vowpal Wabbit's -q): every feature of the first times every
	// feature of the second, hashed into the hashed space. A namespace
	// crossed with itself gives each unordered pair of its features once.
	Interactions [][2]string `yaml:"interactions"`
	// Key names the field whose value is the entity key of windows, lags
	// and targets. The default is the event's key (its "key" field, else
	// the Kafka message key).
	Key string `yaml:"key"`
	// Windows, Lags and Targets derive features from each entity's history
	// (the events with the same key before this one); see History.
	Windows []WindowConfig `yaml:"windows"`
	Lags    []LagConfig    `yaml:"lags"`
	Targets []TargetConfig `yaml:"targets"`
	// EntityTTL evicts the history of an entity not seen for this long
	// (from memory and storage). 0 keeps every entity.
	EntityTTL time.Duration `yaml:"entity_ttl"`
	// MaxEntitiesInMemory bounds the entity histories a model holds in
	// memory when they are backed by a store (the engine's Pebble): beyond
	// it the least recently used leave memory once a checkpoint has stored
	// them, and are read back from the store when their entity's next
	// event, label or prediction comes. 0 means
	// DefaultMaxEntitiesInMemory; -1 holds every entity. Memory may exceed
	// it by the entities first seen since the last checkpoint.
	MaxEntitiesInMemory int `yaml:"max_entities_in_memory" json:",omitempty"`
	// AllowedLateness is how far behind an entity's newest event time an
	// event may be and still enter time windows normally; later ones are
	// late. The default is 0.
	AllowedLateness time.Duration `yaml:"allowed_lateness"`
	// LatePolicy is what happens to late events: drop (default: they do not
	// enter time windows) or include. Either way they are counted.
	LatePolicy string `yaml:"late_policy"`
	// MaxFuture is how far ahead of the processing clock an event's time
	// may be. An event further ahead (a producer's clock or unit error)
	// enters no time window and leaves its entity's watermark where it was,
	// so it cannot make the entity's later events late; it is counted
	// (History.Future). The default is DefaultMaxFuture (1h).
	MaxFuture time.Duration `yaml:"max_future"`
}

// Defaults and limits.
const (
	DefaultHashBits   = 18
	DefaultMaxNumeric = 1024
	maxHashBits       = 24
	maxMaxNumeric     = 1 << 20
	maxNamespaces     = 250
)

// MaxAbs is the largest magnitude a numeric feature may have. Larger values
// are refused: squaring them in the variance would overflow, and no real
// measurement needs them.
const MaxAbs = 1e150

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.Scaler == "" {
		c.Scaler = ScalerStandard
	}
	if c.HashBits == 0 {
		c.HashBits = DefaultHashBits
	}
	if c.MaxNumeric == 0 {
		c.MaxNumeric = DefaultMaxNumeric
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	switch c.Scaler {
	case "", ScalerStandard, ScalerNone:
	default:
		return fmt.Errorf("features: unknown scaler %q (want standard or none)", c.Scaler)
	}
	if c.MaxEntitiesInMemory < -1 {
		return fmt.Errorf("features: max_entities_in_memory %d: want a positive bound, 0 for the default (%d) or -1 for none", c.MaxEntitiesInMemory, DefaultMaxEntitiesInMemory)
	}
	if c.HashBits < 0 || c.HashBits > maxHashBits {
		return fmt.Errorf("features: hash_bits %d out of range [1, %d]", c.HashBits, maxHashBits)
	}
	switch c.TooManyFeatures {
	case "", "dead_letter", "ignore_feature":
	default:
		return fmt.Errorf("features: too_many_features %q: want dead_letter or ignore_feature", c.TooManyFeatures)
	}
	if c.MaxNumeric < 0 || c.MaxNumeric > maxMaxNumeric {
		return fmt.Errorf("features: max_numeric_features %d out of range [1, %d]", c.MaxNumeric, maxMaxNumeric)
	}
	if len(c.Namespaces) > maxNamespaces {
		return fmt.Errorf("features: %d namespaces, the limit is %d", len(c.Namespaces), maxNamespaces)
	}
	owner := make(map[string]string)
	for ns, names := range c.Namespaces {
		if ns == "" {
			return errors.New("features: a namespace has an empty name")
		}
		for _, name := range names {
			if other, dup := owner[name]; dup && other != ns {
				return fmt.Errorf("features: field %q is in namespaces %q and %q", name, other, ns)
			}
			owner[name] = ns
		}
	}
	for _, pair := range c.Interactions {
		for _, ns := range pair {
			if _, ok := c.Namespaces[ns]; !ok {
				return fmt.Errorf("features: interaction %v names namespace %q, which is not defined", pair, ns)
			}
		}
	}
	return c.validateHistory()
}

// Errors returned by Update. Update is all or nothing: on error nothing
// changed.
var (
	// ErrTooManyFeatures: a new numeric feature would exceed MaxNumeric.
	ErrTooManyFeatures = errors.New("features: too many distinct numeric features")
	// ErrOutOfRange: a value beyond ±MaxAbs.
	ErrOutOfRange = errors.New("features: value out of range")
	// ErrNonFinite: learning a value would make scaler state NaN or Inf.
	ErrNonFinite = errors.New("features: value would make scaler state non-finite")
)

// hashFunc identifies how categorical values and interactions are hashed.
// It is stored with the state: models written by older versions keep the
// hash they learned with.
type hashFunc uint8

const (
	hashFNV hashFunc = 1 // encoding version 1: inline FNV-1a, no interactions
	hashXX  hashFunc = 2 // xxhash64
)

// fieldInfo is what the Transformer knows about a field name: one map
// lookup per field answers all of it.
type fieldInfo struct {
	slot    int32 // dense numeric slot, -1 until the field is learned as a number
	ns      uint8 // namespace index + 1; 0 for none
	ignored bool
}

// Transformer owns the feature state of one model. See the package
// documentation for what it computes. Create it with New.
type Transformer struct {
	cfg    Config
	hash   hashFunc
	info   map[string]fieldInfo
	pairs  [][2]uint8 // interactions as namespace index + 1
	names  []string   // dense slot → name, in order of first sight
	count  []float64  // per slot: examples seen
	mean   []float64  // per slot: running mean
	vars   []float64  // per slot: running population variance
	nsName []string   // namespace index → name, sorted
	// crossBase is the MaxNumeric that interactions hash indices against:
	// the model's first, so that a resize (SetMaxNumeric) leaves every
	// crossed feature in its bucket.
	crossBase int

	undo      []undoEntry // what the last Update changed, for Rollback
	undoSlots int         // slot count before the last Update
	overflow  uint64      // numeric features left without a slot (TooManyFeatures ignore_feature)
	resolved  []int32     // per field of the current Update: slot, skipField or newField
	stats     []slotStats // per field of the current Update: the statistics after it
	// gen counts the changes of info, so that a nameCache resolved
	// against an older state resolves again.
	gen   uint64
	byPos nameCache // Update's own cache (Transform uses its Vector's)
}

// New returns an empty Transformer for cfg, which must be valid.
func New(cfg Config) *Transformer {
	cfg.EnsureDefaults()
	t := &Transformer{cfg: cfg, hash: hashXX, crossBase: cfg.MaxNumeric}
	t.index()
	return t
}

// index builds the field map and interaction pairs from the configuration,
// keeping the slots of fields already learned.
func (t *Transformer) index() {
	t.gen++
	old := t.info
	t.info = make(map[string]fieldInfo, len(old))
	for name, fi := range old {
		if fi.slot >= 0 {
			t.info[name] = fieldInfo{slot: fi.slot}
		}
	}
	t.nsName = t.nsName[:0]
	for ns := range t.cfg.Namespaces {
		t.nsName = append(t.nsName, ns)
	}
	sort.Strings(t.nsName)
	for i, ns := range t.nsName {
		for _, name := range t.cfg.Namespaces[ns] {
			fi := t.lookup(name)
			fi.ns = uint8(i + 1)
			t.info[name] = fi
		}
	}
	for _, name := range t.cfg.Ignore {
		fi := t.lookup(name)
		fi.ignored = true
		t.info[name] = fi
	}
	t.pairs = t.pairs[:0]
	for _, p := range t.cfg.Interactions {
		a, b := slices.Index(t.nsName, p[0]), slices.Index(t.nsName, p[1])
		t.pairs = append(t.pairs, [2]uint8{uint8(a + 1), uint8(b + 1)})
	}
}

func (t *Transformer) lookup(name string) fieldInfo {
	if fi, ok := t.info[name]; ok {
		return fi
	}
	return fieldInfo{slot: -1}
}

// Config returns the configuration with defaults applied.
func (t *Transformer) Config() Config { return t.cfg }

// Dim returns the size of the index space: MaxNumeric dense slots followed by
// 2^HashBits hashed indices. A weight vector of this length covers every
// index Transform can produce.
func (t *Transformer) Dim() int { return t.cfg.MaxNumeric + 1<<t.cfg.HashBits }

// SetTooManyFeatures replaces Config.TooManyFeatures, which may change
// freely on a stored model: it decides what happens to new features only.
func (t *Transformer) SetTooManyFeatures(policy string) { t.cfg.TooManyFeatures = policy }

// SetMaxNumeric changes Config.MaxNumeric of a stored model to max, which
// must hold the slots already assigned. Numeric slots keep their indices;
// hashed indices move by the difference (Reindex maps an old index to its
// new one), so the caller must move its weights with Reindex.
func (t *Transformer) SetMaxNumeric(max int) error {
	if max < len(t.names) {
		return fmt.Errorf("features: max_numeric_features %d is below the %d numeric features the model has learned", max, len(t.names))
	}
	probe := t.cfg
	probe.MaxNumeric = max
	if err := probe.Validate(); err != nil {
		return err
	}
	t.cfg.MaxNumeric = max
	return nil
}

// Reindex maps index i of a layout with oldMax numeric slots to the same
// feature's index with newMax slots: numeric slots stay where they are and
// hashed indices shift with the end of the numeric block.
func Reindex(i, oldMax, newMax int) int {
	if i < oldMax {
		return i
	}
	return i - oldMax + newMax
}

// Mean returns the running mean of the numeric feature name, and false if
// it has no slot yet.
func (t *Transformer) Mean(name string) (float64, bool) {
	fi, ok := t.info[name]
	if !ok || fi.slot < 0 {
		return 0, false
	}
	return t.mean[fi.slot], true
}

// Overflowed returns how many numeric features were left without a slot
// because MaxNumeric was reached (TooManyFeatures ignore_feature), since
// the Transformer was created. It is not stored.
func (t *Transformer) Overflowed() uint64 { return t.overflow }

// NumericSlots returns how many numeric features have a slot.
func (t *Transformer) NumericSlots() int { return len(t.names) }

// NumericNames returns the numeric feature names in slot order. The caller
// must not modify the result.
func (t *Transformer) NumericNames() []string { return t.names }

// Update learns the scaler statistics of fields (River's learn_one) and
// assigns slots to numeric features seen for the first time. Call it before
// Transform when learning from an example, never when predicting. Update is
// all or nothing: on error the state is unchanged. fields must not repeat a
// name.
func (t *Transformer) Update(fields []Field) error {
	if err := t.check(fields); err != nil {
		return err
	}
	t.undo = t.undo[:0]
	t.undoSlots = len(t.names)
	for i := range fields {
		slot := int(t.resolved[i])
		switch {
		case slot == skipField:
			continue
		case slot == newField:
			f := &fields[i]
			fi := t.lookup(string(f.Name))
			fi.slot = int32(t.addSlot(string(f.Name)))
			t.setInfo(string(f.Name), fi)
			slot = int(fi.slot)
		}
		t.undo = append(t.undo, undoEntry{slot, t.count[slot], t.mean[slot], t.vars[slot]})
		st := t.stats[i]
		t.count[slot], t.mean[slot], t.vars[slot] = st.count, st.mean, st.vars
	}
	return nil
}

// slotStats are a numeric slot's statistics: examples, mean, variance.
type slotStats struct{ count, mean, vars float64 }

// setInfo records what name resolves to, invalidating every nameCache.
func (t *Transformer) setInfo(name string, fi fieldInfo) {
	t.info[name] = fi
	t.gen++
}

// Markers in Transformer.resolved besides slot numbers.
const (
	skipField = -1 // categorical or ignored: no statistics
	newField  = -2 // numeric without a slot yet
)

// check reports whether Update would succeed, without changing anything,
// and resolves each field's slot into t.resolved so that Update looks each
// name up only once.
func (t *Transformer) check(fields []Field) error {
	t.resolved, t.stats = t.resolved[:0], t.stats[:0]
	newSlots := 0
	for i := range fields {
		f := &fields[i]
		t.stats = append(t.stats, slotStats{})
		if f.Kind == String {
			t.resolved = append(t.resolved, skipField)
			continue
		}
		r := t.byPos.resolve(t, i, f.Name)
		fi, known := r.info, r.known
		if known && fi.ignored {
			t.resolved = append(t.resolved, skipField)
			continue
		}
		if math.Abs(f.Num) > MaxAbs {
			return fmt.Errorf("%w: feature %q = %g", ErrOutOfRange, f.Name, f.Num)
		}
		slot := -1
		if known && fi.slot >= 0 {
			slot = int(fi.slot)
			t.resolved = append(t.resolved, fi.slot)
		} else {
			if len(t.names)+newSlots+1 > t.cfg.MaxNumeric {
				if t.cfg.TooManyFeatures == "ignore_feature" {
					t.overflow++
					t.resolved = append(t.resolved, skipField)
					continue
				}
				return fmt.Errorf("%w: %q would be number %d, the limit is %d",
					ErrTooManyFeatures, f.Name, len(t.names)+newSlots+1, t.cfg.MaxNumeric)
			}
			newSlots++
			t.resolved = append(t.resolved, newField)
		}
		count, mean, vars := t.next(slot, f.Num)
		if !finite(mean) || !finite(vars) {
			return fmt.Errorf("%w: feature %q = %g", ErrNonFinite, f.Name, f.Num)
		}
		t.stats[i] = slotStats{count, mean, vars}
	}
	return nil
}

// next returns the statistics of slot after learning x; slot -1 is a slot
// not yet assigned.
func (t *Transformer) next(slot int, x float64) (count, mean, vars float64) {
	if slot >= 0 {
		count, mean, vars = t.count[slot], t.mean[slot], t.vars[slot]
	}
	count++
	oldMean := mean
	mean += (x - oldMean) / count
	// River updates the population variance directly rather than M2;
	// keeping its exact recurrence keeps results comparable bit for bit.
	vars += ((x-oldMean)*(x-mean) - vars) / count
	return count, mean, vars
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func (t *Transformer) addSlot(name string) int {
	slot := len(t.names)
	t.names = append(t.names, name)
	t.count = append(t.count, 0)
	t.mean = append(t.mean, 0)
	t.vars = append(t.vars, 0)
	return slot
}

// undoEntry is a slot's statistics before the last Update.
type undoEntry struct {
	slot              int
	count, mean, vars float64
}

// Rollback undoes the last successful Update (statistics and new slots), for
// a learner that refuses the example after updating the features. It
// allocates nothing. Calling it twice, or without an Update, does nothing.
func (t *Transformer) Rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		u := t.undo[i]
		t.count[u.slot], t.mean[u.slot], t.vars[u.slot] = u.count, u.mean, u.vars
	}
	t.undo = t.undo[:0]
	for len(t.names) > t.undoSlots {
		last := len(t.names) - 1
		name := t.names[last]
		fi := t.info[name]
		fi.slot = -1
		if fi.ns == 0 && !fi.ignored {
			delete(t.info, name)
			t.gen++
		} else {
			t.setInfo(name, fi)
		}
		t.names, t.count, t.mean, t.vars = t.names[:last], t.count[:last], t.mean[:last], t.vars[:last]
	}
}

// Vector is a transformed example as a sparse vector: Value[i] at Index[i].
// Dense and sparse inputs share this one representation: a dense numeric
// example is simply one whose indices are its slots. Reuse one Vector across
// calls; Transform resets it.
type Vector struct {
	Index []int
	Value []float64
	ns    []uint8   // namespace of each entry, for interactions
	raw   []float64 // unscaled value of each entry, for Rescale
	max   int       // largest index + 1

	// byPos resolves the names of the fields Transform reads, by their
	// position: it belongs to the Vector so that concurrent Transforms
	// of one Transformer (a served snapshot) share nothing.
	byPos nameCache

	// With tracing on (Trace), where each entry came from: see Terms.
	trace bool
	src   [][2]int32 // base entries: {field index, -1}; crosses: {entry a, entry b}
	hash  []uint64   // hashed entries: the full hash; numeric slots: 0
}

// Reset empties v, keeping its capacity.
func (v *Vector) Reset() {
	v.Index, v.Value, v.ns, v.raw, v.max = v.Index[:0], v.Value[:0], v.ns[:0], v.raw[:0], 0
	v.src, v.hash = v.src[:0], v.hash[:0]
}

// Trace makes Transform record where each entry of v came from, for Terms
// (what an explanation and the names of hashed buckets need). It costs two
// appends per entry; a Vector without it records nothing.
func (v *Vector) Trace() { v.trace = true }

// note records the source of the entry just added, when tracing.
func (v *Vector) note(a, b int32, h uint64) {
	if v.trace {
		v.src = append(v.src, [2]int32{a, b})
		v.hash = append(v.hash, h)
	}
}

// Add appends one entry (no namespace). index must not be negative.
func (v *Vector) Add(index int, value float64) { v.add(index, value, value, 0) }

func (v *Vector) add(index int, value, raw float64, ns uint8) {
	v.Index = append(v.Index, index)
	v.Value = append(v.Value, value)
	v.raw = append(v.raw, raw)
	v.ns = append(v.ns, ns)
	v.max = max(v.max, index+1)
}

// Span returns the largest index + 1: a weight vector of this length covers
// every entry.
func (v *Vector) Span() int { return v.max }

// Transform writes the features of fields into dst using the current state,
// without changing it: numeric features scaled (those without a slot are
// skipped: they have no weight yet), categorical ones hashed with value 1,
// then the configured interactions. Training and serving both predict
// through Transform, so they see identical features.
func (t *Transformer) Transform(fields []Field, dst *Vector) {
	dst.Reset()
	for i := range fields {
		f := &fields[i]
		r := dst.byPos.resolve(t, i, f.Name)
		fi, known := r.info, r.known
		if known && fi.ignored {
			continue
		}
		if f.Kind == String {
			h := t.categoryHash(r, f.Name, f.Str)
			dst.add(t.bucket(h), 1, 1, fi.ns)
			dst.note(int32(i), -1, h)
			continue
		}
		if !known || fi.slot < 0 {
			continue
		}
		dst.add(int(fi.slot), t.scale(int(fi.slot), f.Num), f.Num, fi.ns)
		dst.note(int32(i), -1, 0)
	}
	for _, p := range t.pairs {
		t.cross(dst, p[0], p[1])
	}
}

// Retransform brings dst, which Transform wrote for fields before the last
// Update, up to date with the statistics Update learned: the same result as
// Transform(fields, dst), cheaper when the update added no slot and no
// interaction depends on scaled values (numeric entries are rescaled in
// place; categorical ones keep their hashed index).
func (t *Transformer) Retransform(fields []Field, dst *Vector) {
	if len(t.names) != t.undoSlots || len(t.pairs) > 0 {
		t.Transform(fields, dst)
		return
	}
	for i, idx := range dst.Index {
		if idx < t.cfg.MaxNumeric {
			dst.Value[i] = t.scale(idx, dst.raw[i])
		}
	}
}

// cross appends the products of the entries of namespaces a and b.
func (t *Transformer) cross(v *Vector, a, b uint8) {
	n := len(v.Index) // only base entries, not earlier crosses
	for i := 0; i < n; i++ {
		if v.ns[i] != a {
			continue
		}
		start := 0
		if a == b {
			start = i + 1
		}
		for j := start; j < n; j++ {
			if v.ns[j] != b {
				continue
			}
			h := mix(t.crossID(v.Index[i]), t.crossID(v.Index[j]))
			x := v.Value[i] * v.Value[j]
			v.add(t.bucket(h), x, x, 0)
			v.note(int32(i), int32(j), h)
		}
	}
}

// crossID is the identity of index idx that interactions hash: the index
// in the layout the model was created with (crossBase numeric slots).
func (t *Transformer) crossID(idx int) uint64 {
	if idx >= t.cfg.MaxNumeric {
		idx += t.crossBase - t.cfg.MaxNumeric
	}
	return uint64(idx)
}

// mix combines two indices into one hash (the finaliser of SplitMix64 over
// an asymmetric combination, so a×b and b×a differ).
func mix(a, b uint64) uint64 {
	x := a*0x9E3779B97F4A7C15 ^ (b + 0x632BE59BD9B4E019)
	x ^= x >> 30
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 27
	x *= 0x94D049BB133111EB
	return x ^ x>>31
}

func (t *Transformer) scale(slot int, x float64) float64 {
	if t.cfg.Scaler == ScalerNone {
		return x
	}
	sd := math.Sqrt(t.vars[slot])
	if sd == 0 {
		return 0
	}
	return (x - t.mean[slot]) / sd
}

// categoryHash is the full hash of name=value; r is name resolved, whose
// hash it reuses.
func (t *Transformer) categoryHash(r *resolvedName, name, value []byte) uint64 {
	if t.hash == hashFNV {
		return fnv1a(name, value)
	}
	return mix(r.hash, xxhash.Sum64(value))
}

// bucket is the index of full hash h in the hashed space.
func (t *Transformer) bucket(h uint64) int { return t.cfg.MaxNumeric + int(h&(1<<t.cfg.HashBits-1)) }

// fnv1a is the hash of encoding version 1, kept so that models learned with
// it still load and predict the same.
func fnv1a(name, value []byte) uint64 {
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for _, c := range name {
		h = (h ^ uint64(c)) * prime64
	}
	h = (h ^ '=') * prime64
	for _, c := range value {
		h = (h ^ uint64(c)) * prime64
	}
	return h
}

// SetIgnore replaces the list of ignored field names. Ignoring a field does
// not move any index, so it may change between restarts.
func (t *Transformer) SetIgnore(names []string) {
	t.cfg.Ignore = append([]string(nil), names...)
	t.index()
}

// Clone returns a deep copy that shares nothing with t.
func (t *Transformer) Clone() *Transformer {
	c := &Transformer{
		cfg:    t.cfg,
		hash:   t.hash,
		info:   make(map[string]fieldInfo, len(t.info)),
		pairs:  slices.Clone(t.pairs),
		names:  slices.Clone(t.names),
		count:  slices.Clone(t.count),
		mean:   slices.Clone(t.mean),
		vars:   slices.Clone(t.vars),
		nsName: slices.Clone(t.nsName),

		crossBase: t.crossBase,
	}
	for k, v := range t.info {
		c.info[k] = v
	}
	return c
}

// Stats returns the scaler statistics of a numeric feature.
func (t *Transformer) Stats(name string) (count, mean, variance float64, ok bool) {
	fi, known := t.info[name]
	if !known || fi.slot < 0 {
		return 0, 0, 0, false
	}
	return t.count[fi.slot], t.mean[fi.slot], t.vars[fi.slot], true
}

// ignored reports whether name is ignored (for tests and tools).
func (t *Transformer) ignored(name []byte) bool {
	fi, ok := t.info[string(name)]
	return ok && fi.ignored
}
