package engine

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// engineMetrics are the Prometheus metrics of an Engine. Label values are
// model names from the configuration and bounded reason codes only.
type engineMetrics struct {
	learned    *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	unlabeled  *prometheus.CounterVec
	accuracy   *prometheus.GaugeVec
	logLoss    *prometheus.GaugeVec
	mae        *prometheus.GaugeVec
	examples   *prometheus.GaugeVec
	promotions *prometheus.CounterVec
	checkpoint prometheus.Histogram

	detections         *prometheus.CounterVec
	detectionToServing *prometheus.HistogramVec
	adwinWidth         *prometheus.GaugeVec
	adwinEstimate      *prometheus.GaugeVec
	championAccuracy   *prometheus.GaugeVec
	championMAE        *prometheus.GaugeVec
	challenger         *prometheus.GaugeVec
	delayed            *prometheus.CounterVec
	expired            *prometheus.CounterVec
	pending            *prometheus.GaugeVec
	evicted            *prometheus.CounterVec
	entities           *prometheus.GaugeVec
	historyBytes       *prometheus.GaugeVec
	pendingInMemory    *prometheus.GaugeVec
	cacheHits          *prometheus.CounterVec
	cacheMisses        *prometheus.CounterVec
	unloaded           *prometheus.CounterVec
	late               *prometheus.CounterVec
	future             *prometheus.CounterVec
	violations         *prometheus.CounterVec
	featureDrift       *prometheus.CounterVec
	featureDistance    *prometheus.GaugeVec
	overflow           *prometheus.CounterVec
	skew               *prometheus.GaugeVec

	// The histories' own counts at the last checkpoint, by model: the
	// counters advance by the difference.
	lateSeen, futureSeen, overflowSeen map[string]uint64
	hitsSeen, missesSeen, unloadedSeen map[string]uint64
}

