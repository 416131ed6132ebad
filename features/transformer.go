package features

import (
	"errors"
	"fmt"
	"math"
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
	// HashBits sets the size of the hashed categorical space to 2^HashBits.
	// The default is 18; the maximum is 24.
	HashBits int `yaml:"hash_bits"`
	// MaxNumeric bounds the number of distinct numeric feature names a model
	// accepts; more are rejected so that a misbehaving producer cannot grow
	// state without bound. The default is 1024.
	MaxNumeric int `yaml:"max_numeric_features"`
	// Ignore lists field names that are never used as features.
	Ignore []string `yaml:"ignore"`
}

// Defaults.
const (
	DefaultHashBits   = 18
	DefaultMaxNumeric = 1024
	maxHashBits       = 24
	maxMaxNumeric     = 1 << 20
)

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
	if c.HashBits < 0 || c.HashBits > maxHashBits {
		return fmt.Errorf("features: hash_bits %d out of range [1, %d]", c.HashBits, maxHashBits)
	}
	if c.MaxNumeric < 0 || c.MaxNumeric > maxMaxNumeric {
		return fmt.Errorf("features: max_numeric_features %d out of range [1, %d]", c.MaxNumeric, maxMaxNumeric)
	}
	return nil
}

// ErrTooManyFeatures is returned by Update when a new numeric feature would
// exceed Config.MaxNumeric.
var ErrTooManyFeatures = errors.New("features: too many distinct numeric features")

// Transformer owns the feature state of one model. See the package
// documentation for what it computes. Create it with New.
type Transformer struct {
	cfg    Config
	ignore map[string]struct{}
	slots  map[string]int // numeric feature name → dense slot
	names  []string       // dense slot → name, in order of first sight
	count  []float64      // per slot: examples seen
	mean   []float64      // per slot: running mean
	vars   []float64      // per slot: running population variance

	undo      []undoEntry // what the last Update changed, for Rollback
	undoSlots int         // slot count before the last Update
}

// New returns an empty Transformer for cfg, which must be valid.
func New(cfg Config) *Transformer {
	cfg.EnsureDefaults()
	t := &Transformer{cfg: cfg, slots: make(map[string]int), ignore: make(map[string]struct{})}
	for _, name := range cfg.Ignore {
		t.ignore[name] = struct{}{}
	}
	return t
}

// Config returns the configuration with defaults applied.
func (t *Transformer) Config() Config { return t.cfg }

// Dim returns the size of the index space: MaxNumeric dense slots followed by
// 2^HashBits hashed indices. A weight vector of this length covers every
// index Transform can produce.
func (t *Transformer) Dim() int { return t.cfg.MaxNumeric + 1<<t.cfg.HashBits }

// NumericSlots returns how many numeric features have a slot.
func (t *Transformer) NumericSlots() int { return len(t.names) }

// NumericNames returns the numeric feature names in slot order. The caller
// must not modify the result.
func (t *Transformer) NumericNames() []string { return t.names }

// MaxAbs is the largest magnitude a numeric feature may have. Larger values
// are refused: squaring them in the variance would overflow, and no real
// measurement needs them.
const MaxAbs = 1e150

// ErrOutOfRange is returned by Update for a value beyond ±MaxAbs.
var ErrOutOfRange = errors.New("features: value out of range")

// ErrNonFinite is returned by Update when learning a value would make the
// scaler statistics NaN or Inf (for example a value near the float64 limit).
var ErrNonFinite = errors.New("features: value would make scaler state non-finite")

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
		f := &fields[i]
		if f.Kind == String || t.ignored(f.Name) {
			continue
		}
		slot, ok := t.slots[string(f.Name)]
		if !ok {
			slot, _ = t.addSlot(string(f.Name)) // check made room
		}
		t.undo = append(t.undo, undoEntry{slot, t.count[slot], t.mean[slot], t.vars[slot]})
		t.count[slot], t.mean[slot], t.vars[slot] = t.next(slot, f.Num)
	}
	return nil
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
		delete(t.slots, t.names[last])
		t.names, t.count, t.mean, t.vars = t.names[:last], t.count[:last], t.mean[:last], t.vars[:last]
	}
}

