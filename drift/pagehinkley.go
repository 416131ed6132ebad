package drift

import (
	"math"

	"github.com/eddyhq/eddy/features/codec"
)

// Mode is the direction of change a Page-Hinkley detector watches for.
type Mode string

// The modes of Page-Hinkley.
const (
	// ModeBoth detects increases and decreases of the mean (the default).
	ModeBoth Mode = "both"
	// ModeUp detects only increases of the mean.
	ModeUp Mode = "up"
	// ModeDown detects only decreases of the mean.
	ModeDown Mode = "down"
)

// PageHinkleyConfig configures a Page-Hinkley detector. Its zero value means
// River's defaults; a zero field takes the default of that field (so a Delta
// of exactly 0 cannot be asked for; use a tiny positive value).
type PageHinkleyConfig struct {
	// MinInstances is how many values the detector sees before it may
	// detect. The default is 30.
	MinInstances int
	// Delta is the magnitude of change tolerated, in the unit of the values.
	// The default is 0.005.
	Delta float64
	// Threshold is λ: a cumulative deviation beyond it is drift. The default
	// is 50.
	Threshold float64
	// Alpha is the forgetting factor of the cumulative sums, in (0, 1]. The
	// default is 1 - 0.0001.
	Alpha float64
	// Mode is the direction watched: ModeUp, ModeDown or ModeBoth (default).
	Mode Mode
}

// River's defaults for Page-Hinkley.
const (
	defaultPHMinInstances = 30
	defaultPHDelta        = 0.005
	defaultPHThreshold    = 50
	defaultPHAlpha        = 1 - 0.0001
)

// EnsureDefaults sets the zero fields of c to River's defaults.
func (c *PageHinkleyConfig) EnsureDefaults() {
	if c.MinInstances == 0 {
		c.MinInstances = defaultPHMinInstances
	}
	if c.Delta == 0 {
		c.Delta = defaultPHDelta
	}
	if c.Threshold == 0 {
		c.Threshold = defaultPHThreshold
	}
	if c.Alpha == 0 {
		c.Alpha = defaultPHAlpha
	}
	if c.Mode == "" {
		c.Mode = ModeBoth
	}
}

// Validate reports whether c, with its zero fields taken as defaults, is a
// usable configuration. The error wraps ErrInvalidConfig.
func (c PageHinkleyConfig) Validate() error {
	c.EnsureDefaults()
	switch {
	case c.MinInstances < 1:
		return invalid("Page-Hinkley min_instances must be at least 1, got %d", c.MinInstances)
	case !(c.Delta >= 0) || !finite(c.Delta):
		return invalid("Page-Hinkley delta must be a finite number ≥ 0, got %g", c.Delta)
	case !(c.Threshold > 0) || !finite(c.Threshold):
		return invalid("Page-Hinkley threshold must be a finite number > 0, got %g", c.Threshold)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return invalid("Page-Hinkley alpha must be in (0, 1], got %g", c.Alpha)
	case c.Mode != ModeBoth && c.Mode != ModeUp && c.Mode != ModeDown:
		return invalid("Page-Hinkley mode must be up, down or both, got %q", c.Mode)
	}
	return nil
}

// PageHinkley is River's Page-Hinkley test (Page 1954) with a forgetting
// factor: it accumulates the deviations of the values from their running
// mean, less a tolerance Delta, and detects drift when a cumulative sum moves
// more than Threshold from its extreme. Its detections match River's
// drift.PageHinkley exactly; after a detection the next Update starts afresh.
//
// A PageHinkley is not safe for concurrent use.
type PageHinkley struct {
	cfg PageHinkleyConfig
	// n and mean are River's stats.Mean of the values since the last reset.
	n, mean float64
	// sumIncrease and sumDecrease are the faded cumulative deviations, less
	// and plus Delta; minIncrease and maxDecrease their extremes (River
	// starts minIncrease at +Inf, which the first value always replaces).
	sumIncrease, sumDecrease float64
	minIncrease, maxDecrease float64
	drift                    bool
}

// NewPageHinkley returns a Page-Hinkley detector configured by cfg (zero
// fields take River's defaults).
func NewPageHinkley(cfg PageHinkleyConfig) (*PageHinkley, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	p := &PageHinkley{cfg: cfg}
	p.Reset()
	return p, nil
}

