package eddy_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/stream"
	"github.com/eddyhq/eddy/stream/devbroker"
)

// secureBroker starts the embedded broker with TLS (mutual with
// clientAuth) and, with users, SASL; it returns its address and the
// development certificates.
func secureBroker(t *testing.T, clientAuth bool, users ...devbroker.User) (string, devbroker.Certificates) {
	t.Helper()
	certs, err := devbroker.GenerateCertificates(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tlsConfig, err := certs.ServerTLS(clientAuth)
	if err != nil {
		t.Fatal(err)
	}
	b, err := devbroker.Start(devbroker.Config{TLS: tlsConfig, Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addr(), certs
}

// produceSecure sends n SEA events to topic through cluster.
func produceSecure(t *testing.T, cluster stream.Cluster, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cluster.EnsureTopics(ctx, []stream.TopicSpec{{Name: topic, Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	w := &kafka.Writer{Addr: kafka.TCP(cluster.Brokers...), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: cluster.Transport()}
	defer w.Close()
	gen := newSEA(1, 25000, 0.1)
	var msgs []kafka.Message
	for range n {
		msgs = append(msgs, kafka.Message{Value: gen.next("s-")})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
}

// TestEddyLearnsAndServesOverSASLSSLWithEachMechanism runs the service
// against a broker that requires TLS and SASL, once per mechanism (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512), with the password read from a file: every
// connection it makes (group, readers, dead-letter, state and snapshot
// topics, topic creation) is then encrypted and authenticated, or nothing
// would be learned and served.
func TestEddyLearnsAndServesOverSASLSSLWithEachMechanism(t *testing.T) {
	for _, mechanism := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mechanism, func(t *testing.T) {
			broker, certs := secureBroker(t, false, devbroker.User{Mechanism: mechanism, Name: "eddy", Password: "s3cret"})
			passwordFile := filepath.Join(t.TempDir(), "password")
			if err := os.WriteFile(passwordFile, []byte("s3cret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			kc := eddy.KafkaConfig{SecurityProtocol: "sasl_ssl",
				SASL: eddy.SASLConf{Mechanism: mechanism, Username: "eddy", PasswordFile: passwordFile},
				TLS:  eddy.TLSConf{CAFile: certs.CA}}
			tlsConfig, sasl, err := kc.Security()
			if err != nil {
				t.Fatal(err)
			}
			produceSecure(t, stream.Cluster{Brokers: []string{broker}, TLS: tlsConfig, SASL: sasl}, "events", 1000)
			cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
			cfg.Kafka = kc
			svc := startTestService(t, cfg)
			waitFor(t, 30*time.Second, "1,000 learned over SASL_SSL", func() bool { return svc.learned("sea") == 1000 })
			waitFor(t, 10*time.Second, "a promoted snapshot", func() bool {
				_, err := predictClient(t, svc.GRPCAddr()).Predict(context.Background(), seaRequest("sea"))
				return err == nil
			})
		})
	}
}

// TestEddyConnectsWithMutualTLS runs the service against a broker that
// requires a client certificate signed by its authority.
func TestEddyConnectsWithMutualTLS(t *testing.T) {
	broker, certs := secureBroker(t, true)
	kc := eddy.KafkaConfig{TLS: eddy.TLSConf{CAFile: certs.CA, CertFile: certs.ClientCert, KeyFile: certs.ClientKey}}
	if got := kc.Protocol(); got != "ssl" {
		t.Fatalf("inferred protocol %q, want ssl", got)
	}
	tlsConfig, _, err := kc.Security()
	if err != nil {
		t.Fatal(err)
	}
	produceSecure(t, stream.Cluster{Brokers: []string{broker}, TLS: tlsConfig}, "events", 500)
	// Without the client certificate the broker refuses the handshake.
	noCert := tlsConfig.Clone()
	noCert.Certificates = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := (stream.Cluster{Brokers: []string{broker}, TLS: noCert}).EnsureTopics(ctx, []stream.TopicSpec{{Name: "x", Partitions: 1}}); err == nil {
		t.Fatal("the broker accepted a client without a certificate")
	}
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
	cfg.Kafka = kc
	svc := startTestService(t, cfg)
	waitFor(t, 30*time.Second, "500 learned over mutual TLS", func() bool { return svc.learned("sea") == 500 })
}
