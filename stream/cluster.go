package stream

import (
	"crypto/tls"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Cluster is how eddy reaches a Kafka cluster: its bootstrap brokers and
// the security of every connection to them. Nil TLS and SASL mean
// plaintext without authentication (the embedded broker's default).
type Cluster struct {
	// Brokers are the bootstrap addresses (host:port). Required.
	Brokers []string
	// TLS, if set, encrypts every connection (and, with a client
	// certificate, authenticates eddy: mutual TLS).
	TLS *tls.Config
	// SASL, if set, authenticates every connection (kafka-go's sasl/plain
	// or sasl/scram), over TLS if TLS is set too.
	SASL sasl.Mechanism
}

// Transport returns a new kafka-go Transport (a connection pool) for c,
// for writers and clients.
func (c Cluster) Transport() *kafka.Transport {
	return &kafka.Transport{TLS: c.TLS, SASL: c.SASL, DialTimeout: 10 * time.Second}
}

// Dialer returns a kafka-go Dialer for c, for readers and consumer groups.
func (c Cluster) Dialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, TLS: c.TLS, SASLMechanism: c.SASL}
}

// client returns a kafka-go Client of c with its own Transport.
func (c Cluster) client(timeout time.Duration) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: timeout, Transport: c.Transport()}
}