// Config returns the configuration of p, defaults filled in.
func (p *PageHinkley) Config() PageHinkleyConfig { return p.cfg }

// Reset forgets every value seen, keeping the configuration.
func (p *PageHinkley) Reset() {
	*p = PageHinkley{cfg: p.cfg, maxDecrease: -1}
}

// Drift reports whether the last accepted value was a detection.
func (p *PageHinkley) Drift() bool { return p.drift }

// Update adds x and reports whether drift was detected. After a detection
// the next Update first resets the detector, as River's does. NaN, ±Inf and
// values beyond MaxValue are ignored (Update returns false and changes
// nothing).
func (p *PageHinkley) Update(x float64) bool {
	if !accepted(x) {
		return false
	}
	if p.drift {
		p.Reset()
	}
	p.n++
	p.mean += (x - p.mean) / p.n
	dev := x - p.mean
	// The conversions keep the compiler from fusing multiply and add, which
	// would round differently from River.
	p.sumIncrease = float64(p.cfg.Alpha*p.sumIncrease) + dev - p.cfg.Delta
	p.sumDecrease = float64(p.cfg.Alpha*p.sumDecrease) + dev + p.cfg.Delta
	if p.n == 1 || p.sumIncrease < p.minIncrease {
		p.minIncrease = p.sumIncrease
	}
	if p.sumDecrease > p.maxDecrease {
		p.maxDecrease = p.sumDecrease
	}
	if p.n >= float64(p.cfg.MinInstances) {
		up := p.sumIncrease-p.minIncrease > p.cfg.Threshold
		down := p.maxDecrease-p.sumDecrease > p.cfg.Threshold
		switch p.cfg.Mode {
		case ModeUp:
			p.drift = up
		case ModeDown:
			p.drift = down
		default:
			p.drift = up || down
		}
	}
	return p.drift
}

// AppendState appends the state of p to dst; Decode restores it.
func (p *PageHinkley) AppendState(dst []byte) []byte {
	dst = append(dst, header(codePageHinkley))
	dst = codec.AppendUvarints(dst, p.cfg.MinInstances)
	dst = codec.AppendFloat(dst, p.cfg.Delta)
	dst = codec.AppendFloat(dst, p.cfg.Threshold)
	dst = codec.AppendFloat(dst, p.cfg.Alpha)
	dst = append(dst, modeCode(p.cfg.Mode))
	dst = codec.AppendBool(dst, p.drift)
	for _, v := range [...]float64{p.n, p.mean, p.sumIncrease, p.sumDecrease, p.minIncrease, p.maxDecrease} {
		dst = codec.AppendFloat(dst, v)
	}
	return dst
}

func modeCode(m Mode) byte {
	switch m {
	case ModeUp:
		return 1
	case ModeDown:
		return 2
	}
	return 0
}

func decodePageHinkley(r *codec.Reader) (Detector, error) {
	var cfg PageHinkleyConfig
	cfg.MinInstances = r.Int(math.MaxInt32)
	cfg.Delta = r.FiniteFloat()
	cfg.Threshold = r.FiniteFloat()
	cfg.Alpha = r.FiniteFloat()
	switch mode := r.Int(2); mode {
	case 0:
		cfg.Mode = ModeBoth
	case 1:
		cfg.Mode = ModeUp
	case 2:
		cfg.Mode = ModeDown
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	r.FailWith(cfg.Validate())
	if r.Err() != nil {
		return nil, r.Err()
	}
	p, err := NewPageHinkley(cfg)
	if err != nil {
		return nil, err
	}
	p.drift = r.Bool()
	p.n = r.FiniteFloat()
	p.mean = r.FiniteFloat()
	p.sumIncrease = r.FiniteFloat()
	p.sumDecrease = r.FiniteFloat()
	p.minIncrease = r.FiniteFloat()
	p.maxDecrease = r.FiniteFloat()
	if r.Err() == nil && (p.n < 0 || p.n != math.Trunc(p.n)) {
		r.Fail("Page-Hinkley count %g is not a whole number", p.n)
	}
	return p, r.Err()
}
