package features

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddyhq/eddy/features/codec"
)

// WindowConfig derives aggregates of a numeric field over an entity's
// previous events: its last Size events (count window), or those whose event
// time falls in the last Duration before the event (sliding time window,
// [t−Duration, t)), or in the current Duration-aligned period (tumbling:
// [⌊t/Duration⌋·Duration, t)). Give Size or Duration.
type WindowConfig struct {
	// Field is the numeric field aggregated.
	Field string `yaml:"field"`
	// Size is the number of previous events of the entity covered.
	Size int `yaml:"size"`
	// Duration is the event-time span covered.
	Duration time.Duration `yaml:"duration"`
	// Tumbling aligns a Duration window to multiples of Duration instead of
	// sliding it.
	Tumbling bool `yaml:"tumbling"`
	// Aggs are the aggregates: count, sum, mean, var (population variance),
	// std, min, max, last, ewma (count windows only).
	// The default is mean.
	Aggs []string `yaml:"aggs"`
	// Alpha is the EWMA's weight of the newest value. The default is 0.3.
	Alpha float64 `yaml:"alpha"`
}

// LagConfig derives previous values of a numeric field.
type LagConfig struct {
	Field string `yaml:"field"`
	// Lags are how many events back: 1 is the entity's previous event.
	Lags []int `yaml:"lags"`
	// Diff adds, for each lag k, the current value minus the lag k value.
	Diff bool `yaml:"diff"`
}

// TargetConfig derives aggregates of an entity's past labels: only labels
// already known when the event arrives, so no future information leaks.
type TargetConfig struct {
	// Size is the number of previous labels covered; 1 is the previous label.
	Size int `yaml:"size"`
}

// Derived feature names: <field>_w<size>_<agg>, <field>_lag<k>,
// <field>_diff<k>, label_mean<size> (label_last for size 1). A derived
// feature is absent while its history is empty.

// The aggregates of a window.
var windowAggs = []string{"count", "sum", "mean", "var", "std", "min", "max", "last", "ewma"}

const maxHistory = 10000 // largest window size, lag or target size

// HasHistory reports whether the configuration derives features from
// entity histories (windows, lags, targets): a model that does keeps per
// entity state besides its weights.
func (c *Config) HasHistory() bool { return c.historyEnabled() }

func (c *Config) historyEnabled() bool {
	return len(c.Windows) > 0 || len(c.Lags) > 0 || len(c.Targets) > 0
}

func (c *Config) validateHistory() error {
	for _, w := range c.Windows {
		if w.Field == "" || (w.Size == 0) == (w.Duration == 0) {
			return fmt.Errorf("features: window on %q: give a field and exactly one of size and duration", w.Field)
		}
		if w.Size < 0 || w.Size > maxHistory || w.Duration < 0 {
			return fmt.Errorf("features: window on %q: size %d out of range [1, %d]", w.Field, w.Size, maxHistory)
		}
		if w.Tumbling && w.Duration == 0 {
			return fmt.Errorf("features: window on %q: tumbling needs a duration", w.Field)
		}
		if w.Duration > 0 && slices.Contains(w.Aggs, "ewma") {
			return fmt.Errorf("features: window on %q: ewma is for count windows", w.Field)
		}
		for _, a := range w.Aggs {
			if !slices.Contains(windowAggs, a) {
				return fmt.Errorf("features: window on %q: unknown aggregate %q (want %v)", w.Field, a, windowAggs)
			}
		}
		if w.Alpha < 0 || w.Alpha > 1 {
			return fmt.Errorf("features: window on %q: alpha %v out of range (0, 1]", w.Field, w.Alpha)
		}
	}
	for _, l := range c.Lags {
		if l.Field == "" || len(l.Lags) == 0 {
			return fmt.Errorf("features: a lag needs a field and lags")
		}
		for _, k := range l.Lags {
			if k < 1 || k > maxHistory {
				return fmt.Errorf("features: lag %d of %q out of range [1, %d]", k, l.Field, maxHistory)
			}
		}
	}
	for _, t := range c.Targets {
		if t.Size < 1 || t.Size > maxHistory {
			return fmt.Errorf("features: target size %d out of range [1, %d]", t.Size, maxHistory)
		}
	}
	switch c.LatePolicy {
	case "", LateDrop, LateInclude:
	default:
		return fmt.Errorf("features: late_policy %q: want drop or include", c.LatePolicy)
	}
	if c.AllowedLateness < 0 {
		return fmt.Errorf("features: allowed_lateness must not be negative")
	}
	if c.MaxFuture < 0 {
		return fmt.Errorf("features: max_future must not be negative")
	}
	return nil
}

// DefaultMaxFuture is the default of Config.MaxFuture: producers' clocks a
// little ahead are normal, an hour ahead is not.
const DefaultMaxFuture = time.Hour