// check reports whether Update would succeed, without changing anything.
func (t *Transformer) check(fields []Field) error {
	newSlots := 0
	for i := range fields {
		f := &fields[i]
		if f.Kind == String || t.ignored(f.Name) {
			continue
		}
		slot, ok := t.slots[string(f.Name)]
		if !ok {
			newSlots++
			if len(t.names)+newSlots > t.cfg.MaxNumeric {
				return fmt.Errorf("%w: %q would be number %d, the limit is %d",
					ErrTooManyFeatures, f.Name, len(t.names)+newSlots, t.cfg.MaxNumeric)
			}
			slot = -1
		}
		if math.Abs(f.Num) > MaxAbs {
			return fmt.Errorf("%w: feature %q = %g", ErrOutOfRange, f.Name, f.Num)
		}
		if _, mean, vars := t.next(slot, f.Num); !finite(mean) || !finite(vars) {
			return fmt.Errorf("%w: feature %q = %g", ErrNonFinite, f.Name, f.Num)
		}
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

func (t *Transformer) addSlot(name string) (int, error) {
	if len(t.names) >= t.cfg.MaxNumeric {
		return 0, fmt.Errorf("%w: %q would be number %d, the limit is %d",
			ErrTooManyFeatures, name, len(t.names)+1, t.cfg.MaxNumeric)
	}
	slot := len(t.names)
	t.slots[name] = slot
	t.names = append(t.names, name)
	t.count = append(t.count, 0)
	t.mean = append(t.mean, 0)
	t.vars = append(t.vars, 0)
	return slot, nil
}

func (t *Transformer) ignored(name []byte) bool {
	if len(t.ignore) == 0 {
		return false
	}
	_, ok := t.ignore[string(name)]
	return ok
}

// Vector is a transformed example: Dense holds the numeric slots (0 where a
// feature is absent), Index/Value the active hashed categorical indices.
// Reuse one Vector across calls; Transform resets it.
type Vector struct {
	Dense []float64
	Index []int
	Value []float64
}

// Transform writes the features of fields into dst using the current state,
// without changing it. Numeric features without a slot are skipped: they have
// no weight yet, so they cannot contribute to a prediction.
func (t *Transformer) Transform(fields []Field, dst *Vector) {
	n := len(t.names)
	if cap(dst.Dense) < n {
		dst.Dense = make([]float64, n, 2*n)
	}
	dst.Dense = dst.Dense[:n]
	clear(dst.Dense)
	dst.Index = dst.Index[:0]
	dst.Value = dst.Value[:0]
	for i := range fields {
		f := &fields[i]
		if t.ignored(f.Name) {
			continue
		}
		if f.Kind == String {
			dst.Index = append(dst.Index, t.hashIndex(f.Name, f.Str))
			dst.Value = append(dst.Value, 1)
			continue
		}
		if slot, ok := t.slots[string(f.Name)]; ok {
			dst.Dense[slot] = t.scale(slot, f.Num)
		}
	}
}

// Dot returns w·x + intercept, where x is what Transform would produce for
// fields. It is the prediction path for training and serving alike and
// allocates nothing. w must have length Dim (shorter is allowed: missing
// weights are 0).
func (t *Transformer) Dot(fields []Field, w []float64, intercept float64) float64 {
	sum := intercept
	for i := range fields {
		f := &fields[i]
		if t.ignored(f.Name) {
			continue
		}
		var idx int
		var x float64
		if f.Kind == String {
			idx, x = t.hashIndex(f.Name, f.Str), 1
		} else {
			slot, ok := t.slots[string(f.Name)]
			if !ok {
				continue
			}
			idx, x = slot, t.scale(slot, f.Num)
		}
		if idx < len(w) {
			sum += w[idx] * x
		}
	}
	return sum
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

// hashIndex maps name=value into the hashed space with 64-bit FNV-1a,
// computed inline so that hashing allocates nothing.
func (t *Transformer) hashIndex(name, value []byte) int {
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
	return t.cfg.MaxNumeric + int(h&(1<<t.cfg.HashBits-1))
}

// SetIgnore replaces the list of ignored field names. Ignoring a field does
// not move any index, so it may change between restarts.
func (t *Transformer) SetIgnore(names []string) {
	t.cfg.Ignore = append([]string(nil), names...)
	t.ignore = make(map[string]struct{}, len(names))
	for _, name := range names {
		t.ignore[name] = struct{}{}
	}
}

// Clone returns a deep copy that shares nothing with t.
func (t *Transformer) Clone() *Transformer {
	c := &Transformer{
		cfg:    t.cfg,
		ignore: t.ignore, // never written after New
		slots:  make(map[string]int, len(t.slots)),
		names:  append([]string(nil), t.names...),
		count:  append([]float64(nil), t.count...),
		mean:   append([]float64(nil), t.mean...),
		vars:   append([]float64(nil), t.vars...),
	}
	for k, v := range t.slots {
		c.slots[k] = v
	}
	return c
}

// Stats returns the scaler statistics of a numeric feature.
func (t *Transformer) Stats(name string) (count, mean, variance float64, ok bool) {
	slot, ok := t.slots[name]
	if !ok {
		return 0, 0, 0, false
	}
	return t.count[slot], t.mean[slot], t.vars[slot], true
}
