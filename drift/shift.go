package drift

import (
	"fmt"
	"slices"
	"sort"

	"github.com/eddyhq/eddy/features/codec"
)

// KindShift is the distribution-shift detector of a feature's own values
// (not of a model's error): see Shift.
const KindShift = "shift"

// ShiftConfig configures a Shift. The zero value of every field means its
// documented default.
type ShiftConfig struct {
	// Reference is how many values make the reference distribution: the
	// first ones seen, and again the first ones after each detection. The
	// default is 1000.
	Reference int
	// Window is how many of the newest values are compared with the
	// reference. The default is 500.
	Window int
	// Bins is the number of quantile bins of the reference (equal
	// frequencies in the reference). The default is 10.
	Bins int
	// Threshold is the Jensen–Shannon distance (base 2, from 0 for equal
	// distributions to 1 for disjoint ones) above which the window's
	// distribution has shifted from the reference. The default is 0.9: a
	// change of unit or a broken upstream join moves values out of the
	// reference's range and the distance towards 1, far above the distance
	// between two samples of one distribution (at most 0.15 over 50,000
	// uniform values with the other defaults) and above most of the
	// seasonal drift of real measurements (see the README for elec2).
	Threshold float64
}

// Shift defaults and limits.
const (
	DefaultShiftReference = 1000
	DefaultShiftWindow    = 500
	DefaultShiftBins      = 10
	DefaultShiftThreshold = 0.9
	maxShiftValues        = 1 << 20
	maxShiftBins          = 100
)

// EnsureDefaults fills zero fields with their defaults.
func (c *ShiftConfig) EnsureDefaults() {
	if c.Reference == 0 {
		c.Reference = DefaultShiftReference
	}
	if c.Window == 0 {
		c.Window = DefaultShiftWindow
	}
	if c.Bins == 0 {
		c.Bins = DefaultShiftBins
	}
	if c.Threshold == 0 {
		c.Threshold = DefaultShiftThreshold
	}
}

// Validate reports the first invalid setting.
func (c ShiftConfig) Validate() error {
	switch {
	case c.Reference < 1 || c.Reference > maxShiftValues:
		return fmt.Errorf("%w: shift reference %d out of range [1, %d]", ErrInvalidConfig, c.Reference, maxShiftValues)
	case c.Window < 1 || c.Window > maxShiftValues:
		return fmt.Errorf("%w: shift window %d out of range [1, %d]", ErrInvalidConfig, c.Window, maxShiftValues)
	case c.Bins < 2 || c.Bins > maxShiftBins || c.Bins > c.Reference:
		return fmt.Errorf("%w: shift bins %d out of range [2, min(%d, reference)]", ErrInvalidConfig, c.Bins, maxShiftBins)
	case !(c.Threshold > 0 && c.Threshold <= 1):
		return fmt.Errorf("%w: shift threshold %g out of range (0, 1]", ErrInvalidConfig, c.Threshold)
	}
	return nil
}

// Shift detects a change in the distribution of a stream of values (a
// feature's): it takes the first Reference values as the reference, bins
// them into Bins quantiles (plus a bin below and one above its range), and
// compares every newer value's window of the
// last Window with it by the Jensen–Shannon distance (every Window/50
// values). A distance above
// Threshold is a detection; the reference then starts again from the next
// values, so that one lasting change is detected once. It allocates
// nothing per value once the reference is built.
type Shift struct {
	cfg      ShiftConfig
	ref      []float64 // the reference values while it is being collected
	edges    []float64 // upper edges of the reference's quantile bins 1..Bins-1, once it is built
	lo, hi   float64   // the reference's range: bin 0 is below it, bin Bins+1 above
	refP     []float64 // reference probability of each of the Bins+2 bins
	win      BinWindow // bins of the newest values
	since    int       // values since the last comparison
	drift    bool
	distance float64
}

// NewShift returns a Shift for cfg (defaults applied).
func NewShift(cfg ShiftConfig) (*Shift, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Shift{cfg: cfg, win: NewBinWindow(cfg.Bins + 2)}, nil
}

// Config returns the configuration, defaults applied.
func (s *Shift) Config() ShiftConfig { return s.cfg }

// Reset forgets every value, reference included.
func (s *Shift) Reset() {
	s.ref, s.edges, s.refP, s.since = s.ref[:0], nil, nil, 0
	s.win.Reset()
	s.drift, s.distance = false, 0
}

// Drift reports whether the last value completed a detection.
func (s *Shift) Drift() bool { return s.drift }

// Distance returns the Jensen–Shannon distance between the window and the
// reference as of the last value (0 until both are full).
func (s *Shift) Distance() float64 { return s.distance }

// Ready reports whether the reference is built and the window full: from
// then on every value is compared.
func (s *Shift) Ready() bool { return s.edges != nil && s.win.Len() == s.cfg.Window }