// Late-event policies for time windows.
const (
	LateDrop    = "drop"    // a late event does not enter time windows (it is counted)
	LateInclude = "include" // a late event enters time windows at its event time (it is counted)
)

// maxTimed bounds the events one entity keeps for its time windows.
const maxTimed = 100000

// timed is one event's value in a time window buffer.
type timed struct {
	at int64 // event time, unix nanoseconds
	x  float64
}

// derived is one feature the History computes.
type derived struct {
	name     []byte
	source   int    // index into History.sources, or History.timed for time windows
	kind     string // window aggregate, "lag", "diff" or "target"
	size     int    // window size, lag k or target size
	alpha    float64
	duration int64 // time windows: span in nanoseconds (0: not a time window)
	tumbling bool
}

// source is a field (or the label) whose recent values an entity keeps, in
// a ring of the largest size any derived feature needs.
type source struct {
	field  []byte
	depth  int // ring size
	offset int // where its ring starts in entity.vals
}

// DefaultMaxEntitiesInMemory is the default of Config.MaxEntitiesInMemory:
// about 360 MB for a window of 10 values (EstimatedBytes).
const DefaultMaxEntitiesInMemory = 1_000_000

// Loader reads the stored encoding of one entity's history (what
// WriteChanges handed out for it), ok false when none is stored. It may be
// called from any goroutine, also while the History is being written.
type Loader func(key []byte) (data []byte, ok bool, err error)

// History keeps, per entity, the recent values of the fields that windows
// and lags use and the recent labels, and derives features from them. It is
// the live state of a model's feature pipeline: the engine's goroutine
// writes it (Observe), and Predict reads it concurrently (Derive), under a
// read-write lock so that a prediction sees exactly what training would.
//
// Without a Loader every entity is held in memory. With one (SetLoader),
// memory is a cache of the store: an entity not in memory is read from it
// when an event (Fetch, Observe) or a prediction (Derive) needs it, and
// once a checkpoint has stored every change (ApplyChanges) the entities
// beyond the bound leave memory, least recently used first: events keep
// their entities in order of use; a prediction, which may not reorder them
// (it holds the read lock only), marks its entity, and a marked entity at
// the end of the line goes back to its front instead of leaving.
type History struct {
	derived []derived
	sources []source // the label is the last source when targets exist
	slots   int      // ring slots of all sources: the length of entity.vals
	label   int      // index of the label source, -1 when none

	ttl   time.Duration    // evict entities idle this long; 0: never
	now   func() time.Time // the clock of idleness
	swept time.Time        // last eviction sweep

	timedFields [][]byte // fields of time windows
	span        int64    // longest time window, nanoseconds
	lateness    int64    // allowed lateness, nanoseconds
	maxFuture   int64    // how far ahead of the clock an event time may be, nanoseconds
	includeLate bool
	late        uint64 // late events seen
	future      uint64 // events beyond maxFuture seen

	load      Loader // nil: every entity is in memory
	max       int    // entities held once changes are stored; with load only
	timedHeld int    // time-window events held by all entities (for EstimatedBytes)

	hits, misses, unloaded atomic.Uint64

	mu       sync.RWMutex
	entities map[string]*entity
	newest   *entity             // the entities held in order of use, newest first
	oldest   *entity             // the end of that list
	dirty    map[string]struct{} // entities changed since the last TakeDirty
	spare    map[string]struct{} // an empty map with room, to swap in for dirty
}

// entity is one key's history: per source a ring of its last values (newest
// at head), how many are filled, and EWMA states.
type entity struct {
	key        string      // its key in History.entities
	prev, next *entity     // newer and older in the order of use
	used       atomic.Bool // read by a prediction since it last moved in that order
	seen       int64       // unix nanoseconds of the last Observe
	watermark  int64       // largest event time seen (time windows)
	timed      [][]timed   // per time-window field: recent events by event time
	vals       []float64
	head       []int32
	filled     []int32
	ewma       []float64
}