func newEngineMetrics(reg prometheus.Registerer) *engineMetrics {
	m := &engineMetrics{
		learned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_examples_learned_total",
			Help: "Labeled examples learned by this process, by model.",
		}, []string{"model"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_examples_rejected_total",
			Help: "Examples a model refused to learn (sent to the dead-letter topic), by model and reason.",
		}, []string{"model", "reason"}),
		unlabeled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_events_unlabeled_total",
			Help: "Events without a label, scored but not learned, by model.",
		}, []string{"model"}),
		accuracy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_prequential_accuracy",
			Help: "Prequential accuracy of binary models (0-1), cumulative or over the rolling window.",
		}, []string{"model", "window"}),
		logLoss: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_prequential_log_loss",
			Help: "Cumulative prequential log loss of binary models.",
		}, []string{"model"}),
		mae: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_prequential_mae",
			Help: "Prequential mean absolute error of regression models, cumulative or over the rolling window.",
		}, []string{"model", "window"}),
		examples: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_model_examples",
			Help: "Examples the model's stored state has learned over its whole life (survives restarts).",
		}, []string{"model"}),
		promotions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_snapshots_promoted_total",
			Help: "Snapshots that became the served one, by model and reason (snapshots created while an operator pinned the champion are not counted).",
		}, []string{"model", "reason"}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eddy_checkpoint_duration_seconds",
			Help:    "Time to write one checkpoint (all model state and offsets in one synced Pebble batch).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	m.detections = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_drift_detections_total",
		Help: "Drift detections on the champion's prequential error, by model and detector.",
	}, []string{"model", "detector"})
	m.detectionToServing = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "eddy_drift_detection_to_promotion_seconds",
		Help:    "Time from a drift detection to serving the post-drift challenger that replaced the champion.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
	}, []string{"model"})
	m.adwinWidth = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_drift_adwin_width",
		Help: "Width (examples) of the ADWIN window over the champion's error.",
	}, []string{"model"})
	m.adwinEstimate = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_drift_adwin_estimate",
		Help: "ADWIN's estimate of the champion's mean error over its window.",
	}, []string{"model"})
	m.championAccuracy = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_champion_accuracy",
		Help: "Prequential accuracy of the served (champion) snapshots of a classifier (0-1), cumulative since the first one or over the rolling window: beside eddy_prequential_accuracy, the served model against the live one.",
	}, []string{"model", "window"})
	m.championMAE = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_champion_mae",
		Help: "Prequential mean absolute error of the served (champion) snapshots of a regressor, cumulative since the first one or over the rolling window.",
	}, []string{"model", "window"})
	m.challenger = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_drift_challenger_active",
		Help: "1 while a post-drift challenger is being compared with the champion.",
	}, []string{"model"})
	m.delayed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_labels_delayed_learned_total",
		Help: "Events learned when their label arrived on the labels topic, by model.",
	}, []string{"model"})
	m.expired = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_labels_expired_total",
		Help: "Unlabeled events whose label did not arrive within label_ttl, by model.",
	}, []string{"model"})
	m.pending = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_labels_pending",
		Help: "Unlabeled events waiting for their label, by model.",
	}, []string{"model"})
	m.pendingInMemory = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_labels_pending_in_memory",
		Help: "Unlabeled events waiting for their label held in memory (at most max_pending_in_memory after a checkpoint; all wait in the store), by model.",
	}, []string{"model"})
	m.evicted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_history_evicted_total",
		Help: "Entity histories evicted after entity_ttl without events (from memory and the store), by model.",
	}, []string{"model"})
	m.entities = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_history_entities",
		Help: "Entity histories held in memory (at most max_entities_in_memory after a checkpoint; the rest are in the store), by model.",
	}, []string{"model"})
	m.historyBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_history_memory_bytes",
		Help: "Estimated bytes of the entity histories held in memory, by model.",
	}, []string{"model"})
	m.cacheHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_history_cache_hits_total",
		Help: "Events and labels whose entity's history was in memory, by model.",
	}, []string{"model"})
	m.cacheMisses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_history_cache_misses_total",
		Help: "Lookups of an entity's history, by an event, a label or a Predict, that did not find it in memory and read the store (one Pebble read each), by model.",
	}, []string{"model"})
	m.unloaded = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_history_unloaded_total",
		Help: "Entity histories moved out of memory for max_entities_in_memory, least recently used first (they stay in the store), by model.",
	}, []string{"model"})
	m.late = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_history_late_events_total",
		Help: "Events behind their entity's watermark by more than allowed_lateness, seen by time windows, by model.",
	}, []string{"model"})
	m.future = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_history_future_events_total",
		Help: "Events stamped more than max_future ahead of the clock, left out of time windows, by model.",
	}, []string{"model"})
	m.violations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_schema_violations_total",
		Help: "Features of events that broke their model's schema, by model, violation (unknown_feature, wrong_kind, missing_required, out_of_range) and feature (a declared one, or other).",
	}, []string{"model", "violation", "feature"})
	m.overflow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_features_overflowed_total",
		Help: "Numeric features of learned events left out because max_numeric_features was reached (too_many_features: ignore_feature), by model.",
	}, []string{"model"})
	m.lateSeen, m.futureSeen, m.overflowSeen = make(map[string]uint64), make(map[string]uint64), make(map[string]uint64)
	m.hitsSeen, m.missesSeen, m.unloadedSeen = make(map[string]uint64), make(map[string]uint64), make(map[string]uint64)
	m.featureDrift = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_feature_drift_detections_total",
		Help: "Changes of a watched feature's distribution (feature_drift), by model and feature.",
	}, []string{"model", "feature"})
	m.featureDistance = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_feature_drift_distance",
		Help: "Jensen-Shannon distance (0-1) between a watched feature's newest values and its reference, as of the last checkpoint, by model and feature.",
	}, []string{"model", "feature"})
	m.skew = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "eddy_feature_skew_distance",
		Help: "Training/serving skew of a watched feature: Jensen-Shannon distance (0-1) between its values in the newest events learned and in the newest Predict requests answered here, at the last checkpoint, by model and feature.",
	}, []string{"model", "feature"})
	reg.MustRegister(m.violations, m.featureDrift, m.featureDistance, m.overflow, m.skew)
	reg.MustRegister(m.delayed, m.expired, m.pending, m.evicted, m.entities, m.late, m.future,
		m.historyBytes, m.cacheHits, m.cacheMisses, m.unloaded, m.pendingInMemory)
	reg.MustRegister(m.learned, m.rejected, m.unlabeled, m.accuracy, m.logLoss, m.mae, m.examples, m.promotions, m.checkpoint,
		m.detections, m.detectionToServing, m.adwinWidth, m.adwinEstimate, m.championAccuracy, m.championMAE, m.challenger)
	return m
}

