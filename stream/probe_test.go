package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/eddyhq/eddy/stream/devbroker"
)

// TestProbeTellsEachMisconfigurationApart points a client at real brokers
// (plaintext, TLS with SASL, mutual TLS, SASL without TLS) with each kind
// of mistake a user makes, and checks that each gets its own reason, and
// that the right settings get none.
func TestProbeTellsEachMisconfigurationApart(t *testing.T) {
	certs, err := devbroker.GenerateCertificates(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	start := func(cfg devbroker.Config) string {
		b, err := devbroker.Start(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(b.Close)
		return b.Addr()
	}
	serverTLS, _ := certs.ServerTLS(false)
	mutualTLS, _ := certs.ServerTLS(true)
	users := []devbroker.User{{Mechanism: "PLAIN", Name: "u", Password: "p"}, {Mechanism: "SCRAM-SHA-512", Name: "s", Password: "p"}}
	plaintext := start(devbroker.Config{})
	saslSSL := start(devbroker.Config{TLS: serverTLS, Users: users})
	mutual := start(devbroker.Config{TLS: mutualTLS})
	saslPlain := start(devbroker.Config{Users: users})

	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(certs.CA)
	pool.AppendCertsFromPEM(pem)
	trusted := &tls.Config{RootCAs: pool}
	withCert := trusted.Clone()
	cert, _ := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	withCert.Certificates = []tls.Certificate{cert}
	scramOK, _ := scram.Mechanism(scram.SHA512, "s", "p")
	scramWrong, _ := scram.Mechanism(scram.SHA512, "s", "wrong")
	good := plain.Mechanism{Username: "u", Password: "p"}

	for _, tc := range []struct {
		name string
		addr string
		tls  *tls.Config
		sasl sasl.Mechanism
		want string // "" for success
	}{
		{"plaintext", plaintext, nil, nil, ""},
		{"SASL_SSL PLAIN", saslSSL, trusted, good, ""},
		{"SASL_SSL SCRAM", saslSSL, trusted, scramOK, ""},
		{"mutual TLS", mutual, withCert, nil, ""},
		{"SASL_PLAINTEXT", saslPlain, nil, good, ""},
		{"nothing listening", "127.0.0.1:1", nil, nil, "connection refused"},
		{"unknown host", "no-such-host.invalid:9092", nil, nil, "cannot resolve"},
		{"wrong password", saslSSL, trusted, plain.Mechanism{Username: "u", Password: "wrong"}, "SASL authentication failed"},
		{"wrong SCRAM password", saslSSL, trusted, scramWrong, "SASL authentication failed"},
		{"untrusted certificate", saslSSL, &tls.Config{}, good, "does not trust"},
		{"TLS to a plaintext listener", plaintext, trusted, nil, "does not speak TLS"},
		{"plaintext to a TLS listener", saslSSL, nil, good, "expects TLS"},
		{"no client certificate", mutual, trusted, nil, "client certificate"},
		{"no SASL on a SASL listener", saslPlain, nil, nil, "requires SASL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			err := Cluster{Brokers: []string{tc.addr}, TLS: tc.tls, SASL: tc.sasl}.Probe(ctx)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("probe: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("probe: %v; want a reason saying %q", err, tc.want)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}

// TestProbeTriesEveryBootstrapBroker lists a dead address before a live
// one: the cluster is usable.
func TestProbeTriesEveryBootstrapBroker(t *testing.T) {
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := (Cluster{Brokers: []string{"127.0.0.1:1", b.Addr()}}).Probe(ctx); err != nil {
		t.Fatalf("a dead first bootstrap broker hides the live second one: %v", err)
	}
}