// NewHistory returns the History of cfg, or nil if cfg derives nothing.
func NewHistory(cfg Config) *History {
	if !cfg.historyEnabled() {
		return nil
	}
	h := &History{entities: make(map[string]*entity), dirty: make(map[string]struct{}), label: -1, ttl: cfg.EntityTTL, now: time.Now,
		max:      cmp.Or(cfg.MaxEntitiesInMemory, DefaultMaxEntitiesInMemory),
		lateness: int64(cfg.AllowedLateness), maxFuture: int64(cmp.Or(cfg.MaxFuture, DefaultMaxFuture)), includeLate: cfg.LatePolicy == LateInclude}
	src := func(field string, depth int) int {
		for i, s := range h.sources {
			if string(s.field) == field {
				h.sources[i].depth = max(s.depth, depth)
				return i
			}
		}
		h.sources = append(h.sources, source{field: []byte(field), depth: depth})
		return len(h.sources) - 1
	}
	for _, w := range cfg.Windows {
		aggs := w.Aggs
		if len(aggs) == 0 {
			aggs = []string{"mean"}
		}
		if w.Duration > 0 {
			i := slices.IndexFunc(h.timedFields, func(f []byte) bool { return string(f) == w.Field })
			if i < 0 {
				h.timedFields = append(h.timedFields, []byte(w.Field))
				i = len(h.timedFields) - 1
			}
			h.span = max(h.span, int64(w.Duration))
			kind := "t"
			if w.Tumbling {
				kind = "tt"
			}
			for _, a := range aggs {
				name := w.Field + "_" + kind + w.Duration.String() + "_" + a
				h.derived = append(h.derived, derived{name: []byte(name), source: i, kind: a, duration: int64(w.Duration), tumbling: w.Tumbling})
			}
			continue
		}
		i := src(w.Field, w.Size)
		if len(aggs) == 0 {
			aggs = []string{"mean"}
		}
		alpha := w.Alpha
		if alpha == 0 {
			alpha = 0.3
		}
		for _, a := range aggs {
			h.derived = append(h.derived, derived{name: []byte(w.Field + "_w" + strconv.Itoa(w.Size) + "_" + a), source: i, kind: a, size: w.Size, alpha: alpha})
		}
	}
	for _, l := range cfg.Lags {
		i := src(l.Field, slices.Max(l.Lags))
		for _, k := range l.Lags {
			h.derived = append(h.derived, derived{name: []byte(l.Field + "_lag" + strconv.Itoa(k)), source: i, kind: "lag", size: k})
			if l.Diff {
				h.derived = append(h.derived, derived{name: []byte(l.Field + "_diff" + strconv.Itoa(k)), source: i, kind: "diff", size: k})
			}
		}
	}
	if len(cfg.Targets) > 0 {
		depth := 0
		for _, t := range cfg.Targets {
			depth = max(depth, t.Size)
		}
		h.sources = append(h.sources, source{field: nil, depth: depth})
		h.label = len(h.sources) - 1
		for _, t := range cfg.Targets {
			name := "label_mean" + strconv.Itoa(t.Size)
			if t.Size == 1 {
				name = "label_last"
			}
			h.derived = append(h.derived, derived{name: []byte(name), source: h.label, kind: "target", size: t.Size})
		}
	}
	total := 0
	for i := range h.sources {
		h.sources[i].offset = total
		total += h.sources[i].depth
	}
	h.slots = total
	return h
}

// SetLoader backs the History with a store that load reads (see
// History): memory then holds at most Config.MaxEntitiesInMemory entities
// once changes are stored. Call it before the History is used.
func (h *History) SetLoader(load Loader) { h.load = load }

func (h *History) newEntity() *entity {
	return &entity{
		timed:  make([][]timed, len(h.timedFields)),
		vals:   make([]float64, h.slots),
		head:   make([]int32, len(h.sources)),
		filled: make([]int32, len(h.sources)),
		ewma:   make([]float64, len(h.derived)),
	}
}

// ring returns the ring of source i within e.vals.
func (h *History) ring(e *entity, i int) []float64 {
	s := &h.sources[i]
	return e.vals[s.offset : s.offset+s.depth]
}

// back returns the value k events back (1 = the previous one) of source i.
func (h *History) back(e *entity, i, k int) (float64, bool) {
	if k > int(e.filled[i]) {
		return 0, false
	}
	r := h.ring(e, i)
	pos := (int(e.head[i]) - k + len(r)*2) % len(r)
	return r[pos], true
}

func fieldValue(fields []Field, name []byte) (float64, bool) {
	for i := range fields {
		if fields[i].Kind != String && string(fields[i].Name) == string(name) {
			return fields[i].Num, true
		}
	}
	return 0, false
}

// Derive appends to dst the derived features of an event of entity key with
// fields, computed from the entity's history before this event. It does not
// change the history and is safe to call concurrently with Observe. An
// entity not in memory is read from the Loader, and derives exactly what it
// would in memory; the error is the Loader's (dst is returned as it came).
func (h *History) Derive(key []byte, at time.Time, fields, dst []Field) ([]Field, error) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	e := h.entities[string(key)]
	switch {
	case e != nil:
		e.used.Store(true)
	case h.load == nil:
		return dst, nil
	default:
		// Under the read lock: the entity cannot be loaded, changed and
		// unloaded meanwhile, so what is read is its newest state.
		stored, err := h.read(key)
		if err != nil || stored == nil {
			return dst, err
		}
		e = stored
	}
	var w windowStats
	for di := range h.derived {
		d := &h.derived[di]
		x, ok := h.value(e, di, d, at.UnixNano(), fields, &w)
		if ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
			dst = append(dst, Field{Name: d.name, Kind: Number, Num: x})
		}
	}
	return dst, nil
}