// modelMetrics are one model's metric handles, resolved once so the hot path
// does no label lookups.
type modelMetrics struct {
	learned   prometheus.Counter
	unlabeled prometheus.Counter
}

func (m *engineMetrics) forModel(name string) modelMetrics {
	return modelMetrics{learned: m.learned.WithLabelValues(name), unlabeled: m.unlabeled.WithLabelValues(name)}
}

// observeHistory advances a model's late and future event counters to the
// counts its history has seen (since it was created); called at each
// checkpoint.
func (m *engineMetrics) observeHistory(model string, h *features.History) {
	advance(m.late.WithLabelValues(model), m.lateSeen, model, h.Late())
	advance(m.future.WithLabelValues(model), m.futureSeen, model, h.Future())
	c := h.Cache()
	advance(m.cacheHits.WithLabelValues(model), m.hitsSeen, model, c.Hits)
	advance(m.cacheMisses.WithLabelValues(model), m.missesSeen, model, c.Misses)
	advance(m.unloaded.WithLabelValues(model), m.unloadedSeen, model, c.Unloaded)
	m.entities.WithLabelValues(model).Set(float64(h.Entities()))
	m.historyBytes.WithLabelValues(model).Set(float64(h.EstimatedBytes()))
}

func advance(c prometheus.Counter, seen map[string]uint64, model string, count uint64) {
	if count > seen[model] {
		c.Add(float64(count - seen[model]))
	}
	seen[model] = count
}

// observe publishes a model's metrics; called at each checkpoint.
func (m *engineMetrics) observe(u *modelState) {
	name := u.cfg.Name
	s := u.model.Metrics()
	m.examples.WithLabelValues(name).Set(float64(u.model.Learned()))
	advance(m.overflow.WithLabelValues(name), m.overflowSeen, name, u.model.OverflowedFeatures())
	if s.N == 0 {
		return
	}
	m.observeMonitor(u)
	if u.cfg.Task != learner.Regression {
		m.accuracy.WithLabelValues(name, "cumulative").Set(s.Accuracy)
		m.accuracy.WithLabelValues(name, "rolling").Set(s.Rolling)
		m.logLoss.WithLabelValues(name).Set(s.LogLoss)
	} else {
		m.mae.WithLabelValues(name, "cumulative").Set(s.MAE)
		m.mae.WithLabelValues(name, "rolling").Set(s.Rolling)
	}
}

func (m *engineMetrics) observeMonitor(u *modelState) {
	mon := u.mon
	name := u.cfg.Name
	if c := mon.ChampionMetrics(); c.N > 0 {
		if u.cfg.Task == learner.Regression {
			m.championMAE.WithLabelValues(name, "cumulative").Set(c.MAE)
			m.championMAE.WithLabelValues(name, "rolling").Set(c.Rolling)
		} else {
			m.championAccuracy.WithLabelValues(name, "cumulative").Set(c.Accuracy)
			m.championAccuracy.WithLabelValues(name, "rolling").Set(c.Rolling)
		}
	}
	if !mon.Challengers() {
		return
	}
	active := 0.0
	if mon.ChallengerActive() {
		active = 1
	}
	m.challenger.WithLabelValues(name).Set(active)
	type adwin interface {
		Width() int
		Estimation() float64
	}
	if a, ok := mon.Detector().(adwin); ok {
		m.adwinWidth.WithLabelValues(name).Set(float64(a.Width()))
		m.adwinEstimate.WithLabelValues(name).Set(a.Estimation())
	}
}

// forget deletes the gauges of a model this engine stopped learning: their
// values would be stale, and the model's new owner exports its own.
// Counters stay: they count what this process did.
func (m *engineMetrics) forget(name string) {
	for _, g := range []*prometheus.GaugeVec{m.accuracy, m.logLoss, m.mae, m.examples, m.adwinWidth, m.adwinEstimate,
		m.championAccuracy, m.championMAE, m.challenger, m.pending, m.pendingInMemory, m.entities, m.historyBytes, m.featureDistance, m.skew} {
		g.DeletePartialMatch(prometheus.Labels{"model": name})
	}
}
