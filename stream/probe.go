package stream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"
)

// BrokerError is why a broker could not be used: Reason says it in words,
// with what to check; Err is the underlying error.
type BrokerError struct {
	Addr   string
	Reason string
	Err    error
}

func (e *BrokerError) Error() string { return fmt.Sprintf("kafka at %s: %s", e.Addr, e.Reason) }
func (e *BrokerError) Unwrap() error { return e.Err }

// probeTimeout bounds each step of a probe.
const probeTimeout = 5 * time.Second

// Probe checks that some bootstrap broker of c can be used: it connects to
// each in turn, as every connection of eddy does (TCP, then TLS, then a
// Kafka request, then SASL, then a request that needs authentication), and
// returns nil at the first that answers. Otherwise it returns the
// *BrokerError of the first broker, whose Reason tells the failures apart:
// nothing listening, a name that does not resolve, an untrusted
// certificate, TLS to a plaintext listener and the reverse, a client
// certificate the broker wants, failed SASL authentication, a broker that
// wants SASL.
func (c Cluster) Probe(ctx context.Context) error {
	var first error
	for _, addr := range c.Brokers {
		err := c.probe(ctx, addr)
		if err == nil {
			return nil
		}
		if first == nil {
			first = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	if first == nil {
		return &BrokerError{Reason: "no bootstrap broker given", Err: errors.New("no brokers")}
	}
	return first
}

func (c Cluster) probe(ctx context.Context, addr string) error {
	fail := func(reason string, err error) error { return &BrokerError{Addr: addr, Reason: reason, Err: err} }
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		var dnsErr *net.DNSError
		switch {
		case errors.As(err, &dnsErr):
			return fail(fmt.Sprintf("cannot resolve %q (%v): check the broker address", dnsErr.Name, dnsErr.Err), err)
		case errors.Is(err, syscall.ECONNREFUSED):
			return fail("connection refused: no broker listens there (is it running? is the port right?)", err)
		case ctx.Err() != nil:
			return fail("no answer to the connection within 5 s (a firewall, or the wrong host?)", err)
		}
		return fail(err.Error(), err)
	}
	if c.TLS != nil {
		cfg := c.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName, _, _ = net.SplitHostPort(addr)
		}
		conn := tls.Client(raw, cfg)
		err := conn.HandshakeContext(ctx)
		if err == nil {
			// TLS 1.3 reports a refused client certificate on the first
			// read, after the handshake: a Kafka request shows it.
			err = apiVersions(conn)
		}
		conn.Close()
		if err != nil {
			return fail(tlsReason(err, ctx), err)
		}
	} else {
		err := apiVersions(raw)
		raw.Close()
		if err != nil {
			if isClosed(err) {
				return fail("the broker closed the connection at the first request: its listener probably expects TLS (security protocol ssl or sasl_ssl)", err)
			}
			return fail("no Kafka answer: "+err.Error(), err)
		}
	}
	d := c.Dialer()
	d.Timeout = probeTimeout
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		if c.SASL == nil {
			return fail(err.Error(), err)
		}
		var kerr kafka.Error
		switch {
		case errors.As(err, &kerr) && kerr == kafka.UnsupportedSASLMechanism:
			return fail(fmt.Sprintf("the broker does not accept SASL mechanism %s: use one it has enabled", c.SASL.Name()), err)
		case errors.As(err, &kerr) && kerr == kafka.SASLAuthenticationFailed, isClosed(err):
			return fail(fmt.Sprintf("SASL authentication failed (mechanism %s): check the username and password, and that the user exists for that mechanism", c.SASL.Name()), err)
		}
		return fail("SASL: "+err.Error(), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(probeTimeout))
	if _, err := conn.Brokers(); err != nil {
		if c.SASL == nil && isClosed(err) {
			return fail("the broker refused a request from an unauthenticated client: it probably requires SASL (security protocol sasl_plaintext or sasl_ssl)", err)
		}
		return fail("metadata request failed: "+err.Error(), err)
	}
	return nil
}

// apiVersions sends an ApiVersions request (v0) on conn and reads the
// answer's size: enough to know that a Kafka broker speaks there.
func apiVersions(conn net.Conn) error {
	_ = conn.SetDeadline(time.Now().Add(probeTimeout))
	const clientID = "eddy-probe"
	// size, api key 18, version 0, correlation id 1, client id.
	req := []byte{0, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0, 1, 0, byte(len(clientID))}
	req = append(req, clientID...)
	req[3] = byte(len(req) - 4)
	if _, err := conn.Write(req); err != nil {
		return err
	}
	var size [4]byte
	_, err := io.ReadFull(conn, size[:])
	return err
}

func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func tlsReason(err error, ctx context.Context) string {
	var unknown x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var recordHeader tls.RecordHeaderError
	var timeout net.Error
	msg := err.Error()
	switch {
	case errors.As(err, &unknown):
		return "TLS: the broker's certificate is signed by an authority eddy does not trust: give its CA (--kafka-tls-ca)"
	case errors.As(err, &hostname):
		return fmt.Sprintf("TLS: the broker's certificate is not valid for this address (%v): connect by a name it names, or set --kafka-tls-server-name", err)
	case errors.As(err, &invalid):
		return fmt.Sprintf("TLS: the broker's certificate is invalid (%v)", err)
	case errors.As(err, &recordHeader):
		return "TLS to a listener that does not speak TLS: use security protocol plaintext or sasl_plaintext, or the broker's TLS port"
	case strings.Contains(msg, "certificate required") || strings.Contains(msg, "bad certificate"):
		return "TLS: the broker wants a client certificate it trusts (mutual TLS): give --kafka-tls-cert and --kafka-tls-key"
	case errors.As(err, &timeout) && timeout.Timeout(), ctx.Err() != nil:
		return "TLS: no handshake answer within 5 s: the listener probably does not speak TLS (use security protocol plaintext or sasl_plaintext)"
	case isClosed(err):
		return "TLS: the broker closed the connection during the handshake"
	}
	return "TLS: " + msg
}

// WaitForCluster probes c (Probe) until it answers, ctx ends or limit (if
// positive) has passed, backing off from 250 ms to 5 s between probes.
// wait is called with each new reason (not again while it stays the same),
// the first time at once or after a second at most, so that a caller can
// say what it is waiting for. It returns the last *BrokerError when limit
// passes, and ctx's error when ctx ends.
func WaitForCluster(ctx context.Context, c Cluster, limit time.Duration, wait func(err error)) error {
	start := time.Now()
	backoff := 250 * time.Millisecond
	var last string
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		if last != "" {
			cancel()
			pctx, cancel = context.WithTimeout(ctx, 2*probeTimeout)
		}
		err := c.Probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if reason := err.Error(); reason != last {
			last = reason
			wait(err)
		}
		if limit > 0 && time.Since(start) >= limit {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