// read reads entity key from the Loader (a miss), nil when none is stored.
func (h *History) read(key []byte) (*entity, error) {
	h.misses.Add(1)
	data, ok, err := h.load(key)
	if err != nil {
		return nil, fmt.Errorf("features: reading the history of entity %q: %w", key, err)
	}
	if !ok {
		return nil, nil
	}
	return h.decode(key, data)
}

// Fetch makes sure the history of entity key is in memory, reading it from
// the Loader if need be (an entity the store does not hold either starts
// empty, unchanged until Observe), so that the Derive and Observe of its
// event find it there. Engine goroutine only.
func (h *History) Fetch(key []byte) error {
	if h.entities[string(key)] != nil {
		h.hits.Add(1)
		return nil
	}
	_, err := h.fetch(key, true)
	return err
}

// fetch returns the entity of key in memory: held, else read from the
// Loader; else, with create, a new one (nil otherwise). Writer only: the
// map is read without the lock, which only the writer's inserts need.
func (h *History) fetch(key []byte, create bool) (*entity, error) {
	if e := h.entities[string(key)]; e != nil {
		return e, nil
	}
	var e *entity
	if h.load != nil {
		var err error
		if e, err = h.read(key); err != nil {
			return nil, err
		}
	}
	if e == nil {
		if !create {
			return nil, nil
		}
		e = h.newEntity()
	}
	h.mu.Lock()
	h.insert(string(key), e)
	h.mu.Unlock()
	return e, nil
}

// insert holds e as entity key, the newest used; under the write lock.
func (h *History) insert(key string, e *entity) {
	if old := h.entities[key]; old != nil {
		h.remove(old)
	}
	e.key = key
	h.entities[key] = e
	h.pushNewest(e)
	h.timedHeld += e.timedLen()
}

// remove forgets e from memory; under the write lock.
func (h *History) remove(e *entity) {
	h.unlink(e)
	delete(h.entities, e.key)
	h.timedHeld -= e.timedLen()
}

// use makes e the newest used; under the write lock.
func (h *History) use(e *entity) {
	if h.newest != e {
		h.unlink(e)
		h.pushNewest(e)
	}
}

func (h *History) pushNewest(e *entity) {
	e.prev, e.next = nil, h.newest
	if h.newest != nil {
		h.newest.prev = e
	} else {
		h.oldest = e
	}
	h.newest = e
}

func (h *History) unlink(e *entity) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		h.newest = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		h.oldest = e.prev
	}
	e.prev, e.next = nil, nil
}

func (e *entity) timedLen() int {
	n := 0
	for _, buf := range e.timed {
		n += len(buf)
	}
	return n
}

// value computes one derived feature of an event at time t. w holds the
// summary of the last window read; the aggregates of one window are
// consecutive in h.derived, so each window is read once per Derive.
func (h *History) value(e *entity, di int, d *derived, t int64, fields []Field, w *windowStats) (float64, bool) {
	switch d.kind {
	case "lag":
		return h.back(e, d.source, d.size)
	case "diff":
		past, ok := h.back(e, d.source, d.size)
		now, ok2 := fieldValue(fields, h.sources[d.source].field)
		return now - past, ok && ok2
	case "ewma":
		return e.ewma[di], e.filled[d.source] > 0
	}
	if !w.covers(d) {
		h.summarise(e, d, t, w)
	}
	if w.sum.n == 0 {
		return 0, false
	}
	switch d.kind {
	case "count":
		return float64(w.sum.n), true
	case "sum":
		return w.sum.sum(), true
	case "var":
		return w.variance(), true
	case "std":
		return math.Sqrt(w.variance()), true
	case "min":
		return w.sum.lo, true
	case "max":
		return w.sum.hi, true
	case "last":
		return w.last, true
	}
	return w.sum.mean(), true // "mean", "target"
}

// windowStats is what Derive knows of one window of one entity: where its
// values are and their summary, computed once for all its aggregates.
type windowStats struct {
	valid    bool
	source   int
	size     int   // count windows and targets: how many values back
	duration int64 // time windows
	tumbling bool

	older, newer []float64 // count windows: the values, in up to two pieces of the ring
	timed        []timed   // time windows: the values
	sum          summary
	last         float64
	spread       float64 // population variance, once hasSpread
	hasSpread    bool
}

func (w *windowStats) covers(d *derived) bool {
	return w.valid && w.source == d.source && w.size == d.size && w.duration == d.duration && w.tumbling == d.tumbling
}

