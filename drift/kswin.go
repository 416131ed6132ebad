package drift

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/eddyhq/eddy/features/codec"
)

// KSWINConfig configures a KSWIN detector. Its zero value means River's
// defaults (with seed 0); a zero field takes the default of that field.
type KSWINConfig struct {
	// Alpha is the significance level of the Kolmogorov–Smirnov test, in
	// (0, 1]. The default is 0.005.
	Alpha float64
	// WindowSize is how many recent values are kept, at most 65536. The
	// default is 100.
	WindowSize int
	// StatSize is how many of the newest values are compared with as many
	// drawn from the rest of the window; at most WindowSize/2. The default is
	// 30.
	StatSize int
	// Seed seeds the generator that draws the older sample. River's default
	// is a random seed; here it is 0, so that runs are reproducible.
	Seed uint64
}

// River's defaults for KSWIN.
const (
	defaultKSWINAlpha      = 0.005
	defaultKSWINWindowSize = 100
	defaultKSWINStatSize   = 30
	// maxKSWINWindowSize bounds the memory a (possibly corrupt) encoding can
	// make Decode allocate.
	maxKSWINWindowSize = 1 << 16
	// kswinStream is the second word of the PCG seed.
	kswinStream = 0x6b7377696e // "kswin"
	// kswinMinStatistic is River's extra condition: the KS statistic must
	// exceed it for a detection.
	kswinMinStatistic = 0.1
)

// EnsureDefaults sets the zero fields of c to River's defaults.
func (c *KSWINConfig) EnsureDefaults() {
	if c.Alpha == 0 {
		c.Alpha = defaultKSWINAlpha
	}
	if c.WindowSize == 0 {
		c.WindowSize = defaultKSWINWindowSize
	}
	if c.StatSize == 0 {
		c.StatSize = defaultKSWINStatSize
	}
}

// Validate reports whether c, with its zero fields taken as defaults, is a
// usable configuration. The error wraps ErrInvalidConfig.
func (c KSWINConfig) Validate() error {
	c.EnsureDefaults()
	switch {
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return invalid("KSWIN alpha must be in (0, 1], got %g", c.Alpha)
	case c.WindowSize < 2 || c.WindowSize > maxKSWINWindowSize:
		return invalid("KSWIN window_size must be in [2, %d], got %d", maxKSWINWindowSize, c.WindowSize)
	case c.StatSize < 1 || 2*c.StatSize > c.WindowSize:
		// River draws stat_size values from the window_size - stat_size
		// oldest without replacement.
		return invalid("KSWIN stat_size must be in [1, window_size/2 = %d], got %d", c.WindowSize/2, c.StatSize)
	}
	return nil
}

// KSWIN is River's KSWIN (Kolmogorov–Smirnov windowing, Raab et al. 2020):
// once its window of WindowSize values is full, every value it compares the
// StatSize newest values with StatSize drawn without replacement from the
// older ones, by a two-sample Kolmogorov–Smirnov test, and detects drift when
// the p-value is at most Alpha and the statistic exceeds 0.1. The p-value is
// scipy's exact one for equal sample sizes (ks_2samp's default for samples
// this small). After a detection the next Update starts from an empty window
// and a freshly seeded generator, as River's does.
//
// Detections do not match River's value for value: River draws the sample
// with Python's random.Random(seed).sample (and an unseeded generator by
// default), this detector with a PCG generator (math/rand/v2) seeded with
// Seed, so the samples, and near the threshold the outcomes, differ. The
// drawing is deterministic: the same seed and values give the same
// detections.
//
// A KSWIN is not safe for concurrent use.
type KSWIN struct {
	cfg KSWINConfig
	// window is a ring of the last filled values; the oldest is at start.
	window        []float64
	start, filled int
	// n counts the values since the last reset, as River's KSWIN.n.
	n      int
	rng    rand.PCG
	pValue float64
	drift  bool
	// Scratch space for one test, allocated once: the candidate positions
	// and the two sorted samples.
	positions      []int32
	older, younger []float64
}

// NewKSWIN returns a KSWIN configured by cfg (zero fields take River's
// defaults).
func NewKSWIN(cfg KSWINConfig) (*KSWIN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	k := &KSWIN{
		cfg:       cfg,
		window:    make([]float64, cfg.WindowSize),
		positions: make([]int32, cfg.WindowSize-cfg.StatSize),
		older:     make([]float64, cfg.StatSize),
		younger:   make([]float64, cfg.StatSize),
	}
	k.Reset()
	return k, nil
}

// Config returns the configuration of k, defaults filled in.
func (k *KSWIN) Config() KSWINConfig { return k.cfg }

// Reset empties the window and reseeds the generator, keeping the
// configuration and the memory.
func (k *KSWIN) Reset() {
	k.start, k.filled, k.n = 0, 0, 0
	k.rng.Seed(k.cfg.Seed, kswinStream)
	k.pValue = 0
	k.drift = false
}

// Drift reports whether the last accepted value was a detection.
func (k *KSWIN) Drift() bool { return k.drift }

// PValue returns the p-value of the last test, or 0 before the window first
// fills (as River's p_value).
func (k *KSWIN) PValue() float64 { return k.pValue }

// Update adds x to the window and, once it is full, tests it; it reports
// whether drift was detected. After a detection the next Update first resets
// the detector, as River's does. NaN, ±Inf and values beyond MaxValue are
// ignored (Update returns false and changes nothing).
func (k *KSWIN) Update(x float64) bool {
	if !accepted(x) {
		return false
	}
	if k.drift {
		k.Reset()
	}
	k.n++
	size := k.cfg.WindowSize
	if k.filled < size {
		k.window[(k.start+k.filled)%size] = x
		k.filled++
	} else {
		k.window[k.start] = x
		k.start = (k.start + 1) % size
	}
	if k.filled < size {
		return false
	}
	statistic := k.test()
	k.drift = k.pValue <= k.cfg.Alpha && statistic > kswinMinStatistic
	return k.drift
}

