package eddy_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestStartUpWithoutABrokerWaitsServesStoredSnapshotsAndThenLearns starts
// a service that has learned before, while its broker is down, with a dead
// address first among the bootstrap brokers: within a second it logs that
// it waits for Kafka at both; /healthz answers 503 with the reason while
// Predict answers from the stored snapshot; the broker comes back 5 s
// later, at the second address, and learning resumes by itself.
func TestStartUpWithoutABrokerWaitsServesStoredSnapshotsAndThenLearns(t *testing.T) {
	brokerDir := t.TempDir()
	b, err := devbroker.Start(devbroker.Config{DataDir: brokerDir})
	if err != nil {
		t.Fatal(err)
	}
	port, addr := b.Port(), b.Addr()
	dataDir := t.TempDir()
	first := startTestService(t, testConfig(addr, dataDir, learner.ModelConfig{Name: "sea"}))
	produceSEAEvents(t, addr, "events", 500)
	waitFor(t, 30*time.Second, "500 learned", func() bool { return first.learned("sea") == 500 })
	waitFor(t, 10*time.Second, "a snapshot", func() bool {
		_, err := predictClient(t, first.GRPCAddr()).Predict(context.Background(), seaRequest("sea"))
		return err == nil
	})
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}
	b.Close()

	var logs lockedBuffer
	cfg := testConfig("127.0.0.1:1", dataDir, learner.ModelConfig{Name: "sea"})
	cfg.Brokers = append(cfg.Brokers, addr)
	reg := prometheus.NewRegistry()
	svc, err := eddy.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	r := runTestService(t, &running{Service: svc, registry: reg, noWait: true})
	started := time.Now()
	waitFor(t, time.Second, "the waiting line within 1 s", func() bool { return strings.Contains(logs.String(), "waiting for Kafka") })
	line := logs.String()
	if !strings.Contains(line, "127.0.0.1:1") || !strings.Contains(line, addr) {
		t.Fatalf("the waiting line does not name every bootstrap broker:\n%s", line)
	}
	code, body := get(t, "http://"+r.MetricsAddr()+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "waiting for Kafka") || !strings.Contains(body, "connection refused") {
		t.Fatalf("/healthz = %d %q while Kafka is down, want 503 with the reason", code, body)
	}
	if _, err := predictClient(t, r.GRPCAddr()).Predict(context.Background(), seaRequest("sea")); err != nil {
		t.Fatalf("Predict from the stored snapshot while Kafka is down: %v", err)
	}
	time.Sleep(5*time.Second - time.Since(started))
	b, err = devbroker.Start(devbroker.Config{Port: port, DataDir: brokerDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	select {
	case <-r.Connected():
	case <-time.After(30 * time.Second):
		t.Fatalf("not connected 30 s after the broker came up:\n%s", logs.String())
	}
	produceSEAEvents(t, addr, "events", 500)
	waitFor(t, 30*time.Second, "learning resumed", func() bool { return r.learned("sea") == 1000 })
	if code, _ := get(t, "http://"+r.MetricsAddr()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d once Kafka is up", code)
	}
}

// TestKafkaWaitGivesUpNamingTheReason bounds the wait: Run fails after it
// with the reason.
func TestKafkaWaitGivesUpNamingTheReason(t *testing.T) {
	cfg := testConfig("127.0.0.1:1", t.TempDir(), learner.ModelConfig{Name: "sea"})
	cfg.KafkaWait = 2 * time.Second
	svc, err := eddy.New(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = svc.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "--kafka-wait") {
		t.Fatalf("Run = %v, want the reason and the limit", err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("gave up after %v with --kafka-wait 2s", took)
	}
}

// TestOnAClusterAMissingTopicIsAnErrorUnlessEddyMayCreateIt: on a broker
// that is not the embedded one, eddy does not create a model's missing
// topic by default, and says which and how to fix it; with CreateTopics it
// does.
func TestOnAClusterAMissingTopicIsAnErrorUnlessEddyMayCreateIt(t *testing.T) {
	broker := startBroker(t)
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "sea", Topic: "payments"})
	cfg.CreateTopics = nil
	svc, err := eddy.New(context.Background(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "payments") || !strings.Contains(err.Error(), "--create-topics") {
		t.Fatalf("Run = %v, want an error naming the missing topic and the flag", err)
	}
	create := true
	cfg.CreateTopics = &create
	cfg.DataDir = t.TempDir()
	startTestService(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	missing, err := (stream.Cluster{Brokers: []string{broker}}).MissingTopics(ctx, []string{"payments", "payments.dlq"})
	if err != nil || len(missing) != 0 {
		t.Fatalf("with CreateTopics the topics are missing: %v %v", missing, err)
	}
}

// TestAStateTopicThatIsNotCompactedIsReported creates the group's state
// topic by hand with cleanup.policy=delete, as an operator might: eddy
// warns, naming the topic and the command that fixes it.
func TestAStateTopicThatIsNotCompactedIsReported(t *testing.T) {
	broker := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := stream.EnsureTopics(ctx, []string{broker}, []stream.TopicSpec{{Name: "test.state", Partitions: 1, Configs: map[string]string{"cleanup.policy": "delete"}}}); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
	reg := prometheus.NewRegistry()
	svc, err := eddy.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), reg)
	if err != nil {
		t.Fatal(err)
	}
	runTestService(t, &running{Service: svc, registry: reg})
	if !strings.Contains(logs.String(), "cleanup.policy=delete") || !strings.Contains(logs.String(), "--add-config cleanup.policy=compact") {
		t.Fatalf("no warning about the state topic's cleanup policy:\n%s", logs.String())
	}
}

