package drift

import (
	"math"

	"github.com/eddyhq/eddy/features/codec"
)

// DDMConfig configures a DDM detector. Its zero value means River's
// defaults; a zero field takes the default of that field.
type DDMConfig struct {
	// WarmStart is how many values the detector sees before it may warn or
	// detect. The default is 30.
	WarmStart int
	// WarningThreshold is how many standard deviations above its best the
	// error rate must rise for a warning. The default is 2.
	WarningThreshold float64
	// DriftThreshold is how many standard deviations above its best the
	// error rate must rise for drift. The default is 3.
	DriftThreshold float64
}

// River's defaults for DDM.
const (
	defaultDDMWarmStart        = 30
	defaultDDMWarningThreshold = 2
	defaultDDMDriftThreshold   = 3
)

// EnsureDefaults sets the zero fields of c to River's defaults.
func (c *DDMConfig) EnsureDefaults() {
	if c.WarmStart == 0 {
		c.WarmStart = defaultDDMWarmStart
	}
	if c.WarningThreshold == 0 {
		c.WarningThreshold = defaultDDMWarningThreshold
	}
	if c.DriftThreshold == 0 {
		c.DriftThreshold = defaultDDMDriftThreshold
	}
}

// Validate reports whether c, with its zero fields taken as defaults, is a
// usable configuration. The error wraps ErrInvalidConfig.
func (c DDMConfig) Validate() error {
	c.EnsureDefaults()
	switch {
	case c.WarmStart < 1:
		return invalid("DDM warm_start must be at least 1, got %d", c.WarmStart)
	case !(c.WarningThreshold > 0) || !finite(c.WarningThreshold):
		return invalid("DDM warning_threshold must be a finite number > 0, got %g", c.WarningThreshold)
	case !(c.DriftThreshold > 0) || !finite(c.DriftThreshold):
		return invalid("DDM drift_threshold must be a finite number > 0, got %g", c.DriftThreshold)
	}
	return nil
}

// DDM is River's drift.binary.DDM, the Drift Detection Method of Gama et al.
// (2004), for a stream of prediction outcomes: 0 for a correct prediction,
// anything else (normally 1) for an error. It tracks the error rate p and its
// standard deviation s = sqrt(p(1-p)/n), remembers them where p+s was least,
// and warns, then detects drift, when p+s rises WarningThreshold, then
// DriftThreshold, of those standard deviations above that minimum. Its
// warnings and detections match River's exactly; after a detection the next
// Update starts afresh.
//
// A DDM is not safe for concurrent use.
type DDM struct {
	cfg DDMConfig
	// n and errorRate are River's stats.Mean of the outcomes.
	n, errorRate float64
	// pMin, sMin and psMin = pMin+sMin are taken where p+s was least; they
	// are set (haveMin) by the first value after the warm start, where River
	// compares with +Inf.
	pMin, sMin, psMin float64
	haveMin           bool
	drift, warning    bool
}

// NewDDM returns a DDM configured by cfg (zero fields take River's defaults).
func NewDDM(cfg DDMConfig) (*DDM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	return &DDM{cfg: cfg}, nil
}

// Config returns the configuration of d, defaults filled in.
func (d *DDM) Config() DDMConfig { return d.cfg }

// Reset forgets every value seen, keeping the configuration.
func (d *DDM) Reset() { *d = DDM{cfg: d.cfg} }

// Drift reports whether the last accepted value was a detection.
func (d *DDM) Drift() bool { return d.drift }

// Warning reports whether the detector was in the warning zone after the last
// accepted value (never together with Drift).
func (d *DDM) Warning() bool { return d.warning }

// Update adds the outcome x (0: correct, other: error) and reports whether
// drift was detected. After a detection the next Update first resets the
// detector, as River's does. NaN, ±Inf and values beyond MaxValue are
// ignored (Update returns false and changes nothing).
func (d *DDM) Update(x float64) bool {
	if !accepted(x) {
		return false
	}
	if d.drift {
		d.Reset()
	}
	outcome := 0.0
	if x != 0 {
		outcome = 1
	}
	d.n++
	d.errorRate += (outcome - d.errorRate) / d.n
	p := d.errorRate
	s := math.Sqrt(p * (1 - p) / d.n)
	if d.n <= float64(d.cfg.WarmStart) {
		return false
	}
	if !d.haveMin || p+s <= d.psMin {
		d.pMin, d.sMin, d.psMin = p, s, p+s
		d.haveMin = true
	}
	// The conversions keep the compiler from fusing multiply and add, which
	// would round differently from River.
	d.warning = p+s > d.pMin+float64(d.cfg.WarningThreshold*d.sMin)
	if p+s > d.pMin+float64(d.cfg.DriftThreshold*d.sMin) {
		d.drift = true
		d.warning = false
	}
	return d.drift
}

// AppendState appends the state of d to dst; Decode restores it.
func (d *DDM) AppendState(dst []byte) []byte {
	dst = append(dst, header(codeDDM))
	dst = codec.AppendUvarints(dst, d.cfg.WarmStart)
	dst = codec.AppendFloat(dst, d.cfg.WarningThreshold)
	dst = codec.AppendFloat(dst, d.cfg.DriftThreshold)
	dst = codec.AppendBool(dst, d.drift)
	dst = codec.AppendBool(dst, d.warning)
	dst = codec.AppendBool(dst, d.haveMin)
	for _, v := range [...]float64{d.n, d.errorRate, d.pMin, d.sMin, d.psMin} {
		dst = codec.AppendFloat(dst, v)
	}
	return dst
}

func decodeDDM(r *codec.Reader) (Detector, error) {
	var cfg DDMConfig
	cfg.WarmStart = r.Int(math.MaxInt32)
	cfg.WarningThreshold = r.FiniteFloat()
	cfg.DriftThreshold = r.FiniteFloat()
	if r.Err() != nil {
		return nil, r.Err()
	}
	r.FailWith(cfg.Validate())
	if r.Err() != nil {
		return nil, r.Err()
	}
	d, err := NewDDM(cfg)
	if err != nil {
		return nil, err
	}
	d.drift = r.Bool()
	d.warning = r.Bool()
	d.haveMin = r.Bool()
	d.n = r.FiniteFloat()
	d.errorRate = r.FiniteFloat()
	d.pMin = r.FiniteFloat()
	d.sMin = r.FiniteFloat()
	d.psMin = r.FiniteFloat()
	if r.Err() == nil && (d.n < 0 || d.n != math.Trunc(d.n) || !(d.errorRate >= 0 && d.errorRate <= 1)) {
		r.Fail("DDM count %g or error rate %g out of range", d.n, d.errorRate)
	}
	return d, r.Err()
}
