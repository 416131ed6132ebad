package eddy

import (
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/stream"
)

// Stats is a point-in-time view of a Service's progress: plain values,
// owned by the caller.
type Stats struct {
	// Models are the configured models, in configuration order.
	Models []ModelStats
	// Consumer counts the messages consumed, dead-lettered and the
	// checkpoints written since New.
	Consumer stream.Stats
	// BrokerUp reports whether a Kafka broker answered the consumer's last
	// probe (once a second while Run runs; true before the first). The
	// eddy_kafka_broker_up gauge and /healthz say the same.
	BrokerUp bool
	// BrokerDownSince is when the brokers stopped answering; zero while
	// BrokerUp.
	BrokerDownSince time.Time
}

// ModelStats is one model's part of Stats.
type ModelStats struct {
	Name string
	// Learning reports whether this instance learns the model; when it does
	// not (another member of the group owns its unit), the figures below
	// but the served ones are zero.
	Learning bool
	// Standby reports whether this instance follows the model for its
	// owner: it reads the model's events to keep the entity histories that
	// Predict reads current, and serves the owner's champion.
	Standby bool
	// Learned is the number of examples the model has learned as of its
	// newest checkpoint: what the store holds, and what a restart resumes
	// from (the eddy_model_examples gauge).
	Learned uint64
	// LearnedHere is the number of examples this instance learned since
	// New (replays after a takeover included).
	LearnedHere uint64
	// ServedVersion is the version of the snapshot Predict answers from; 0
	// before the first.
	ServedVersion uint64
	// ServedLearned is the number of examples that snapshot had learned.
	ServedLearned uint64
	// Pinned reports whether an operator chose the served version.
	Pinned bool
	// Metrics are the live model's prequential metrics and ChampionMetrics
	// the served snapshots', as of the newest checkpoint.
	Metrics, ChampionMetrics learner.Metrics
	// Detections counts the drifts the model's detector found.
	Detections uint64
}

// Model returns the stats of the named model, and false if it is not
// configured.
func (s Stats) Model(name string) (ModelStats, bool) {
	for _, m := range s.Models {
		if m.Name == name {
			return m, true
		}
	}
	return ModelStats{}, false
}

// Stats returns the service's current figures. It is safe to call from any
// goroutine at any time after New, also while and after Run runs.
func (s *Service) Stats() Stats {
	st := Stats{Consumer: s.consumer.Stats()}
	st.BrokerDownSince, _ = s.consumer.BrokerDownSince()
	st.BrokerUp = st.BrokerDownSince.IsZero()
	learned := make(map[string]engine.ModelStats)
	for _, m := range s.engine.Stats().Models { // the models this instance learns
		learned[m.Model] = m
	}
	for _, mc := range s.cfg.Learner.Models {
		e, ok := learned[mc.Name]
		m := ModelStats{Name: mc.Name, Learning: ok && !e.Standby, Standby: e.Standby, Learned: e.Learned, LearnedHere: e.LearnedByEngine, Pinned: e.Pinned, Metrics: e.Metrics, ChampionMetrics: e.ChampionMetrics, Detections: e.Detections}
		if snap, ok := s.server.Current(mc.Name).(servedSnapshot); ok && snap.Snapshot != nil {
			m.ServedVersion, m.ServedLearned = snap.Version(), snap.Learned()
		}
		st.Models = append(st.Models, m)
	}
	return st
}
