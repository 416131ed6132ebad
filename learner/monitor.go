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
// promoted periodically (engine.Config.PromoteInterval).
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
	ReasonImport     = "import"     // an admin seeded the model with an exported snapshot
)

// Monitor is the champion/challenger state of one model: the champion (the
// served snapshot) scored on every labeled example, the drift detector fed
// with its error, the comparison of the live model with the champion, and
// after a detection the post-drift challenger, a fresh model that learns
// only from what follows and replaces the live model once it beats both.
// The engine wires a Monitor to its model; a Go program may too. The zero
// value is not usable: create one with NewMonitor.
type Monitor struct {
	cfg      DriftConfig
	window   int            // rolling window of the models it creates
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
}

// NewMonitor returns the monitor of a model of cfg (defaults applied, as a
// Model's Config returns it) whose challengers keep rolling metrics over
// rollingWindow examples (0: the default).
func NewMonitor(cfg ModelConfig, rollingWindow int) (*Monitor, error) {
	if rollingWindow == 0 {
		rollingWindow = DefaultRollingWindow
	}
	mon := &Monitor{cfg: cfg.Drift, window: rollingWindow, champ: newPrequential(cfg.Task, rollingWindow)}
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

// Challengers reports whether the model uses champion/challenger promotion
// (a detector is configured) rather than the periodic policy.
func (mon *Monitor) Challengers() bool { return mon.det != nil }

// Detector returns the drift detector, nil without one. It belongs to the
// monitor: read it (Width, Estimation), do not feed it.
func (mon *Monitor) Detector() drift.Detector { return mon.det }

// Champion returns the served snapshot, nil before the first promotion.
func (mon *Monitor) Champion() *Snapshot { return mon.champion }

// ChampionMetrics returns the prequential metrics of the champions, scored
// on every labeled example since the first one served.
func (mon *Monitor) ChampionMetrics() Metrics { return mon.champ.metrics() }

// Pinned reports whether an operator chose the champion: automatic
// promotion then creates snapshots but serves none until released.
func (mon *Monitor) Pinned() bool { return mon.pinned }

// SetPinned pins (or releases) the champion.
func (mon *Monitor) SetPinned(pinned bool) { mon.pinned = pinned }

// ChallengerActive reports whether a post-drift challenger is learning.
func (mon *Monitor) ChallengerActive() bool { return mon.fresh != nil }

// Detections returns how many drifts the detector has found over the
// model's whole life.
func (mon *Monitor) Detections() uint64 { return mon.detections }

// LastDetection returns when the newest detection whose challenger is not
// served yet happened (zero: none waits).
func (mon *Monitor) LastDetection() time.Time { return mon.lastDetection }

// SetLastDetection records when a detection happened, or with the zero time
// that none waits any more.
func (mon *Monitor) SetLastDetection(at time.Time) { mon.lastDetection = at }

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
func (mon *Monitor) beats(w *diffWindow) bool {
	return w.seen >= uint64(mon.cfg.MinExamples) && w.mean() < -mon.cfg.Margin
}

// LiveWins reports whether the live model has been compared with the
// champion long enough and beats it by more than the margin.
func (mon *Monitor) LiveWins() bool { return mon.beats(&mon.live) }

// ChallengerWins reports whether the post-drift challenger beats both the
// champion and the live model (it replaces both: AdoptChallenger).
func (mon *Monitor) ChallengerWins() bool {
	return mon.det != nil && mon.champion != nil && mon.fresh != nil && mon.beats(&mon.freshDiff) && mon.beats(&mon.freshLive)
}

// AdoptChallenger makes the post-drift challenger m's live model: its
// features and weights replace m's, which keeps its identity, life-long
// learned count and prequential record.
func (mon *Monitor) AdoptChallenger(m *Model) {
	m.adopt(mon.fresh)
	mon.fresh = nil
}

// DropChallenger ends a post-drift challenger, if one runs: what it
// learned was compared with a live model that is no longer there (Seed).
func (mon *Monitor) DropChallenger() {
	mon.fresh = nil
	mon.freshDiff.reset()
	mon.freshLive.reset()
}

// Observe scores the champion and the challengers on a labeled example that
// m, the live model, has just learned (fields include the derived
// features, as m learned them), feeds the drift detector with the
// champion's error, and reports whether it detected a drift. A detection
// is counted and starts a fresh post-drift challenger. Without a champion
// it does nothing.
func (mon *Monitor) Observe(m *Model, fields []features.Field, y float64) (detected bool) {
	champErr, ok := mon.scoreChampion(m.cfg.Task, fields, y)
	if !ok {
		return false
	}
	mon.live.add(m.lastErr - champErr)
	if mon.fresh != nil {
		if _, err := mon.fresh.LearnOne(fields, y); err == nil {
			mon.freshDiff.add(mon.fresh.lastErr - champErr)
			mon.freshLive.add(mon.fresh.lastErr - m.lastErr)
		}
	}
	if mon.det == nil || !mon.det.Update(champErr) {
		return false
	}
	mon.detections++
	mon.fresh = newModel(m.cfg, mon.window)
	mon.fresh.hist = m.hist // the entities' history is data, not model: shared
	mon.freshDiff.reset()
	mon.freshLive.reset()
	return true
}

// StartChallenger starts a fresh challenger, as a detection does, for a
// cause outside the detector (a feature's distribution changed): it learns
// only what follows and replaces a challenger already running.
func (mon *Monitor) StartChallenger(m *Model) {
	mon.fresh = newModel(m.cfg, mon.window)
	mon.fresh.hist = m.hist
	mon.freshDiff.reset()
	mon.freshLive.reset()
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
func (mon *Monitor) scoreChampion(task Task, fields []features.Field, y float64) (float64, bool) {
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

// SetChampion makes snap the champion and restarts the comparisons. The
// detector restarts too when the new champion is not a continuation of the
// old one (a post-drift challenger, an admin's choice): its error is a new
// stream. A later snapshot of the same live model continues the stream, so
// the detector keeps its window and can still see a drift in progress.
func (mon *Monitor) SetChampion(snap *Snapshot, continuation bool) {
	mon.champion = snap
	if mon.det != nil && !continuation {
		mon.det.Reset()
	}
	mon.live.reset()
	mon.freshDiff.reset()
	mon.freshLive.reset()
}

// RestoreChampion makes snap the champion as a restored monitor served it:
// the detector and the comparisons continue as they were stored.
func (mon *Monitor) RestoreChampion(snap *Snapshot) { mon.champion = snap }

// monitorVersion is the first byte of an encoded monitor. Version 1 had no
// pinned byte (nothing was pinned) and still loads.
const monitorVersion = 2

// AppendState appends what must survive a restart: the champion's version
// and whether it is pinned, its metrics, the detector, the comparison
// windows and the post-drift challenger (the champion itself is a stored
// snapshot). Layout: version u8 | champion version uvarint | pinned u8 |
// champion metrics | detector | detections | last detection | windows |
// challenger. The header (up to pinned) is read alone when listing
// snapshots (MonitorChampion). Decode restores it.
func (mon *Monitor) AppendState(dst []byte) []byte {
	champion := uint64(0)
	if mon.champion != nil {
		champion = mon.champion.version
	}
	dst = append(dst, monitorVersion)
	dst = binary.AppendUvarint(dst, champion)
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
		dst = codec.AppendBytes(dst, mon.fresh.AppendState(nil))
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

// MonitorChampion reads the champion's version (0: none) and whether it is
// pinned from the start of an encoded monitor, without decoding the rest.
func MonitorChampion(data []byte) (champion uint64, pinned bool, err error) {
	r := codec.NewReader(data, ErrCorrupt)
	return decodeMonitorHeader(&r)
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

// Decode restores the monitor of m from data (what AppendState wrote, or an
// older version of it) and returns the champion's version (0: none), for the
// caller to load the champion's snapshot and RestoreChampion it. A stored
// detector of a kind other than the configured one is dropped: the
// configured one starts afresh.
func (mon *Monitor) Decode(m *Model, data []byte) (uint64, error) {
	cfg, window := m.cfg, mon.window
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
			fresh.hist = m.hist
			mon.fresh = fresh
		}
	}
	if r.Err() != nil {
		return 0, fmt.Errorf("learner: model %s monitor: %w", cfg.Name, r.Err())
	}
	return version, nil
}

func kindOf(d drift.Detector) string { return fmt.Sprintf("%T", d) }

// Summary describes the detector's state, for detection records and logs.
func (mon *Monitor) Summary() string {
	type adwin interface {
		Width() int
		Estimation() float64
	}
	if a, ok := mon.det.(adwin); ok {
		return fmt.Sprintf("%s width=%d estimate=%.4f", mon.cfg.Detector, a.Width(), a.Estimation())
	}
	return mon.cfg.Detector
}
