package drift

import (
	"fmt"
	"maps"
	"slices"

	"github.com/eddyhq/eddy/features/codec"
)

// CategoryShift detects a change in the distribution of a categorical
// feature: the first Reference values make the reference, with a bucket
// for each of its Top most frequent values, one for its other values and
// one for values it never saw; every Window/50 values the newest Window
// are compared with it by the Jensen–Shannon distance, and a distance
// above Threshold is a detection, after which the reference starts again.
// A broken upstream join that sends one placeholder for everything, or a
// flood of values never seen, moves the window's mass into a bucket the
// reference hardly has. It allocates nothing per value once the reference
// is built (while it is collected, a value not seen yet is copied).
type CategoryShift struct {
	cfg      ShiftConfig
	top      int
	counts0  map[string]int // the reference's values and counts, while it is collected
	n0       int
	buckets  map[string]uint8 // once built: a top value's bucket; the reference's others map to top
	refP     []float64        // top+2 buckets: top values, other seen values, never seen
	win      BinWindow
	since    int
	drift    bool
	distance float64
}

// Category shift limits.
const (
	DefaultCategoryTop = 20
	maxCategoryTop     = 100
	// maxTrackedValues bounds the distinct values a reference keeps: the
	// rest count as "other", not as "never seen".
	maxTrackedValues = 1000
)

// NewCategoryShift returns a CategoryShift for cfg (Bins is the number of
// top values; its default is 20) with defaults applied.
func NewCategoryShift(cfg ShiftConfig) (*CategoryShift, error) {
	top := cfg.Bins
	if top == 0 {
		top = DefaultCategoryTop
	}
	cfg.Bins = 2 // validated below as Shift's, which needs at least 2
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if top < 1 || top > maxCategoryTop {
		return nil, fmt.Errorf("%w: category shift top %d out of range [1, %d]", ErrInvalidConfig, top, maxCategoryTop)
	}
	cfg.Bins = top
	return &CategoryShift{cfg: cfg, top: top, counts0: make(map[string]int), win: NewBinWindow(top + 2)}, nil
}

// Config returns the configuration, defaults applied (Bins: the top values).
func (s *CategoryShift) Config() ShiftConfig { return s.cfg }

// Drift reports whether the last value completed a detection.
func (s *CategoryShift) Drift() bool { return s.drift }

// Distance returns the Jensen–Shannon distance as of the last comparison.
func (s *CategoryShift) Distance() float64 { return s.distance }

// Ready reports whether the reference is built and the window full.
func (s *CategoryShift) Ready() bool { return s.buckets != nil && s.win.Len() == s.cfg.Window }

// NewValueRate returns the share of the window's values the reference
// never saw.
func (s *CategoryShift) NewValueRate() float64 {
	if s.win.Len() == 0 {
		return 0
	}
	return float64(s.win.Count(s.top+1)) / float64(s.win.Len())
}

// Reset forgets every value, reference included.
func (s *CategoryShift) Reset() {
	s.counts0, s.n0, s.buckets, s.refP = make(map[string]int), 0, nil, nil
	s.win.Reset()
	s.since = 0
	s.drift, s.distance = false, 0
}

// Update takes one value and reports whether it completed a detection.
func (s *CategoryShift) Update(v []byte) bool {
	s.drift = false
	if s.buckets == nil {
		if c, ok := s.counts0[string(v)]; ok {
			s.counts0[string(v)] = c + 1
		} else if len(s.counts0) < maxTrackedValues {
			s.counts0[string(v)] = 1
		}
		s.n0++
		if s.n0 == s.cfg.Reference {
			s.build()
		}
		return false
	}
	bucket, seen := s.buckets[string(v)]
	if !seen {
		bucket = uint8(s.top + 1)
	}
	s.win.Add(bucket, s.cfg.Window)
	if s.win.Len() < s.cfg.Window {
		return false
	}
	if s.since++; s.since < max(1, s.cfg.Window/50) {
		return false
	}
	s.since = 0
	s.distance = JSDistance(s.refP, &s.win)
	if s.distance > s.cfg.Threshold {
		d := s.distance
		s.Reset()
		s.drift, s.distance = true, d
		return true
	}
	return false
}