// summarise makes w the window of d for an event at time t: a time window
// [t−duration, t) (tumbling: from t floored to a multiple of the duration),
// or the last size values of a count window or target.
func (h *History) summarise(e *entity, d *derived, t int64, w *windowStats) {
	*w = windowStats{valid: true, source: d.source, size: d.size, duration: d.duration, tumbling: d.tumbling}
	if d.duration > 0 {
		lo := t - d.duration
		if d.tumbling {
			lo = t - ((t%d.duration)+d.duration)%d.duration // floor to a multiple, also before 1970
		}
		buf := e.timed[d.source]
		from, _ := slices.BinarySearchFunc(buf, lo, func(v timed, at int64) int { return cmpInt(v.at, at) })
		to, _ := slices.BinarySearchFunc(buf, t, func(v timed, at int64) int { return cmpInt(v.at, at) })
		w.timed = buf[from:to]
		for _, v := range w.timed {
			w.sum.add(v.x)
		}
		if len(w.timed) > 0 {
			w.last = w.timed[len(w.timed)-1].x
		}
		return
	}
	n := min(int(e.filled[d.source]), d.size)
	w.older, w.newer = h.recent(e, d.source, n)
	for _, x := range w.older {
		w.sum.add(x)
	}
	for _, x := range w.newer {
		w.sum.add(x)
	}
	w.last, _ = h.back(e, d.source, 1)
}

// variance returns the population variance of the window, computed on first
// use with a second pass over its values.
func (w *windowStats) variance() float64 {
	if !w.hasSpread {
		dev := spread{mean: w.sum.mean()}
		for _, x := range w.older {
			dev.add(x)
		}
		for _, x := range w.newer {
			dev.add(x)
		}
		for _, v := range w.timed {
			dev.add(v.x)
		}
		w.spread, w.hasSpread = dev.variance(w.sum.n), true
	}
	return w.spread
}

// recent returns the last n values of source i, oldest first, as the two
// pieces of its ring they occupy (newer is empty unless they wrap).
func (h *History) recent(e *entity, i, n int) (older, newer []float64) {
	r, head := h.ring(e, i), int(e.head[i])
	if n <= head {
		return r[head-n : head], nil
	}
	return r[len(r)-(n-head):], r[:head]
}

// summary accumulates a window's values in one pass: their count, min, max
// and sum. The sum is compensated (Neumaier), so it is exact whenever the
// true sum is representable and the values are within a factor 2^53 of
// each other, whatever their order: 1e17 + 1 − 1e17 is 1, not 0.
type summary struct {
	n           int
	total, comp float64 // the sum is total + comp
	lo, hi      float64
}

func (s *summary) add(x float64) {
	if s.n == 0 {
		s.lo, s.hi = x, x
	}
	s.n++
	s.lo, s.hi = min(s.lo, x), max(s.hi, x)
	t := s.total + x
	if math.Abs(s.total) >= math.Abs(x) {
		s.comp += (s.total - t) + x
	} else {
		s.comp += (x - t) + s.total
	}
	s.total = t
}

func (s *summary) sum() float64  { return s.total + s.comp }
func (s *summary) mean() float64 { return s.sum() / float64(s.n) }

// spread is the second pass of the corrected two-pass variance (Chan,
// Golub and LeVeque): deviations from the mean, whose squares stay small
// where E[x²]−E[x]² would cancel every digit (a variance of 2/3 among
// values near 1e12, whose squares are 1e24).
type spread struct {
	mean    float64
	dev, sq float64 // Σ(x−mean), Σ(x−mean)²
}

func (v *spread) add(x float64) {
	d := x - v.mean
	v.dev += d
	v.sq += d * d
}

// variance is the population variance of the n values added.
func (v *spread) variance(n int) float64 {
	return max((v.sq-v.dev*v.dev/float64(n))/float64(n), 0)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// observeTimed adds an event at time t to the time-window buffers, unless it
// is more than maxFuture ahead of now (the processing clock), or late (older
// than the watermark minus the allowed lateness) and the policy drops late
// events. It reports whether the event was late.
func (h *History) observeTimed(e *entity, t, now int64, fields []Field) bool {
	if len(h.timedFields) == 0 {
		return false
	}
	limit := addSaturating(now, h.maxFuture)
	if t > limit {
		h.future++ // like a dropped late event: it must not move the watermark
		return false
	}
	if e.watermark > limit {
		e.forgetBeyond(limit)
	}
	late := e.watermark != 0 && t < e.watermark-h.lateness
	if late {
		h.late++
		if !h.includeLate {
			return true
		}
	}
	e.watermark = max(e.watermark, t)
	horizon := e.watermark - h.span - h.lateness
	for i, f := range h.timedFields {
		x, ok := fieldValue(fields, f)
		if !ok || math.IsNaN(x) || math.IsInf(x, 0) || t < horizon {
			continue
		}
		buf := e.timed[i]
		pos, _ := slices.BinarySearchFunc(buf, t+1, func(v timed, at int64) int { return cmpInt(v.at, at) }) // after equal times: arrival order
		buf = slices.Insert(buf, pos, timed{t, x})
		// Forget what no window can reach any more, and bound the buffer.
		drop, _ := slices.BinarySearchFunc(buf, horizon, func(v timed, at int64) int { return cmpInt(v.at, at) })
		drop = max(drop, len(buf)-maxTimed)
		e.timed[i] = buf[drop:]
	}
	return late
}

// forgetBeyond drops what an entity holds beyond limit and lowers its
// watermark to the newest time it keeps: state stored before event times
// were bounded by MaxFuture, or a processing clock set back, must not keep
// every later event late.
func (e *entity) forgetBeyond(limit int64) {
	e.watermark = 0
	for i, buf := range e.timed {
		keep, _ := slices.BinarySearchFunc(buf, limit+1, func(v timed, at int64) int { return cmpInt(v.at, at) })
		e.timed[i] = buf[:keep]
		if keep > 0 {
			e.watermark = max(e.watermark, buf[keep-1].at)
		}
	}
}

func addSaturating(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Late returns how many late events time windows have seen.
func (h *History) Late() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.late
}

// Future returns how many events time windows have left out for being
// more than Config.MaxFuture ahead of the processing clock.
func (h *History) Future() uint64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.future
}