// TestEachMisconfigurationIsNamedInTheLogAndOnHealthz starts the service
// against a SASL_SSL broker with one thing wrong at a time: it keeps
// waiting (no learning, no spinning), logs the distinct reason once, and
// /healthz answers 503 with it.
func TestEachMisconfigurationIsNamedInTheLogAndOnHealthz(t *testing.T) {
	broker, certs := secureBroker(t, false, devbroker.User{Mechanism: "SCRAM-SHA-256", Name: "eddy", Password: "right"})
	good := eddy.KafkaConfig{SecurityProtocol: "sasl_ssl", SASL: eddy.SASLConf{Mechanism: "SCRAM-SHA-256", Username: "eddy", Password: "right"}, TLS: eddy.TLSConf{CAFile: certs.CA}}
	for _, tc := range []struct {
		name  string
		kafka func(k eddy.KafkaConfig) eddy.KafkaConfig
		want  string
	}{
		{"wrong password", func(k eddy.KafkaConfig) eddy.KafkaConfig { k.SASL.Password = "wrong"; return k }, "SASL authentication failed"},
		{"untrusted certificate", func(k eddy.KafkaConfig) eddy.KafkaConfig { k.TLS.CAFile = ""; return k }, "does not trust"},
		{"plaintext to a TLS listener", func(k eddy.KafkaConfig) eddy.KafkaConfig {
			k.TLS = eddy.TLSConf{}
			k.SecurityProtocol = "sasl_plaintext"
			return k
		}, "expects TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs lockedBuffer
			cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
			cfg.Kafka = tc.kafka(good)
			reg := prometheus.NewRegistry()
			svc, err := eddy.New(context.Background(), cfg, slog.New(slog.NewTextHandler(&logs, nil)), reg)
			if err != nil {
				t.Fatal(err)
			}
			r := runTestService(t, &running{Service: svc, registry: reg, noWait: true})
			waitFor(t, 2*time.Second, "the reason in the log", func() bool { return strings.Contains(logs.String(), tc.want) })
			code, body := get(t, "http://"+r.MetricsAddr()+"/healthz")
			if code != http.StatusServiceUnavailable || !strings.Contains(body, tc.want) {
				t.Fatalf("/healthz = %d %q, want 503 saying %q", code, body, tc.want)
			}
			time.Sleep(3 * time.Second)
			if n := strings.Count(logs.String(), tc.want); n != 1 {
				t.Fatalf("the reason was logged %d times in 3 s, want once:\n%s", n, logs.String())
			}
		})
	}
}