// build turns the collected reference into buckets.
func (s *CategoryShift) build() {
	values := TopValues(s.counts0)
	s.buckets = make(map[string]uint8, len(values))
	s.refP = make([]float64, s.top+2)
	untracked := s.n0
	for i, v := range values {
		b := uint8(s.top) // other seen values
		if i < s.top {
			b = uint8(i)
		}
		s.buckets[v] = b
		s.refP[b] += float64(s.counts0[v])
		untracked -= s.counts0[v]
	}
	s.refP[s.top] += float64(untracked) // values beyond maxTrackedValues: "other"
	for i := range s.refP {
		s.refP[i] /= float64(s.n0)
	}
	s.counts0 = nil
}

// AppendState appends the configuration and state to dst (see
// DecodeCategoryShift).
func (s *CategoryShift) AppendState(dst []byte) []byte {
	dst = append(dst, formatVersion)
	dst = codec.AppendUvarints(dst, s.cfg.Reference, s.cfg.Window, s.top)
	dst = codec.AppendFloat(dst, s.cfg.Threshold)
	dst = codec.AppendBool(dst, s.drift)
	dst = codec.AppendFloat(dst, s.distance)
	dst = codec.AppendBool(dst, s.buckets != nil)
	if s.buckets == nil {
		dst = codec.AppendUvarints(dst, s.n0, len(s.counts0))
		for _, v := range slices.Sorted(maps.Keys(s.counts0)) {
			dst = codec.AppendString(dst, v)
			dst = codec.AppendUvarints(dst, s.counts0[v])
		}
		return dst
	}
	dst = codec.AppendUvarints(dst, len(s.buckets))
	for _, v := range slices.Sorted(maps.Keys(s.buckets)) {
		dst = codec.AppendString(dst, v)
		dst = append(dst, s.buckets[v])
	}
	for _, p := range s.refP {
		dst = codec.AppendFloat(dst, p)
	}
	dst = codec.AppendUvarints(dst, s.win.Len(), s.win.head, s.since)
	return append(dst, s.win.ring...)
}

// DecodeCategoryShift restores what AppendState wrote from the start of
// data and returns the bytes after it; a truncated or corrupt encoding is
// an error wrapping ErrCorruptState, never a panic.
func DecodeCategoryShift(data []byte) (*CategoryShift, []byte, error) {
	if len(data) == 0 || data[0] != formatVersion {
		return nil, nil, fmt.Errorf("%w: category shift: unknown format", ErrCorruptState)
	}
	r := codec.NewReader(data[1:], ErrCorruptState)
	var cfg ShiftConfig
	cfg.Reference, cfg.Window, cfg.Bins = r.Int(maxShiftValues), r.Int(maxShiftValues), r.Int(maxCategoryTop)
	cfg.Threshold = r.FiniteFloat()
	if r.Err() != nil {
		return nil, nil, r.Err()
	}
	s, err := NewCategoryShift(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	s.drift, s.distance = r.Bool(), r.FiniteFloat()
	if !r.Bool() {
		s.n0 = r.Int(cfg.Reference - 1)
		n := r.Int(maxTrackedValues)
		for range n {
			v := r.String()
			s.counts0[v] = r.Int(cfg.Reference)
		}
		if r.Err() != nil {
			return nil, nil, r.Err()
		}
		return s, r.Rest(), nil
	}
	n := r.Int(maxTrackedValues)
	s.buckets = make(map[string]uint8, n)
	for range n {
		v := r.String()
		b := r.Byte()
		if int(b) > s.top {
			return nil, nil, fmt.Errorf("%w: category shift bucket %d of %d", ErrCorruptState, b, s.top+2)
		}
		s.buckets[v] = b
	}
	s.refP = make([]float64, s.top+2)
	for i := range s.refP {
		s.refP[i] = r.FiniteFloat()
	}
	ringLen, head, since := r.Int(cfg.Window), r.Int(cfg.Window), r.Int(cfg.Window)
	if r.Err() != nil {
		return nil, nil, r.Err()
	}
	if ringLen < cfg.Window && head != 0 || ringLen == cfg.Window && head >= cfg.Window {
		return nil, nil, fmt.Errorf("%w: category shift window %d with head %d", ErrCorruptState, ringLen, head)
	}
	ring := make([]uint8, 0, cfg.Window)
	for range ringLen {
		b := r.Byte()
		if int(b) >= s.top+2 {
			return nil, nil, fmt.Errorf("%w: category shift bucket %d of %d", ErrCorruptState, b, s.top+2)
		}
		ring = append(ring, b)
	}
	s.win.restore(ring, head)
	s.since = since
	if r.Err() != nil {
		return nil, nil, r.Err()
	}
	return s, r.Rest(), nil
}
