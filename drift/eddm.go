package drift

import (
	"math"

	"github.com/eddyhq/eddy/features/codec"
)

// EDDMConfig configures an EDDM detector. Its zero value means River's
// defaults; a zero field takes the default of that field.
type EDDMConfig struct {
	// WarmStart is how many values, and how many errors, the detector sees
	// before it may warn or detect. The default is 30.
	WarmStart int
	// Alpha is the warning level: the ratio of the current to the best mean
	// distance between errors (plus two standard deviations) below which the
	// detector warns, in (0, 1]. The default is 0.95.
	Alpha float64
	// Beta is the drift level, in (0, Alpha]. The default is 0.9.
	Beta float64
}

// River's defaults for EDDM.
const (
	defaultEDDMWarmStart = 30
	defaultEDDMAlpha     = 0.95
	defaultEDDMBeta      = 0.9
)

// EnsureDefaults sets the zero fields of c to River's defaults.
func (c *EDDMConfig) EnsureDefaults() {
	if c.WarmStart == 0 {
		c.WarmStart = defaultEDDMWarmStart
	}
	if c.Alpha == 0 {
		c.Alpha = defaultEDDMAlpha
	}
	if c.Beta == 0 {
		c.Beta = defaultEDDMBeta
	}
}

// Validate reports whether c, with its zero fields taken as defaults, is a
// usable configuration. The error wraps ErrInvalidConfig.
func (c EDDMConfig) Validate() error {
	c.EnsureDefaults()
	switch {
	case c.WarmStart < 1:
		return invalid("EDDM warm_start must be at least 1, got %d", c.WarmStart)
	case !(c.Alpha > 0 && c.Alpha <= 1):
		return invalid("EDDM alpha must be in (0, 1], got %g", c.Alpha)
	case !(c.Beta > 0 && c.Beta <= c.Alpha):
		return invalid("EDDM beta must be in (0, alpha = %g], got %g", c.Alpha, c.Beta)
	}
	return nil
}

// EDDM is River's drift.binary.EDDM, the Early Drift Detection Method of
// Baena-García et al. (2006), for a stream of prediction outcomes: 0 for a
// correct prediction, anything else (normally 1) for an error. It tracks the
// distance between consecutive errors, its mean p' and standard deviation s',
// and the largest p'+2s' seen; when the current p'+2s' falls below Alpha,
// then Beta, times that maximum it warns, then detects drift. Its warnings
// and detections match River's exactly; after a detection the next Update
// starts afresh.
//
// An EDDM is not safe for concurrent use.
type EDDM struct {
	cfg EDDMConfig
	// n counts the values, errors the errors; lastError is the value of n at
	// the last error.
	n, errors, lastError int
	// distances is River's stats.Var (ddof 1) of the distances between
	// errors: count, mean and variance.
	distN, distMean, distVar float64
	// maxLevel is the largest p'+2s' so far (River starts it at -1).
	maxLevel       float64
	drift, warning bool
}

// NewEDDM returns an EDDM configured by cfg (zero fields take River's
// defaults).
func NewEDDM(cfg EDDMConfig) (*EDDM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	e := &EDDM{cfg: cfg}
	e.Reset()
	return e, nil
}

// Config returns the configuration of e, defaults filled in.
func (e *EDDM) Config() EDDMConfig { return e.cfg }

// Reset forgets every value seen, keeping the configuration.
func (e *EDDM) Reset() { *e = EDDM{cfg: e.cfg, maxLevel: -1} }

// Drift reports whether the last accepted value was a detection.
func (e *EDDM) Drift() bool { return e.drift }

// Warning reports whether the detector was in the warning zone after the
// last accepted value. As in River, only errors update it, and a detection
// leaves it as it was.
func (e *EDDM) Warning() bool { return e.warning }

// Update adds the outcome x (0: correct, other: error) and reports whether
// drift was detected. After a detection the next Update first resets the
// detector, as River's does. NaN, ±Inf and values beyond MaxValue are
// ignored (Update returns false and changes nothing).
func (e *EDDM) Update(x float64) bool {
	if !accepted(x) {
		return false
	}
	if e.drift {
		e.Reset()
	}
	e.n++
	if x == 0 {
		return false
	}
	e.errors++
	e.addDistance(float64(e.n - e.lastError))
	if e.n > e.cfg.WarmStart {
		level := e.distMean + 2*math.Sqrt(e.distVar)
		switch {
		case level > e.maxLevel:
			e.maxLevel = level
		case e.errors > e.cfg.WarmStart:
			ratio := level / e.maxLevel
			if ratio < e.cfg.Beta {
				e.drift = true
			} else {
				e.warning = ratio < e.cfg.Alpha
			}
		}
	}
	e.lastError = e.n
	return e.drift
}

// addDistance updates the running variance of the distances as River's
// stats.Var (Welford, ddof 1).
func (e *EDDM) addDistance(d float64) {
	oldMean := e.distMean
	e.distN++
	e.distMean += (d - e.distMean) / e.distN
	if e.distN > 1 {
		// The conversion keeps the compiler from fusing multiply and
		// subtract, which would round differently from River.
		e.distVar += (float64((d-oldMean)*(d-e.distMean)) - e.distVar) / (e.distN - 1)
	}
}

// AppendState appends the state of e to dst; Decode restores it.
func (e *EDDM) AppendState(dst []byte) []byte {
	dst = append(dst, header(codeEDDM))
	dst = codec.AppendUvarints(dst, e.cfg.WarmStart)
	dst = codec.AppendFloat(dst, e.cfg.Alpha)
	dst = codec.AppendFloat(dst, e.cfg.Beta)
	dst = codec.AppendBool(dst, e.drift)
	dst = codec.AppendBool(dst, e.warning)
	dst = codec.AppendUvarints(dst, e.n, e.errors, e.lastError)
	for _, v := range [...]float64{e.distN, e.distMean, e.distVar, e.maxLevel} {
		dst = codec.AppendFloat(dst, v)
	}
	return dst
}

func decodeEDDM(r *codec.Reader) (Detector, error) {
	var cfg EDDMConfig
	cfg.WarmStart = r.Int(math.MaxInt32)
	cfg.Alpha = r.FiniteFloat()
	cfg.Beta = r.FiniteFloat()
	if r.Err() != nil {
		return nil, r.Err()
	}
	r.FailWith(cfg.Validate())
	if r.Err() != nil {
		return nil, r.Err()
	}
	e, err := NewEDDM(cfg)
	if err != nil {
		return nil, err
	}
	e.drift = r.Bool()
	e.warning = r.Bool()
	e.n = r.Int(math.MaxInt)
	e.errors = r.Int(math.MaxInt)
	e.lastError = r.Int(math.MaxInt)
	e.distN = r.FiniteFloat()
	e.distMean = r.FiniteFloat()
	e.distVar = r.FiniteFloat()
	e.maxLevel = r.FiniteFloat()
	if r.Err() == nil && (e.errors > e.n || e.lastError > e.n || e.distN != float64(e.errors) || e.distVar < 0) {
		r.Fail("EDDM counts %d, %d, %d, %g are inconsistent", e.n, e.errors, e.lastError, e.distVar)
	}
	return e, r.Err()
}