// TestKafkaSettingsThatCannotWorkAreRefusedNamingTheSetting checks the
// configuration errors a user gets before anything connects.
func TestKafkaSettingsThatCannotWorkAreRefusedNamingTheSetting(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		k    eddy.KafkaConfig
		want string
	}{
		{"unknown mechanism", eddy.KafkaConfig{SASL: eddy.SASLConf{Mechanism: "GSSAPI", Username: "u", Password: "p"}}, `mechanism "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"unknown protocol", eddy.KafkaConfig{SecurityProtocol: "tls"}, `security protocol "tls"`},
		{"SASL settings with plaintext", eddy.KafkaConfig{SecurityProtocol: "plaintext", SASL: eddy.SASLConf{Mechanism: "PLAIN", Username: "u"}}, "use sasl_plaintext or sasl_ssl"},
		{"TLS settings with sasl_plaintext", eddy.KafkaConfig{SecurityProtocol: "sasl_plaintext", SASL: eddy.SASLConf{Mechanism: "PLAIN", Username: "u"}, TLS: eddy.TLSConf{CAFile: "ca.pem"}}, "use ssl or sasl_ssl"},
		{"no username", eddy.KafkaConfig{SASL: eddy.SASLConf{Mechanism: "PLAIN", Password: "p"}}, "needs a username"},
		{"missing password file", eddy.KafkaConfig{SASL: eddy.SASLConf{Mechanism: "PLAIN", Username: "u", PasswordFile: filepath.Join(dir, "nope")}}, "password file"},
		{"password and password file", eddy.KafkaConfig{SASL: eddy.SASLConf{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordFile: "f"}}, "not both"},
		{"certificate without key", eddy.KafkaConfig{TLS: eddy.TLSConf{CertFile: "c.pem"}}, "both its certificate and its key"},
		{"CA file that is not PEM", eddy.KafkaConfig{TLS: eddy.TLSConf{CAFile: writeFile(t, dir, "ca.txt", "not a certificate")}}, "holds no PEM certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := tc.k.Security()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Security() = %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTheKafkaSectionOfAConfigFileIsReadAndFlagsOverrideIt reads a model
// configuration file with a kafka: section, as eddy serve --config does.
func TestTheKafkaSectionOfAConfigFileIsReadAndFlagsOverrideIt(t *testing.T) {
	file := writeFile(t, t.TempDir(), "models.yaml", `kafka:
  security_protocol: sasl_ssl
  sasl: {mechanism: SCRAM-SHA-512, username: eddy, password_file: /run/secrets/kafka}
  tls: {ca_file: /etc/eddy/ca.pem, server_name: kafka.internal}
models:
  - name: fraud
`)
	k, err := eddy.LoadKafkaConfigFile(file)
	if err != nil {
		t.Fatal(err)
	}
	want := eddy.KafkaConfig{SecurityProtocol: "sasl_ssl",
		SASL: eddy.SASLConf{Mechanism: "SCRAM-SHA-512", Username: "eddy", PasswordFile: "/run/secrets/kafka"},
		TLS:  eddy.TLSConf{CAFile: "/etc/eddy/ca.pem", ServerName: "kafka.internal"}}
	if k != want {
		t.Fatalf("read %+v, want %+v", k, want)
	}
	flags := eddy.KafkaConfig{SASL: eddy.SASLConf{Username: "other"}}
	if got := k.Override(flags); got.SASL.Username != "other" || got.SASL.Mechanism != "SCRAM-SHA-512" || got.TLS.CAFile != "/etc/eddy/ca.pem" {
		t.Fatalf("flags over the file: %+v", got)
	}
	if _, err := eddy.LoadConfigFile(file); err != nil {
		t.Fatalf("the models of a file with a kafka: section: %v", err)
	}
}
