package serving

import "github.com/prometheus/client_golang/prometheus"

// serverMetrics are the Prometheus metrics of a Server. The model label only
// takes configured names or "unknown".
type serverMetrics struct {
	latency   *prometheus.HistogramVec
	requests  *prometheus.CounterVec
	version   *prometheus.GaugeVec
	schema    *prometheus.CounterVec
	explained *prometheus.CounterVec

	batchLatency prometheus.Histogram
	batchRefused prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer, models []string) *serverMetrics {
	m := &serverMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eddy_predict_duration_seconds",
			Help:    "Time to answer a Predict RPC, by model.",
			Buckets: prometheus.ExponentialBuckets(0.00001, 2, 18),
		}, []string{"model"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_predict_requests_total",
			Help: "Predictions answered, by model and gRPC status code: Predict RPCs and the rows of PredictBatch calls (each row under its own code).",
		}, []string{"model", "code"}),
		version: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_served_model_version",
			Help: "Version of the snapshot that answers predictions, by model (0: none yet).",
		}, []string{"model"}),
	}
	m.schema = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_predict_schema_violations_total",
		Help: "Features of Predict requests that broke the model's schema (warned, or refused when strict), by model and violation.",
	}, []string{"model", "violation"})
	m.explained = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "eddy_predict_explained_total",
		Help: "Predict requests answered with an explanation (explain: true), by model.",
	}, []string{"model"})
	m.batchLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "eddy_predict_batch_duration_seconds",
		Help:    "Time to answer a PredictBatch RPC, all its rows.",
		Buckets: prometheus.ExponentialBuckets(0.00001, 2, 20),
	})
	m.batchRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_predict_batch_refused_total",
		Help: "PredictBatch RPCs refused as a whole (too many rows, a malformed message, no credential); rows refused alone count in eddy_predict_requests_total.",
	})
	for _, name := range models {
		m.version.WithLabelValues(name).Set(0)
	}
	reg.MustRegister(m.latency, m.requests, m.version, m.schema, m.explained, m.batchLatency, m.batchRefused)
	return m
}
