package drift

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// Detector is implemented by every detector in this package.
type Detector interface {
	// Update takes one value and reports whether it completed a drift.
	Update(x float64) bool
	// Reset forgets every value seen, keeping the configuration.
	Reset()
	// Drift reports whether the last accepted value completed a drift.
	Drift() bool
	// AppendState appends the detector's configuration and state to dst
	// in a versioned binary format; Decode restores it.
	AppendState(dst []byte) []byte
}

// Errors returned by this package. They are wrapped with details; inspect
// them with errors.Is.
var (
	// ErrUnknownKind means a detector kind other than those of Kinds.
	ErrUnknownKind = errors.New("drift: unknown detector kind")
	// ErrUnknownParam means a parameter the detector kind does not have.
	ErrUnknownParam = errors.New("drift: parameter does not apply to the detector")
	// ErrInvalidConfig means a configuration that Validate rejects.
	ErrInvalidConfig = errors.New("drift: invalid configuration")
	// ErrCorruptState means an encoding that Decode cannot read.
	ErrCorruptState = errors.New("drift: corrupt state")
)

// The detector kinds, as New and the command line name them.
const (
	KindADWIN       = "adwin"
	KindPageHinkley = "page-hinkley"
	KindDDM         = "ddm"
	KindEDDM        = "eddm"
	KindKSWIN       = "kswin"
)

// MaxValue bounds the magnitude of the values a detector accepts. Update
// ignores NaN, ±Inf and any value with |x| > MaxValue and returns false
// without touching the detector, so that no input can make its state
// non-finite (sums over a long window of values this large still fit in a
// float64). Drift keeps reporting the outcome of the last accepted value.
const MaxValue = 1e100

// accepted reports whether Update takes x into account. NaN fails the
// comparison.
func accepted(x float64) bool { return math.Abs(x) <= MaxValue }

// paramNamesOf lists the parameters of each kind by River's names, in the
// order of River's constructors, or nil for an unknown kind.
func paramNamesOf(kind string) []string {
	switch kind {
	case KindADWIN:
		return []string{"delta", "clock", "max_buckets", "min_window_length", "grace_period"}
	case KindPageHinkley:
		return []string{"min_instances", "delta", "threshold", "alpha", "mode"}
	case KindDDM:
		return []string{"warm_start", "warning_threshold", "drift_threshold"}
	case KindEDDM:
		return []string{"warm_start", "alpha", "beta"}
	case KindKSWIN:
		return []string{"alpha", "window_size", "stat_size", "seed"}
	}
	return nil
}

// Kinds returns the detector kinds New accepts.
func Kinds() []string {
	return []string{KindADWIN, KindPageHinkley, KindDDM, KindEDDM, KindKSWIN}
}

// ParamNames returns the parameters of a detector kind by River's names
// ("mode" is Page-Hinkley's string parameter, Params.Mode; the others are
// numbers).
func ParamNames(kind string) ([]string, error) {
	names := paramNamesOf(kind)
	if names == nil {
		return nil, fmt.Errorf("%w %q (want %s)", ErrUnknownKind, kind, strings.Join(Kinds(), ", "))
	}
	return names, nil
}

// Params are a detector's parameters as a configuration file or the command
// line gives them, by River's names. A parameter that is absent (or zero)
// takes River's default.
type Params struct {
	// Numbers holds the numeric parameters: delta, clock, max_buckets,
	// min_window_length, grace_period, min_instances, threshold, alpha,
	// warm_start, warning_threshold, drift_threshold, beta, window_size,
	// stat_size and seed. Integer parameters must hold whole numbers.
	Numbers map[string]float64
	// Mode is Page-Hinkley's direction: "up", "down" or "both" (default).
	Mode string
}

// New returns a detector of the given kind (see Kinds) configured by p. A
// parameter that the kind does not have is an error wrapping
// ErrUnknownParam; an unknown kind wraps ErrUnknownKind; invalid values wrap
// ErrInvalidConfig.
func New(kind string, p Params) (Detector, error) {
	names, err := ParamNames(kind)
	if err != nil {
		return nil, err
	}
	for _, name := range slices.Sorted(maps.Keys(p.Numbers)) {
		if name == "mode" || !slices.Contains(names, name) {
			return nil, fmt.Errorf("%w: %s has no numeric parameter %q (parameters: %s)", ErrUnknownParam, kind, name, strings.Join(names, ", "))
		}
	}
	if p.Mode != "" && kind != KindPageHinkley {
		return nil, fmt.Errorf("%w: %s has no parameter \"mode\" (parameters: %s)", ErrUnknownParam, kind, strings.Join(names, ", "))
	}
	g := paramGetter{numbers: p.Numbers}
	switch kind {
	case KindADWIN:
		cfg := ADWINConfig{
			Delta: g.float("delta"), Clock: g.int("clock"), MaxBuckets: g.int("max_buckets"),
			MinWindowLength: g.int("min_window_length"), GracePeriod: g.int("grace_period"),
		}
		if g.err != nil {
			return nil, g.err
		}
		return NewADWIN(cfg)
	case KindPageHinkley:
		cfg := PageHinkleyConfig{
			MinInstances: g.int("min_instances"), Delta: g.float("delta"), Threshold: g.float("threshold"),
			Alpha: g.float("alpha"), Mode: Mode(p.Mode),
		}
		if g.err != nil {
			return nil, g.err
		}
		return NewPageHinkley(cfg)
	case KindDDM:
		cfg := DDMConfig{WarmStart: g.int("warm_start"), WarningThreshold: g.float("warning_threshold"), DriftThreshold: g.float("drift_threshold")}
		if g.err != nil {
			return nil, g.err
		}
		return NewDDM(cfg)
	case KindEDDM:
		cfg := EDDMConfig{WarmStart: g.int("warm_start"), Alpha: g.float("alpha"), Beta: g.float("beta")}
		if g.err != nil {
			return nil, g.err
		}
		return NewEDDM(cfg)
	default: // KindKSWIN; ParamNames rejected anything else
		cfg := KSWINConfig{Alpha: g.float("alpha"), WindowSize: g.int("window_size"), StatSize: g.int("stat_size"), Seed: g.uint("seed")}
		if g.err != nil {
			return nil, g.err
		}
		return NewKSWIN(cfg)
	}
}

// paramGetter reads parameters, remembering the first malformed one.
type paramGetter struct {
	numbers map[string]float64
	err     error
}

func (g *paramGetter) float(name string) float64 {
	v := g.numbers[name]
	if math.IsNaN(v) || math.IsInf(v, 0) {
		g.fail(fmt.Errorf("%w: %s must be a finite number, got %g", ErrInvalidConfig, name, v))
		return 0
	}
	return v
}

// maxExactInt is the largest integer below which every integer is a float64.
const maxExactInt = 1 << 53

func (g *paramGetter) int(name string) int {
	v := g.float(name)
	if v != math.Trunc(v) || math.Abs(v) > maxExactInt {
		g.fail(fmt.Errorf("%w: %s must be a whole number, got %g", ErrInvalidConfig, name, v))
		return 0
	}
	return int(v)
}

func (g *paramGetter) uint(name string) uint64 {
	v := g.int(name)
	if v < 0 {
		g.fail(fmt.Errorf("%w: %s must not be negative, got %d", ErrInvalidConfig, name, v))
		return 0
	}
	return uint64(v)
}

func (g *paramGetter) fail(err error) {
	if g.err == nil {
		g.err = err
	}
}

// invalid returns an error wrapping ErrInvalidConfig.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidConfig}, args...)...)
}

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
