package engine

import (
	"slices"
	"time"

	"github.com/eddyhq/eddy/learner"
)

// Stats are an Engine's numbers as of its last checkpoint, as kafka-go's
// Stats are a Reader's: plain values, for a program that embeds the engine
// (a demo's summary line, a benchmark) without reading them back from
// Prometheus. See Engine.Stats.
type Stats struct {
	// At is when they were taken, by the engine's clock.
	At time.Time
	// Checkpoints is how many checkpoints this Engine has written.
	Checkpoints uint64
	// Learned is how many examples this Engine has learned, of every
	// model, also of those it has relinquished since.
	Learned uint64
	// Models has one entry per model, in configuration order.
	Models []ModelStats
}

// ModelStats are one model's numbers in Stats. Counts "by this Engine"
// start at zero when it is created; the others are the model's, stored
// state included, over its whole life.
type ModelStats struct {
	Model string
	// Learned is how many examples the model has learned over its whole
	// life: what the store holds as of the checkpoint.
	Learned uint64
	// LearnedByEngine, Rejected, Unlabeled, DelayedLearned, Expired and
	// Evicted count, by this Engine, the examples learned (delayed ones
	// included), refused, scored without a label, learned when their label
	// arrived, waiting events whose label never came in time, and idle
	// entity histories forgotten.
	LearnedByEngine, Rejected, Unlabeled, DelayedLearned, Expired, Evicted uint64
	// StoredVersion is the newest stored snapshot (0: none);
	// ServedVersion the champion, the one serving (0: none); Pinned whether
	// an operator chose it.
	StoredVersion, ServedVersion uint64
	Pinned                       bool
	// Metrics are the live model's prequential metrics; ChampionMetrics
	// the served snapshots', scored on every labeled example since the
	// first one served.
	Metrics, ChampionMetrics learner.Metrics
	// Detections is how many drifts the detector has found; Challenger
	// whether a post-drift challenger is learning.
	Detections uint64
	Challenger bool
	// Standby is set while the engine follows the model's unit for its
	// owner elsewhere (Engine.Follow): it learns to keep the histories
	// current, counted in neither LearnedByEngine nor Stats.Learned.
	Standby bool
	// PendingLabels is how many events wait for a delayed label; Entities
	// how many entities have a history in memory.
	PendingLabels, Entities int
}

// Stats returns the engine's numbers as of its last checkpoint (or of New):
// an immutable snapshot, replaced as a whole by each checkpoint that writes
// (and publishes what it promotes), so that all its numbers describe one
// moment. It is safe to call from any goroutine, costs one atomic load and
// a copy, and the caller owns the result.
func (e *Engine) Stats() Stats {
	s := *e.stats.Load()
	s.Models = slices.Clone(s.Models)
	return s
}

// updateStats takes a new Stats; engine goroutine only.
func (e *Engine) updateStats() {
	s := &Stats{At: e.now(), Checkpoints: e.checkpoints, Learned: e.learned, Models: make([]ModelStats, len(e.states))}
	for i, u := range e.states {
		m, mon := u.model, u.mon
		ms := ModelStats{
			Model:           u.cfg.Name,
			Learned:         m.Learned(),
			LearnedByEngine: u.learned,
			Rejected:        u.rejected,
			Unlabeled:       u.unlabeled,
			DelayedLearned:  u.delayed,
			Expired:         u.expired,
			Evicted:         u.evicted,
			StoredVersion:   m.Version(),
			Pinned:          mon.Pinned(),
			Metrics:         m.Metrics(),
			ChampionMetrics: mon.ChampionMetrics(),
			Detections:      mon.Detections(),
			Challenger:      mon.ChallengerActive(),
			Standby:         u.standby,
		}
		if c := mon.Champion(); c != nil {
			ms.ServedVersion = c.Version()
		}
		if u.pending != nil {
			ms.PendingLabels = u.pending.waiting
		}
		if u.hist != nil {
			ms.Entities = u.hist.Entities()
		}
		s.Models[i] = ms
	}
	e.stats.Store(s)
}
