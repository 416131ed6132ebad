package learner

import "github.com/prometheus/client_golang/prometheus"

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
			Help: "Snapshots created and promoted to serving, by model and reason.",
		}, []string{"model", "reason"}),
		checkpoint: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eddy_checkpoint_duration_seconds",
			Help:    "Time to write one checkpoint (all model state and offsets in one synced Pebble batch).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
	}
	reg.MustRegister(m.learned, m.rejected, m.unlabeled, m.accuracy, m.logLoss, m.mae, m.examples, m.promotions, m.checkpoint)
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

// observe publishes a model's metrics; called at each checkpoint.
func (m *engineMetrics) observe(model *Model) {
	name := model.cfg.Name
	s := model.Metrics()
	m.examples.WithLabelValues(name).Set(float64(model.learned))
	if s.N == 0 {
		return
	}
	if model.cfg.Task == Binary {
		m.accuracy.WithLabelValues(name, "cumulative").Set(s.Accuracy)
		m.accuracy.WithLabelValues(name, "rolling").Set(s.Rolling)
		m.logLoss.WithLabelValues(name).Set(s.LogLoss)
	} else {
		m.mae.WithLabelValues(name, "cumulative").Set(s.MAE)
		m.mae.WithLabelValues(name, "rolling").Set(s.Rolling)
	}
}