// Observe adds an event of entity key to its history: its values of every
// source field (absent fields leave their history as is) and, with a
// label, the label. An entity not in memory is read from the Loader first
// (Fetch); the error is the Loader's, and then nothing changed. Engine
// goroutine only.
func (h *History) Observe(key []byte, at time.Time, fields []Field, label float64, hasLabel bool) error {
	e, err := h.fetch(key, true)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.use(e)
	now := h.now().UnixNano()
	if !at.IsZero() && len(h.timedFields) > 0 {
		before := e.timedLen()
		h.observeTimed(e, at.UnixNano(), now, fields)
		h.timedHeld += e.timedLen() - before
	}
	if _, ok := h.dirty[string(key)]; !ok { // a lookup does not allocate; an insert does
		h.dirty[string(key)] = struct{}{}
	}
	e.seen = now
	for i := range h.sources {
		var x float64
		var ok bool
		if i == h.label {
			x, ok = label, hasLabel
		} else {
			x, ok = fieldValue(fields, h.sources[i].field)
		}
		if !ok || math.IsNaN(x) || math.IsInf(x, 0) {
			continue
		}
		for di := range h.derived {
			if d := &h.derived[di]; d.source == i && d.kind == "ewma" {
				if e.filled[i] == 0 {
					e.ewma[di] = x
				} else {
					e.ewma[di] = d.alpha*x + (1-d.alpha)*e.ewma[di]
				}
			}
		}
		r := h.ring(e, i)
		r[e.head[i]] = x
		e.head[i] = int32((int(e.head[i]) + 1) % len(r))
		e.filled[i] = int32(min(int(e.filled[i])+1, len(r)))
	}
	return nil
}

// Entities returns how many entity histories are held in memory (without
// a Loader: how many entities have a history).
func (h *History) Entities() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.entities)
}

// Holds reports whether the history of entity key is in memory.
func (h *History) Holds(key []byte) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.entities[string(key)] != nil
}

// CacheStats counts the History's lookups of entities since it was made.
type CacheStats struct {
	// Hits counts the events and labels (Fetch) that found their entity in
	// memory; Misses the lookups, by an event, a label or a prediction
	// (Derive), that did not and read the Loader: one store read each,
	// whether or not it held the entity.
	Hits, Misses uint64
	// Unloaded counts entities that left memory for the bound (they stay
	// stored), not those evicted for EntityTTL.
	Unloaded uint64
}

// Cache returns the History's lookup counts.
func (h *History) Cache() CacheStats {
	return CacheStats{Hits: h.hits.Load(), Misses: h.misses.Load(), Unloaded: h.unloaded.Load()}
}

// EstimatedBytes estimates the memory the histories held take: per entity
// its struct, rings, EWMA states and map entry (EntityBytes), plus 16
// bytes per event held for time windows. BenchmarkHistoryBytesPerEntity
// measures it against the heap.
func (h *History) EstimatedBytes() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return int64(len(h.entities))*int64(h.EntityBytes()) + int64(h.timedHeld)*16
}

// EntityBytes estimates the memory of one entity held, key and time-window
// events aside: about 262 bytes of struct, slice headers, map entry and
// order of use, 8 per ring slot and per derived feature (EWMA state), and 8
// per source (ring head and fill). BenchmarkHistoryBytesPerEntity finds it
// within 10% of the heap (below it for rings that fill a larger size
// class).
func (h *History) EntityBytes() int {
	return 262 + 8*h.slots + 8*len(h.derived) + 8*len(h.sources) + 24*len(h.timedFields)
}

