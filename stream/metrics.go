package stream

import "github.com/prometheus/client_golang/prometheus"

// consumerMetrics are the Prometheus metrics of a Consumer. Labels are topic
// names, partition numbers and bounded reason codes only.
type consumerMetrics struct {
	reg            prometheus.Registerer
	consumed       *prometheus.CounterVec
	deadLettered   *prometheus.CounterVec
	lag            *prometheus.GaugeVec
	assigned       prometheus.Gauge
	rebalances     prometheus.Counter
	brokerUp       prometheus.Gauge
	commitFailures prometheus.Counter
	paused         prometheus.Gauge
}

func newConsumerMetrics(reg prometheus.Registerer) *consumerMetrics {
	m := &consumerMetrics{
		reg: reg,
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_events_consumed_total",
			Help: "Kafka messages consumed (valid or not), by topic.",
		}, []string{"topic"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eddy_events_dead_lettered_total",
			Help: "Events sent to the dead-letter topic, by source topic and reason.",
		}, []string{"topic", "reason"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eddy_consumer_lag",
			Help: "Messages between the last one processed and the partition's high watermark.",
		}, []string{"topic", "partition"}),
		assigned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eddy_consumer_partitions_assigned",
			Help: "Partitions this instance owns in the current group generation.",
		}),
		rebalances: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eddy_consumer_generations_total",
			Help: "Consumer group generations joined (1 at start, +1 per rebalance).",
		}),
	}
	m.brokerUp = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eddy_kafka_broker_up",
		Help: "1 while a Kafka broker accepts connections (probed every second), 0 during an outage.",
	})
	m.commitFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "eddy_kafka_commit_failures_total",
		Help: "Offset commits to the consumer group that failed (the checkpoint in the store stands; the next checkpoint commits again).",
	})
	m.paused = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eddy_learning_paused",
		Help: "1 while learning is paused because a checkpoint cannot be written (a full disk, say); predictions are still served.",
	})
	reg.MustRegister(m.paused)
	reg.MustRegister(m.consumed, m.deadLettered, m.lag, m.assigned, m.rebalances, m.brokerUp, m.commitFailures)
	return m
}