// Update takes one value and reports whether it completed a detection.
func (s *Shift) Update(x float64) bool {
	if !accepted(x) {
		return false
	}
	s.drift = false
	if s.edges == nil {
		s.ref = append(s.ref, x)
		if len(s.ref) == s.cfg.Reference {
			s.build()
		}
		return false
	}
	bin := uint8(s.bin(x))
	s.win.Add(bin, s.cfg.Window)
	if s.win.Len() < s.cfg.Window {
		return false
	}
	// Comparing costs a logarithm per bin: do it every Window/50 values
	// (every 10 with the defaults), which delays a detection by as much.
	if s.since++; s.since < s.every() {
		return false
	}
	s.since = 0
	s.distance = s.js()
	if s.distance > s.cfg.Threshold {
		s.drift = true
		d := s.distance
		s.Reset()
		s.drift, s.distance = true, d
		return true
	}
	return false
}

// every is how many values pass between two comparisons.
func (s *Shift) every() int { return max(1, s.cfg.Window/50) }

// build turns the collected reference into bins: Bins quantile bins over
// its range, and one bin below and one above the range, empty in the
// reference, so that values beyond anything the reference saw (a change of
// unit) make the distributions disjoint.
func (s *Shift) build() {
	sorted := slices.Clone(s.ref)
	slices.Sort(sorted)
	b := s.cfg.Bins
	s.lo, s.hi = sorted[0], sorted[len(sorted)-1]
	s.edges = make([]float64, b-1)
	for i := 1; i < b; i++ {
		s.edges[i-1] = sorted[i*len(sorted)/b]
	}
	s.refP = make([]float64, b+2)
	for _, x := range s.ref {
		s.refP[s.bin(x)]++
	}
	for i := range s.refP {
		s.refP[i] /= float64(len(s.ref))
	}
	s.ref = s.ref[:0]
}

// bin returns the bin of x: 0 below the reference's range, Bins+1 above
// it, else 1 + the first quantile bin whose upper edge is at least x.
func (s *Shift) bin(x float64) int {
	switch {
	case x < s.lo:
		return 0
	case x > s.hi:
		return s.cfg.Bins + 1
	}
	return 1 + sort.SearchFloat64s(s.edges, x)
}

// js returns the Jensen–Shannon distance (base 2) between the reference
// and the window.
func (s *Shift) js() float64 { return JSDistance(s.refP, &s.win) }

// AppendState appends the configuration and state to dst (see Decode).
func (s *Shift) AppendState(dst []byte) []byte {
	dst = append(dst, header(codeShift))
	dst = codec.AppendUvarints(dst, s.cfg.Reference, s.cfg.Window, s.cfg.Bins)
	dst = codec.AppendFloat(dst, s.cfg.Threshold)
	dst = codec.AppendBool(dst, s.drift)
	dst = codec.AppendFloat(dst, s.distance)
	dst = codec.AppendBool(dst, s.edges != nil)
	if s.edges == nil {
		dst = codec.AppendUvarints(dst, len(s.ref))
		for _, x := range s.ref {
			dst = codec.AppendFloat(dst, x)
		}
		return dst
	}
	dst = codec.AppendFloat(dst, s.lo)
	dst = codec.AppendFloat(dst, s.hi)
	for _, e := range s.edges {
		dst = codec.AppendFloat(dst, e)
	}
	for _, p := range s.refP {
		dst = codec.AppendFloat(dst, p)
	}
	dst = codec.AppendUvarints(dst, s.win.Len(), s.win.head, s.since)
	return append(dst, s.win.ring...)
}

func decodeShift(r *codec.Reader) (Detector, error) {
	var cfg ShiftConfig
	cfg.Reference = r.Int(maxShiftValues)
	cfg.Window = r.Int(maxShiftValues)
	cfg.Bins = r.Int(maxShiftBins)
	cfg.Threshold = r.FiniteFloat()
	if r.Err() != nil {
		return nil, r.Err()
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptState, err)
	}
	s, _ := NewShift(cfg)
	s.drift = r.Bool()
	s.distance = r.FiniteFloat()
	if !r.Bool() {
		n := r.Int(cfg.Reference - 1)
		for range n {
			s.ref = append(s.ref, r.FiniteFloat())
		}
		return s, r.Err()
	}
	s.lo, s.hi = r.FiniteFloat(), r.FiniteFloat()
	s.edges = make([]float64, cfg.Bins-1)
	for i := range s.edges {
		s.edges[i] = r.FiniteFloat()
	}
	s.refP = make([]float64, cfg.Bins+2)
	for i := range s.refP {
		s.refP[i] = r.FiniteFloat()
	}
	n, head, since := r.Int(cfg.Window), r.Int(cfg.Window), r.Int(cfg.Window)
	if r.Err() != nil {
		return nil, r.Err()
	}
	if n < cfg.Window && head != 0 || n == cfg.Window && head >= cfg.Window {
		return nil, fmt.Errorf("%w: shift window %d with head %d", ErrCorruptState, n, head)
	}
	ring := make([]uint8, 0, cfg.Window)
	for range n {
		b := r.Byte()
		if int(b) >= cfg.Bins+2 {
			return nil, fmt.Errorf("%w: shift bin %d of %d", ErrCorruptState, b, cfg.Bins+2)
		}
		ring = append(ring, b)
	}
	s.win.restore(ring, head)
	s.since = since
	return s, r.Err()
}