// SetClock replaces the clock (time.Now by default) that idleness is
// measured with and that predictions take as their event time (Now), e.g.
// with the engine's.
func (h *History) SetClock(now func() time.Time) { h.now = now }

// Now returns the current time by the history's clock: the event time of a
// prediction, which is an event happening now.
func (h *History) Now() time.Time { return h.now() }

// historyVersion is the first byte of an encoded entity.
const historyVersion = 3

// TakeDirty calls fn with the encoding of every entity changed since the
// last call, then forgets those changes; if fn fails, they are all kept for
// the next call. fn must not call the History. TakeDirty may run beside
// Observe, Derive and another TakeDirty: the set of changes is swapped out
// under the write lock, so each change goes to exactly one call and a
// change made meanwhile waits for the next; encoding holds only the read
// lock, so predictions go on.
func (h *History) TakeDirty(fn func(key, value []byte) error) error {
	h.mu.Lock()
	taken := h.dirty
	h.dirty, h.spare = h.spare, nil
	if h.dirty == nil {
		h.dirty = make(map[string]struct{})
	}
	h.mu.Unlock()

	err := h.encodeEach(taken, fn)

	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		for key := range taken {
			h.dirty[key] = struct{}{}
		}
	}
	clear(taken) // keeps its room: reused, inserts into it do not allocate
	if h.spare == nil {
		h.spare = taken
	}
	return err
}

// HistoryChanges are what WriteChanges handed to one checkpoint, for
// ApplyChanges to make the History forget once the checkpoint is durable.
type HistoryChanges struct {
	written int       // entities encoded
	evict   []string  // entities idle for EntityTTL at the sweep
	swept   time.Time // the sweep's time; zero when none was due
}

// Written returns how many changed entities were encoded.
func (c HistoryChanges) Written() int { return c.written }

// Evicted returns how many idle entities are evicted once applied.
func (c HistoryChanges) Evicted() int { return len(c.evict) }

// Swept reports whether WriteChanges swept the entities held for
// EntityTTL: the entities only stored are then due a sweep too
// (StoredIdle).
func (c HistoryChanges) Swept() bool { return !c.swept.IsZero() }

// StoredIdle reports whether the stored encoding of an entity's history
// (what a Loader returns) was last observed before cutoff, reading only
// its first bytes: how the entities not in memory are swept for
// EntityTTL. An encoding it cannot read is not idle.
func StoredIdle(data []byte, cutoff time.Time) bool {
	if len(data) < 2 || data[0] != historyVersion {
		return false
	}
	seen, n := binary.Varint(data[1:])
	return n > 0 && seen < cutoff.UnixNano()
}

// TTL returns Config.EntityTTL: 0 when entities never expire.
func (h *History) TTL() time.Duration { return h.ttl }

// WriteChanges hands a checkpoint the History's changes without changing
// the History, so that a checkpoint that fails to commit loses nothing: set
// gets the encoding of every entity changed since the last ApplyChanges or
// TakeDirty, and, when a sweep is due (at most once per tenth of EntityTTL,
// at least a second apart), del gets the key of
// every entity not observed for EntityTTL, after every set. Once what set
// and del wrote is durable, ApplyChanges(c) forgets those changes and
// evicts those entities; if it never is, the next WriteChanges hands out
// the same changes and more. Between the two calls the History must not be
// written (Fetch, Observe, Load, TakeDirty): the engine's goroutine, which
// owns the History, makes both. set and del must not call the History;
// their arguments are valid during the call only. Derive may run meanwhile
// on any goroutine.
func (h *History) WriteChanges(set func(key, value []byte) error, del func(key []byte) error) (HistoryChanges, error) {
	var c HistoryChanges
	h.mu.RLock()
	c.written = len(h.dirty)
	h.mu.RUnlock()
	if err := h.encodeEach(h.dirty, set); err != nil {
		return HistoryChanges{}, err
	}
	if h.ttl <= 0 {
		return c, nil
	}
	now := h.now()
	if now.Sub(h.swept) < max(h.ttl/10, time.Second) {
		return c, nil
	}
	c.swept = now
	cutoff := now.Add(-h.ttl).UnixNano()
	h.mu.RLock()
	for key, e := range h.entities {
		if e.seen < cutoff {
			c.evict = append(c.evict, key)
		}
	}
	h.mu.RUnlock()
	for _, key := range c.evict {
		if err := del([]byte(key)); err != nil {
			return HistoryChanges{}, err
		}
	}
	return c, nil
}

