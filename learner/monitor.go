package learner

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/eddyhq/eddy/drift"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/features/codec"
)

// DriftConfig configures drift monitoring and champion/challenger promotion
// of one model. The zero value means no drift detector: the live model is
// promoted periodically (EngineConfig.PromoteInterval).
type DriftConfig struct {
	// Detector watches the champion's prequential error (0/1 loss for
	// classifiers, absolute error for regression): adwin, page-hinkley,
	// ddm, eddm or kswin. Empty means none.
	Detector string `yaml:"detector"`
	// Params are the detector's parameters by River's names (delta, clock,
	// threshold, ...); absent ones take River's defaults.
	Params map[string]float64 `yaml:"params"`
	// Mode is Page-Hinkley's direction: up, down or both (default).
	Mode string `yaml:"mode"`
	// Window is how many recent examples a challenger and the champion are
	// compared over. The default is 500.
	Window int `yaml:"window"`
	// MinExamples is how many examples a challenger must have been scored
	// on, side by side with the champion, before it can be promoted. The
	// default is 200.
	MinExamples int `yaml:"min_examples"`
	// Margin is how much lower a challenger's mean error over the window
	// must be than the champion's. The default is 0.
	Margin float64 `yaml:"margin"`
}

// Defaults of DriftConfig.
const (
	DefaultChallengerWindow = 500
	DefaultMinExamples      = 200
)

func (c *DriftConfig) ensureDefaults() {
	if c.Window == 0 {
		c.Window = DefaultChallengerWindow
	}
	if c.MinExamples == 0 {
		c.MinExamples = DefaultMinExamples
	}
}

func (c *DriftConfig) validate() error {
	if c.Detector != "" {
		if _, err := c.newDetector(); err != nil {
			return err
		}
	}
	if c.Window < 0 || c.MinExamples < 0 || c.Margin < 0 || math.IsNaN(c.Margin) {
		return fmt.Errorf("drift window, min_examples and margin must not be negative")
	}
	return nil
}

func (c *DriftConfig) newDetector() (drift.Detector, error) {
	return drift.New(c.Detector, drift.Params{Numbers: c.Params, Mode: c.Mode})
}

// Promotion reasons, as snapshots and metrics record them.
const (
	ReasonInitial    = "initial"    // a model's first snapshot
	ReasonPeriodic   = "periodic"   // the periodic policy
	ReasonChallenger = "challenger" // the live model beat the champion
	ReasonDrift      = "drift"      // a post-drift challenger beat the champion
	ReasonManual     = "manual"     // an admin promoted a stored version
	ReasonRollback   = "rollback"   // an admin rolled back to the previous version
	ReasonRelease    = "release"    // an admin released a pin: the newest snapshot serves
)

// monitor is the champion/challenger state of one model: the champion (the
// served snapshot) scored on every labeled event, the drift detector fed
// with its error, and the challengers compared with it. Owned by the
// engine's goroutine.
type monitor struct {
	cfg      DriftConfig
	det      drift.Detector // nil: no drift detection
	champion *Snapshot      // nil until the first promotion
	champ    prequential    // the champion's prequential metrics
	// pinned means an operator chose the champion (Promote, Rollback):
	// automatic promotion keeps creating snapshots but serves none of them
	// until Release.
	pinned bool

	live      diffWindow // live model error − champion error
	fresh     *Model     // post-drift challenger, nil when none
	freshDiff diffWindow // post-drift challenger error − champion error
	freshLive diffWindow // post-drift challenger error − live model error

	detections    uint64
	lastDetection time.Time // zero when none is waiting for its promotion
	pending       []detection
}

// detection is one drift detection, recorded in Pebble.
type detection struct {
	at        time.Time
	partition int
	offset    int64
	summary   string
}

