package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/eddyhq/eddy/stream/devbroker"
)

const brokerUsage = `broker [flags]

Runs the embedded Kafka-protocol broker (kfake) on its own, in the
foreground, until interrupted: for development setups and for the crash
harness, which must kill eddy without killing its broker. With --data-dir the
broker keeps its topics and offsets across restarts. Not for production.

It can be secured, to try eddy's --kafka-* flags without a real cluster:
  --sasl-user MECHANISM:NAME:PASSWORD (repeatable) requires SASL: every
      client authenticates as one of these users (all superusers). Not
      with --data-dir: the broker would keep the users of its first start.
  --tls-dir DIR serves TLS only, with the certificates in DIR; if DIR has
      no ca.pem, a new development CA and certificates (valid for 127.0.0.1
      and localhost, for a year) are written there. Clients trust
      DIR/ca.pem: eddy --kafka-tls-ca DIR/ca.pem.
  --tls-client-auth requires client certificates signed by that CA (mutual
      TLS): eddy --kafka-tls-cert DIR/client.pem --kafka-tls-key
      DIR/client-key.pem.
For example, a SASL_SSL broker and an eddy that uses it:
  eddy broker --sasl-user SCRAM-SHA-256:eddy:secret --tls-dir ./tls
  eddy serve --brokers 127.0.0.1:9092 --kafka-security-protocol sasl_ssl \
    --kafka-sasl-mechanism SCRAM-SHA-256 --kafka-sasl-username eddy \
    --kafka-sasl-password-file ./pw --kafka-tls-ca ./tls/ca.pem
A secured broker advertises SaslHandshake from v0, as Kafka does, so that
clients built on librdkafka 2.0 (Debian 12's kcat) start SASL too.
All of this is for development only: the server and client keys lie
unencrypted in DIR (the CA's key is not kept: for new certificates, remove
DIR/ca.pem), and a password on a command line is visible to every user of
the machine.
`

func runBroker(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "broker", brokerUsage)
	addr := fs.String("addr", "127.0.0.1:9092", "listen address (host must be 127.0.0.1)")
	dataDir := fs.String("data-dir", "", "directory persisting the broker's data (empty: memory only)")
	var users saslUsers
	fs.Func("sasl-user", "require SASL and accept this user, as MECHANISM:NAME:PASSWORD with MECHANISM PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (repeatable; development only)", users.add)
	tlsDir := fs.String("tls-dir", "", "serve TLS only, with DIR/server.pem and DIR/server-key.pem; without DIR/ca.pem, generate a development CA and certificates there (clients trust DIR/ca.pem)")
	clientAuth := fs.Bool("tls-client-auth", false, "require client certificates signed by the CA of --tls-dir (mutual TLS; DIR/client.pem is one)")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	port, err := loopbackPort("--addr", *addr)
	if err != nil {
		return err
	}
	if len(users) > 0 && *dataDir != "" {
		// kfake would keep the users persisted at the first start in the
		// directory (none, if SASL was off then) over these: a changed
		// password, or SASL turned on later, would lock every client out.
		return errors.New("--sasl-user cannot be combined with --data-dir: the broker would keep the users of its first start there and ignore these")
	}
	cfg := devbroker.Config{Port: port, DataDir: *dataDir, Users: users}
	var certs devbroker.Certificates
	if *tlsDir != "" {
		if cfg.TLS, certs, err = brokerTLS(env, *tlsDir, *clientAuth); err != nil {
			return err
		}
	} else if *clientAuth {
		return errors.New("--tls-client-auth needs --tls-dir: the client certificates must be signed by its CA")
	}
	b, err := devbroker.Start(cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "broker listening on %s (%s)\n", b.Addr(), describeSecurity(cfg, certs))
	<-ctx.Done()
	b.Close()
	return nil
}

// saslUsers are the users of --sasl-user.
type saslUsers []devbroker.User

// add parses one --sasl-user value, MECHANISM:NAME:PASSWORD. The password
// is the rest after the second colon, so it may hold colons itself.
func (u *saslUsers) add(value string) error {
	const want = "want MECHANISM:NAME:PASSWORD with MECHANISM PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"
	parts := strings.SplitN(value, ":", 3)
	if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
		return errors.New(want)
	}
	mechanism := strings.ToUpper(parts[0])
	switch mechanism {
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		return fmt.Errorf("unknown mechanism %q: %s", parts[0], want)
	}
	*u = append(*u, devbroker.User{Mechanism: mechanism, Name: parts[1], Password: parts[2]})
	return nil
}

// brokerTLS returns the broker's TLS configuration from the certificates
// in dir, generating them first (and saying so) if dir holds no ca.pem.
func brokerTLS(env *environment, dir string, clientAuth bool) (*tls.Config, devbroker.Certificates, error) {
	certs := devbroker.Certificates{
		CA:         filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.pem"), ServerKey: filepath.Join(dir, "server-key.pem"),
		ClientCert: filepath.Join(dir, "client.pem"), ClientKey: filepath.Join(dir, "client-key.pem"),
	}
	_, err := os.Stat(certs.CA)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if certs, err = devbroker.GenerateCertificates(dir, "127.0.0.1", "localhost"); err != nil {
			return nil, certs, fmt.Errorf("--tls-dir %s: %w", dir, err)
		}
		fmt.Fprintf(env.stdout, "generated development certificates in %s: clients trust %s (--kafka-tls-ca)\n", dir, certs.CA)
	case err != nil:
		return nil, certs, fmt.Errorf("--tls-dir %s: %w", dir, err)
	}
	cfg, err := certs.ServerTLS(clientAuth)
	if err != nil {
		return nil, certs, fmt.Errorf("--tls-dir %s: %w (remove its ca.pem to generate new certificates)", dir, err)
	}
	return cfg, certs, nil
}

// describeSecurity says, in Kafka's security protocol names, what a client
// of cfg needs: "SASL_SSL: SCRAM-SHA-256 user eddy; CA /x/ca.pem".
func describeSecurity(cfg devbroker.Config, certs devbroker.Certificates) string {
	protocol := "PLAINTEXT"
	switch {
	case len(cfg.Users) > 0 && cfg.TLS != nil:
		protocol = "SASL_SSL"
	case len(cfg.Users) > 0:
		protocol = "SASL_PLAINTEXT"
	case cfg.TLS != nil:
		protocol = "SSL"
	}
	var details []string
	if len(cfg.Users) > 0 {
		users := make([]string, len(cfg.Users))
		for i, u := range cfg.Users {
			users[i] = u.Mechanism + " user " + u.Name
		}
		details = append(details, strings.Join(users, ", "))
	}
	if cfg.TLS != nil {
		details = append(details, "CA "+certs.CA)
		if cfg.TLS.ClientAuth == tls.RequireAndVerifyClientCert {
			details = append(details, fmt.Sprintf("client certificate required, e.g. %s with %s", certs.ClientCert, certs.ClientKey))
		}
	}
	if len(details) == 0 {
		return protocol
	}
	return protocol + ": " + strings.Join(details, "; ")
}

// loopbackPort returns the port of addr, which must be 127.0.0.1:PORT with
// PORT a number (0: any free port). flag names the setting in the error.
func loopbackPort(flag, addr string) (int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err == nil && host == "127.0.0.1" {
		if n, perr := strconv.ParseUint(port, 10, 16); perr == nil {
			return int(n), nil
		}
	}
	return 0, fmt.Errorf("%s %q: want 127.0.0.1:PORT, PORT a number from 0 (any free port) to 65535", flag, addr)
}