// at returns the i-th oldest value of the full window.
func (k *KSWIN) at(i int) float64 {
	i += k.start
	if i >= len(k.window) {
		i -= len(k.window)
	}
	return k.window[i]
}

// test draws the older sample, runs the two-sample KS test against the
// newest values, sets pValue and returns the statistic.
func (k *KSWIN) test() float64 {
	stat := k.cfg.StatSize
	// A partial Fisher–Yates shuffle of the positions [0, WindowSize -
	// StatSize) draws StatSize of them without replacement.
	for i := range k.positions {
		k.positions[i] = int32(i)
	}
	for i := range stat {
		j := i + k.uintN(len(k.positions)-i)
		k.positions[i], k.positions[j] = k.positions[j], k.positions[i]
		k.older[i] = k.at(int(k.positions[i]))
	}
	for i := range stat {
		k.younger[i] = k.at(k.cfg.WindowSize - stat + i)
	}
	slices.Sort(k.older)
	slices.Sort(k.younger)
	h := maxECDFGap(k.older, k.younger)
	k.pValue = ksEqualSizesPValue(stat, h)
	return float64(h) / float64(stat)
}

// uintN returns a uniform integer in [0, n) by Lemire's multiply-shift
// method.
func (k *KSWIN) uintN(n int) int {
	bound := uint64(n)
	hi, lo := bits.Mul64(k.rng.Uint64(), bound)
	if lo < bound {
		threshold := -bound % bound
		for lo < threshold {
			hi, lo = bits.Mul64(k.rng.Uint64(), bound)
		}
	}
	return int(hi)
}

// maxECDFGap returns n·D for two sorted samples of equal size n, D being the
// largest distance between their empirical distribution functions (ties
// handled as scipy's ks_2samp: the functions are compared after every
// distinct value).
func maxECDFGap(a, b []float64) int {
	i, j, gap := 0, 0, 0
	for i < len(a) && j < len(b) {
		v := min(a[i], b[j])
		for i < len(a) && a[i] <= v {
			i++
		}
		for j < len(b) && b[j] <= v {
			j++
		}
		gap = max(gap, i-j, j-i)
	}
	return gap
}

// ksEqualSizesPValue returns the exact two-sided p-value P(D ≥ h/n) of the
// two-sample Kolmogorov–Smirnov test for two samples of size n, as scipy's
// _compute_prob_outside_square, clipped to [0, 1].
func ksEqualSizesPValue(n, h int) float64 {
	if h == 0 {
		return 1
	}
	p := 0.0
	for k := n / h; k >= 0; k-- {
		term := 1.0
		for j := range h {
			term = float64(n-k*h-j) * term / float64(n+k*h+j+1)
		}
		p = term * (1 - p)
	}
	return math.Min(1, math.Max(0, 2*p))
}

// AppendState appends the state of k to dst; Decode restores it.
func (k *KSWIN) AppendState(dst []byte) []byte {
	dst = append(dst, header(codeKSWIN))
	dst = codec.AppendFloat(dst, k.cfg.Alpha)
	dst = codec.AppendUvarints(dst, k.cfg.WindowSize, k.cfg.StatSize)
	dst = binary.AppendUvarint(dst, k.cfg.Seed)
	dst = codec.AppendBool(dst, k.drift)
	dst = codec.AppendUvarints(dst, k.n)
	dst = codec.AppendFloat(dst, k.pValue)
	dst = codec.AppendUvarints(dst, k.filled)
	for i := range k.filled {
		dst = codec.AppendFloat(dst, k.at(i))
	}
	rng, _ := k.rng.AppendBinary(nil) // a PCG cannot fail to encode
	dst = codec.AppendUvarints(dst, len(rng))
	return append(dst, rng...)
}

func decodeKSWIN(r *codec.Reader) (Detector, error) {
	var cfg KSWINConfig
	cfg.Alpha = r.FiniteFloat()
	cfg.WindowSize = r.Int(maxKSWINWindowSize)
	cfg.StatSize = r.Int(maxKSWINWindowSize)
	cfg.Seed = r.Uvarint()
	if r.Err() != nil {
		return nil, r.Err()
	}
	r.FailWith(cfg.Validate())
	if r.Err() != nil {
		return nil, r.Err()
	}
	drift := r.Bool()
	n := r.Int(math.MaxInt)
	pValue := r.FiniteFloat()
	filled := r.Int(cfg.WindowSize)
	// Check that the values are there before allocating the window.
	values := r.Next(8 * filled)
	rng := r.Next(r.Int(64))
	if r.Err() != nil {
		return nil, r.Err()
	}
	k, err := NewKSWIN(cfg)
	if err != nil {
		return nil, err
	}
	vr := codec.NewReader(values, ErrCorruptState)
	for i := range filled {
		k.window[i] = vr.FiniteFloat()
	}
	if err := k.rng.UnmarshalBinary(rng); err != nil {
		r.Fail("KSWIN generator: %v", err)
	}
	if vr.Err() != nil {
		r.Fail("KSWIN window holds a value that is not finite")
	}
	if r.Err() == nil && (n < filled || !(pValue >= 0 && pValue <= 1)) {
		r.Fail("KSWIN count %d or p-value %g out of range", n, pValue)
	}
	k.drift, k.n, k.pValue, k.filled = drift, n, pValue, filled
	return k, r.Err()
}