// ApplyChanges makes the History forget the changes WriteChanges handed
// out in c, now durable, and the entities it evicted. With a Loader, every
// entity is then stored as held, and those beyond the bound leave memory
// (least recently used first); it returns how many did.
func (h *History) ApplyChanges(c HistoryChanges) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.dirty) // keeps its room: inserts into it do not allocate
	for _, key := range c.evict {
		if e := h.entities[key]; e != nil {
			h.remove(e)
		}
	}
	if !c.swept.IsZero() {
		h.swept = c.swept
	}
	if h.load == nil || h.max < 0 {
		return 0
	}
	unloaded := 0
	for len(h.entities) > h.max {
		e := h.oldest
		if e.used.Swap(false) { // predicted since it last moved: back to the front
			h.use(e)
			continue
		}
		h.remove(e)
		unloaded++
	}
	h.unloaded.Add(uint64(unloaded))
	return unloaded
}

// encodeEach calls fn with the encoding of each entity in keys that is
// still held (ApplyChanges may have dropped it since).
func (h *History) encodeEach(keys map[string]struct{}, fn func(key, value []byte) error) error {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var buf []byte
	for key := range keys {
		e := h.entities[key]
		if e == nil {
			continue
		}
		buf = h.appendEntity(buf[:0], e)
		if err := fn([]byte(key), buf); err != nil {
			return err
		}
	}
	return nil
}

func (h *History) appendEntity(dst []byte, e *entity) []byte {
	dst = append(dst, historyVersion)
	dst = binary.AppendVarint(dst, e.seen)
	dst = binary.AppendVarint(dst, e.watermark)
	dst = binary.AppendUvarint(dst, uint64(len(e.timed)))
	for _, buf := range e.timed {
		dst = binary.AppendUvarint(dst, uint64(len(buf)))
		for _, v := range buf {
			dst = binary.AppendVarint(dst, v.at)
			dst = codec.AppendFloat(dst, v.x)
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(e.vals)))
	for _, x := range e.vals {
		dst = codec.AppendFloat(dst, x)
	}
	for i := range e.head {
		dst = binary.AppendUvarint(dst, uint64(e.head[i]))
		dst = binary.AppendUvarint(dst, uint64(e.filled[i]))
	}
	for _, x := range e.ewma {
		dst = codec.AppendFloat(dst, x)
	}
	return dst
}

// ErrHistoryLayout is returned by Load for an entity stored under another
// window, lag or target configuration.
var ErrHistoryLayout = errors.New("features: stored history has another layout")

// Load restores one entity's history from its encoding into memory.
func (h *History) Load(key, data []byte) error {
	e, err := h.decode(key, data)
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.insert(string(key), e)
	h.mu.Unlock()
	return nil
}

// decode decodes the encoding of entity key's history. It reads only the
// History's layout, so it may run on any goroutine.
func (h *History) decode(key, data []byte) (*entity, error) {
	e := h.newEntity()
	r := codec.NewReader(data, ErrCorrupt)
	if r.Byte() != historyVersion || r.Err() != nil {
		return nil, fmt.Errorf("%w: entity %q", ErrCorrupt, key)
	}
	e.seen = r.Varint()
	e.watermark = r.Varint()
	if n := r.Count(); n != len(e.timed) {
		return nil, fmt.Errorf("%w: entity %q", ErrHistoryLayout, key)
	}
	for i := range e.timed {
		for n := r.Count(); n > 0 && r.Err() == nil; n-- {
			e.timed[i] = append(e.timed[i], timed{r.Varint(), r.Float()})
		}
	}
	if n := r.Uvarint(); n != uint64(len(e.vals)) {
		return nil, fmt.Errorf("%w: entity %q", ErrHistoryLayout, key)
	}
	for i := range e.vals {
		e.vals[i] = r.Float()
	}
	for i := range e.head {
		head, filled := r.Uvarint(), r.Uvarint()
		if depth := uint64(h.sources[i].depth); head >= depth || filled > depth {
			return nil, fmt.Errorf("%w: entity %q ring", ErrCorrupt, key)
		}
		e.head[i], e.filled[i] = int32(head), int32(filled)
	}
	for i := range e.ewma {
		e.ewma[i] = r.Float()
	}
	if r.Err() != nil {
		return nil, fmt.Errorf("%w: entity %q: %w", ErrCorrupt, key, r.Err())
	}
	return e, nil
}

// EntityKey returns the entity key of an event: the value of the key field
// (Config.Key) when there is one (a string as is, a number in its shortest
// form), else fallback (the event's key). The key is always written into
// dst's memory (dst[:0], grown if needed), never returned as fallback or a
// field itself: the caller owns the result and may pass it back as dst for
// the next event without ever writing into the event's buffers (a Kafka
// message key, a message value, a request string). It does not allocate once
// dst has grown.
func EntityKey(keyField string, fields []Field, fallback, dst []byte) []byte {
	if keyField != "" {
		for i := range fields {
			if string(fields[i].Name) != keyField {
				continue
			}
			if fields[i].Kind == String {
				return append(dst[:0], fields[i].Str...)
			}
			return strconv.AppendFloat(dst[:0], fields[i].Num, 'g', -1, 64)
		}
	}
	return append(dst[:0], fallback...)
}
