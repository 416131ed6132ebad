package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/stream"
)

// runBrokerCommand runs `eddy broker args...` in-process on a free port
// until the test ends, and returns its address and what it printed once it
// listens.
func runBrokerCommand(t *testing.T, args ...string) (addr, stdout string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"broker", "--addr", "127.0.0.1:0"}, args...), func(string) string { return "" }, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("eddy broker: %v", err)
		}
	})
	listening := regexp.MustCompile(`broker listening on (\S+) `)
	waitFor(t, 5*time.Second, "the broker's listening line", func() bool {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("eddy broker %v stopped: %v\n%s", args, err, errOut.String())
		default:
		}
		return listening.MatchString(out.String())
	})
	return listening.FindStringSubmatch(out.String())[1], out.String()
}

// probe probes the broker at addr as eddy's --kafka-* flags of k would
// connect to it.
func probe(t *testing.T, addr string, k eddy.KafkaConfig) error {
	t.Helper()
	tlsConfig, mechanism, err := k.Security()
	if err != nil {
		t.Fatalf("kafka settings %+v: %v", k, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return stream.Cluster{Brokers: []string{addr}, TLS: tlsConfig, SASL: mechanism}.Probe(ctx)
}

func TestSecuredBrokerAcceptsItsUsersOverTLSWithItsCAAndNoOneElse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tls")
	ca := filepath.Join(dir, "ca.pem")
	addr, stdout := runBrokerCommand(t, "--sasl-user", "SCRAM-SHA-256:eddy:s3cret:with:colons", "--sasl-user", "plain:alice:wonderland", "--tls-dir", dir)
	for _, want := range []string{
		"generated development certificates in " + dir + ": clients trust " + ca,
		"(SASL_SSL: SCRAM-SHA-256 user eddy, PLAIN user alice; CA " + ca + ")",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("eddy broker printed\n%s\nwant it to say %q", stdout, want)
		}
	}
	scram := func(password string) eddy.KafkaConfig {
		return eddy.KafkaConfig{
			SecurityProtocol: eddy.ProtocolSASLSSL,
			SASL:             eddy.SASLConf{Mechanism: "SCRAM-SHA-256", Username: "eddy", Password: password},
			TLS:              eddy.TLSConf{CAFile: ca},
		}
	}
	plain := scram("wonderland")
	plain.SASL.Mechanism, plain.SASL.Username = "PLAIN", "alice"
	systemRoots := scram("s3cret:with:colons")
	systemRoots.TLS = eddy.TLSConf{}
	for _, tc := range []struct {
		name  string
		kafka eddy.KafkaConfig
		want  string // in the probe's reason; empty: the probe passes
	}{
		{"the SCRAM user with its password and the CA passes", scram("s3cret:with:colons"), ""},
		{"the PLAIN user with its password passes", plain, ""},
		{"a wrong password fails SASL authentication", scram("guess"), "SASL authentication failed"},
		{"the system's roots do not trust the development CA", systemRoots, "authority eddy does not trust"},
		{"plaintext is refused by the TLS listener", eddy.KafkaConfig{}, "expects TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := probe(t, addr, tc.kafka)
			var brokerErr *stream.BrokerError
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("probe: %v, want it to pass", err)
			case tc.want == "":
			case !errors.As(err, &brokerErr) || !strings.Contains(brokerErr.Reason, tc.want):
				t.Fatalf("probe: %v, want a *stream.BrokerError saying %q", err, tc.want)
			}
		})
	}
}

func TestBrokerOnAnExistingTLSDirKeepsItsCertificatesAndCanRequireClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	firstAddr, _ := runBrokerCommand(t, "--tls-dir", dir)
	caBefore, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	addr, stdout := runBrokerCommand(t, "--tls-dir", dir, "--tls-client-auth")
	if strings.Contains(stdout, "generated") {
		t.Errorf("the second broker on %s generated certificates again:\n%s", dir, stdout)
	}
	if caAfter, _ := os.ReadFile(ca); string(caAfter) != string(caBefore) {
		t.Errorf("%s changed when a second broker started on its directory", ca)
	}
	if want := "(SSL: CA " + ca + "; client certificate required"; !strings.Contains(stdout, want) {
		t.Errorf("eddy broker printed\n%s\nwant it to say %q", stdout, want)
	}
	withCA := eddy.KafkaConfig{TLS: eddy.TLSConf{CAFile: ca}}
	if err := probe(t, firstAddr, withCA); err != nil {
		t.Errorf("the first broker, without --tls-client-auth: probe with the CA: %v", err)
	}
	var brokerErr *stream.BrokerError
	if err := probe(t, addr, withCA); !errors.As(err, &brokerErr) || !strings.Contains(brokerErr.Reason, "client certificate") {
		t.Errorf("--tls-client-auth: probe without a client certificate: %v, want a BrokerError asking for one", err)
	}
	withClient := withCA
	withClient.TLS.CertFile, withClient.TLS.KeyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := probe(t, addr, withClient); err != nil {
		t.Errorf("--tls-client-auth: probe with %s: %v", withClient.TLS.CertFile, err)
	}
}

func TestBrokerRefusesSecuritySettingsItCannotUseNamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // in the error or on stderr
	}{
		{"a user without a password", []string{"--sasl-user", "PLAIN:eddy"}, `invalid value "PLAIN:eddy" for flag -sasl-user: want MECHANISM:NAME:PASSWORD`},
		{"a user without a name", []string{"--sasl-user", "PLAIN::secret"}, `for flag -sasl-user: want MECHANISM:NAME:PASSWORD`},
		{"a bare name", []string{"--sasl-user", "eddy"}, `for flag -sasl-user: want MECHANISM:NAME:PASSWORD`},
		{"a mechanism the broker lacks", []string{"--sasl-user", "SCRAM-SHA-1:eddy:secret"}, `for flag -sasl-user: unknown mechanism "SCRAM-SHA-1"`},
		{"client authentication without certificates", []string{"--tls-client-auth"}, "--tls-client-auth needs --tls-dir"},
		{"users that a data directory would override", []string{"--sasl-user", "PLAIN:eddy:secret", "--data-dir", t.TempDir()}, "--sasl-user cannot be combined with --data-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var stdout, stderr lockedBuffer
			err := run(ctx, append([]string{"broker", "--addr", "127.0.0.1:0"}, tc.args...), func(string) string { return "" }, &stdout, &stderr)
			if err == nil {
				t.Fatalf("eddy broker %v started, want it refused", tc.args)
			}
			if said := err.Error() + "\n" + stderr.String(); !strings.Contains(said, tc.want) {
				t.Fatalf("eddy broker %v: err %v, stderr %q; want %q", tc.args, err, stderr.String(), tc.want)
			}
		})
	}
}