func newMonitor(cfg ModelConfig, window int) (*monitor, error) {
	mon := &monitor{cfg: cfg.Drift, champ: newPrequential(cfg.Task, window)}
	mon.live = newDiffWindow(cfg.Drift.Window)
	mon.freshDiff = newDiffWindow(cfg.Drift.Window)
	mon.freshLive = newDiffWindow(cfg.Drift.Window)
	if cfg.Drift.Detector != "" {
		det, err := cfg.Drift.newDetector()
		if err != nil {
			return nil, fmt.Errorf("learner: model %s: %w", cfg.Name, err)
		}
		mon.det = det
	}
	return mon, nil
}

// challengers reports whether the model uses champion/challenger promotion
// (a detector is configured) rather than the periodic policy.
func (mon *monitor) challengers() bool { return mon.det != nil }

// diffWindow is a ring of per-example error differences (challenger −
// champion) and how many have been added since the last reset.
type diffWindow struct {
	ring
	seen uint64 // examples observed since the last reset
}

func newDiffWindow(n int) diffWindow { return diffWindow{ring: newRing(max(n, 1))} }

func (w *diffWindow) add(d float64) {
	w.ring.add(d)
	w.seen++
}

func (w *diffWindow) reset() {
	w.ring.reset()
	w.seen = 0
}

// beats reports whether the challenger of w has been compared long enough
// and has a lower mean error than the champion by more than the margin.
func (mon *monitor) beats(w *diffWindow) bool {
	return w.seen >= uint64(mon.cfg.MinExamples) && w.mean() < -mon.cfg.Margin
}

// errorOf is the prequential error of one prediction: 0/1 loss for
// classifiers, absolute error for regression.
func errorOf(task Task, y, score float64, label int32) float64 {
	if task == Regression {
		return math.Abs(y - score)
	}
	if float64(label) == y { // binary and multiclass: the predicted label
		return 0
	}
	return 1
}

// scoreChampion scores the champion on a labeled example before anything
// learns from it and returns its error (ok false without a champion).
func (mon *monitor) scoreChampion(task Task, fields []features.Field, y float64) (float64, bool) {
	if mon.champion == nil {
		return 0, false
	}
	score, label := mon.champion.scoreDerived(fields) // fields include the derived features
	e := errorOf(task, y, score, label)
	switch task {
	case Regression:
		mon.champ.regress(y, score)
	case Binary:
		p := score
		if y == 0 {
			p = 1 - score
		}
		mon.champ.classify(e == 0, p)
	default:
		p := 0.0
		if e == 0 {
			p = score
		}
		mon.champ.classify(e == 0, p)
	}
	return e, true
}

// setChampion makes snap the champion and restarts the comparisons. The
// detector restarts too when the new champion is not a continuation of the
// old one (a post-drift challenger, an admin's choice): its error is a new
// stream. A later snapshot of the same live model continues the stream, so
// the detector keeps its window and can still see a drift in progress.
func (mon *monitor) setChampion(snap *Snapshot, continuation bool) {
	mon.champion = snap
	if mon.det != nil && !continuation {
		mon.det.Reset()
	}
	mon.live.reset()
	mon.freshDiff.reset()
	mon.freshLive.reset()
}

// monitorVersion is the first byte of an encoded monitor. Version 1 had no
// pinned byte (nothing was pinned) and still loads.
const monitorVersion = 2

