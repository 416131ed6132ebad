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
			Help: "Predict RPCs answered, by model and gRPC status code.",
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
	for _, name := range models {
		m.version.WithLabelValues(name).Set(0)
	}
	reg.MustRegister(m.latency, m.requests, m.version, m.schema, m.explained)
	return m
}