// appendState encodes what must survive a restart: the champion's version
// and whether it is pinned, its metrics, the detector, the comparison
// windows and the post-drift challenger (the champion itself is a stored
// snapshot). Layout: version u8 | champion version uvarint | pinned u8 |
// champion metrics | detector | detections | last detection | windows |
// challenger. The header (up to pinned) is read alone when listing
// snapshots.
func (mon *monitor) appendState(dst []byte) []byte {
	dst = append(dst, monitorVersion)
	version := uint64(0)
	if mon.champion != nil {
		version = mon.champion.version
	}
	dst = binary.AppendUvarint(dst, version)
	pinned := byte(0)
	if mon.pinned {
		pinned = 1
	}
	dst = append(dst, pinned)
	dst = mon.champ.appendState(dst)
	if mon.det != nil {
		dst = append(dst, 1)
		dst = codec.AppendBytes(dst, mon.det.AppendState(nil))
	} else {
		dst = append(dst, 0)
	}
	dst = binary.AppendUvarint(dst, mon.detections)
	dst = binary.AppendVarint(dst, unixNanos(mon.lastDetection))
	dst = mon.live.appendState(dst)
	dst = mon.freshDiff.appendState(dst)
	dst = mon.freshLive.appendState(dst)
	if mon.fresh != nil {
		dst = append(dst, 1)
		dst = codec.AppendBytes(dst, mon.fresh.appendState(nil))
	} else {
		dst = append(dst, 0)
	}
	return dst
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// appendState encodes w: length, next, filled, seen (uvarints), sum, then
// the ring's values.
func (w *diffWindow) appendState(dst []byte) []byte {
	dst = w.appendPositions(dst)
	dst = binary.AppendUvarint(dst, w.seen)
	dst = codec.AppendFloat(dst, w.sum)
	return w.appendValues(dst)
}

func (w *diffWindow) decode(r *codec.Reader) {
	var s storedRing
	n := r.Count()
	s.next, s.filled = r.Uvarint(), r.Uvarint()
	seen := r.Uvarint()
	s.sum = r.Float()
	s.values = readValues(r, n)
	if r.Err() == nil && w.restore(s) {
		w.seen = seen
	} // else: the window size changed; compare afresh
}

// decodeMonitorHeader reads the champion's version (0: none) and whether it
// is pinned from an encoded monitor, leaving r at the champion's metrics.
func decodeMonitorHeader(r *codec.Reader) (champion uint64, pinned bool, err error) {
	v := r.Byte()
	if r.Err() == nil && v != 1 && v != 2 {
		return 0, false, fmt.Errorf("%w: unknown monitor version %d", ErrCorrupt, v)
	}
	champion = r.Uvarint()
	if v >= 2 {
		pinned = r.Byte() == 1
	}
	return champion, pinned, r.Err()
}

// decode restores mon from data; it returns the champion's version (0:
// none) for the engine to load.
func (mon *monitor) decode(cfg ModelConfig, window int, data []byte) (uint64, error) {
	r := codec.NewReader(data, ErrCorrupt)
	version, pinned, err := decodeMonitorHeader(&r)
	if err != nil {
		return 0, fmt.Errorf("learner: model %s monitor: %w", cfg.Name, err)
	}
	mon.pinned = pinned
	mon.champ.decode(&r)
	if r.Byte() == 1 {
		enc := r.Bytes()
		if r.Err() == nil && mon.det != nil {
			det, _, err := drift.Decode(enc)
			if err != nil {
				return 0, fmt.Errorf("%w: model %s detector: %w", ErrCorrupt, cfg.Name, err)
			}
			if kindOf(det) == kindOf(mon.det) {
				mon.det = det // else the configured detector changed: start it afresh
			}
		}
	}
	mon.detections = r.Uvarint()
	if ns := r.Varint(); ns != 0 {
		mon.lastDetection = time.Unix(0, ns)
	}
	mon.live.decode(&r)
	mon.freshDiff.decode(&r)
	mon.freshLive.decode(&r)
	if r.Byte() == 1 {
		enc := r.Bytes()
		if r.Err() == nil {
			fresh, _, err := decodeState(cfg, window, enc)
			if err != nil {
				return 0, err
			}
			mon.fresh = fresh
		}
	}
	if r.Err() != nil {
		return 0, fmt.Errorf("learner: model %s monitor: %w", cfg.Name, r.Err())
	}
	return version, nil
}

func kindOf(d drift.Detector) string { return fmt.Sprintf("%T", d) }

// summary describes the detector's state for a detection record.
func (mon *monitor) summary() string {
	type adwin interface {
		Width() int
		Estimation() float64
	}
	if a, ok := mon.det.(adwin); ok {
		return fmt.Sprintf("%s width=%d estimate=%.4f", mon.cfg.Detector, a.Width(), a.Estimation())
	}
	return mon.cfg.Detector
}
