package eddy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// Security protocols of KafkaConfig, in Kafka's own names
// (security.protocol).
const (
	ProtocolPlaintext     = "plaintext"
	ProtocolSSL           = "ssl"
	ProtocolSASLPlaintext = "sasl_plaintext"
	ProtocolSASLSSL       = "sasl_ssl"
)

// KafkaConfig is how eddy connects to a Kafka cluster, in the names Kafka
// users know: the security protocol, SASL and TLS. It secures every
// connection eddy makes (consumer group, readers, writers of dead letters
// and internal topics, topic administration, the broker prober). The zero
// value is plaintext without authentication. In a model configuration
// file it is the "kafka:" section.
type KafkaConfig struct {
	// SecurityProtocol is plaintext, ssl, sasl_plaintext or sasl_ssl.
	// Empty infers it from the rest: sasl_* when a SASL mechanism is set,
	// *ssl when a TLS setting is.
	SecurityProtocol string   `yaml:"security_protocol"`
	SASL             SASLConf `yaml:"sasl"`
	TLS              TLSConf  `yaml:"tls"`
}

// SASLConf is the SASL part of KafkaConfig.
type SASLConf struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (any case).
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	// Password, or PasswordFile: a file whose first line is the password,
	// so that it need not be on a command line or in the configuration.
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
}

// TLSConf is the TLS part of KafkaConfig. Files are PEM.
type TLSConf struct {
	// CAFile holds the certificates that sign the brokers'; empty trusts
	// the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are eddy's client certificate, for mutual TLS.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName is the name checked in the brokers' certificates; empty:
	// the host of each broker address.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate: for development
	// only, as it allows anyone in the middle to read and change the data.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Override returns k with every setting that o sets replaced by o's: flags
// over a configuration file.
func (k KafkaConfig) Override(o KafkaConfig) KafkaConfig {
	set := func(dst *string, src string) {
		if src != "" {
			*dst = src
		}
	}
	set(&k.SecurityProtocol, o.SecurityProtocol)
	set(&k.SASL.Mechanism, o.SASL.Mechanism)
	set(&k.SASL.Username, o.SASL.Username)
	set(&k.SASL.Password, o.SASL.Password)
	set(&k.SASL.PasswordFile, o.SASL.PasswordFile)
	set(&k.TLS.CAFile, o.TLS.CAFile)
	set(&k.TLS.CertFile, o.TLS.CertFile)
	set(&k.TLS.KeyFile, o.TLS.KeyFile)
	set(&k.TLS.ServerName, o.TLS.ServerName)
	k.TLS.InsecureSkipVerify = k.TLS.InsecureSkipVerify || o.TLS.InsecureSkipVerify
	return k
}

// Protocol returns the security protocol, inferred if not set.
func (k KafkaConfig) Protocol() string {
	if k.SecurityProtocol != "" {
		return strings.ToLower(k.SecurityProtocol)
	}
	tlsSet := k.TLS != (TLSConf{})
	switch {
	case k.SASL.Mechanism != "" && tlsSet:
		return ProtocolSASLSSL
	case k.SASL.Mechanism != "":
		return ProtocolSASLPlaintext
	case tlsSet:
		return ProtocolSSL
	}
	return ProtocolPlaintext
}

// Security builds the TLS configuration and SASL mechanism of k, reading
// the files it names. Each error names the setting and what to do.
func (k KafkaConfig) Security() (*tls.Config, sasl.Mechanism, error) {
	protocol := k.Protocol()
	var useTLS, useSASL bool
	switch protocol {
	case ProtocolPlaintext:
	case ProtocolSSL:
		useTLS = true
	case ProtocolSASLPlaintext:
		useSASL = true
	case ProtocolSASLSSL:
		useTLS, useSASL = true, true
	default:
		return nil, nil, fmt.Errorf("%w: kafka security protocol %q: want plaintext, ssl, sasl_plaintext or sasl_ssl", ErrInvalidConfig, k.SecurityProtocol)
	}
	if !useSASL && (k.SASL != SASLConf{}) {
		return nil, nil, fmt.Errorf("%w: kafka SASL settings are given but the security protocol is %s: use sasl_plaintext or sasl_ssl", ErrInvalidConfig, protocol)
	}
	if !useTLS && (k.TLS != TLSConf{}) {
		return nil, nil, fmt.Errorf("%w: kafka TLS settings are given but the security protocol is %s: use ssl or sasl_ssl", ErrInvalidConfig, protocol)
	}
	var tlsConfig *tls.Config
	if useTLS {
		var err error
		if tlsConfig, err = k.TLS.config(); err != nil {
			return nil, nil, err
		}
	}
	var mechanism sasl.Mechanism
	if useSASL {
		var err error
		if mechanism, err = k.SASL.mechanism(); err != nil {
			return nil, nil, err
		}
	}
	return tlsConfig, mechanism, nil
}

func (t TLSConf) config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%w: kafka TLS CA file: %w", ErrInvalidConfig, err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%w: kafka TLS CA file %s holds no PEM certificate", ErrInvalidConfig, t.CAFile)
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%w: kafka TLS client certificate: %w", ErrInvalidConfig, err)
		}
		c.Certificates = []tls.Certificate{cert}
	case t.CertFile != "" || t.KeyFile != "":
		return nil, fmt.Errorf("%w: a kafka TLS client certificate needs both its certificate and its key file", ErrInvalidConfig)
	}
	return c, nil
}

func (s SASLConf) mechanism() (sasl.Mechanism, error) {
	password := s.Password
	if s.PasswordFile != "" {
		if s.Password != "" {
			return nil, fmt.Errorf("%w: kafka SASL: give the password or a password file, not both", ErrInvalidConfig)
		}
		data, err := os.ReadFile(s.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("%w: kafka SASL password file: %w", ErrInvalidConfig, err)
		}
		password, _, _ = strings.Cut(string(data), "\n")
		password = strings.TrimRight(password, "\r")
	}
	if s.Username == "" {
		return nil, fmt.Errorf("%w: kafka SASL needs a username", ErrInvalidConfig)
	}
	switch strings.ToUpper(s.Mechanism) {
	case "PLAIN":
		return plain.Mechanism{Username: s.Username, Password: password}, nil
	case "SCRAM-SHA-256":
		return scram.Mechanism(scram.SHA256, s.Username, password)
	case "SCRAM-SHA-512":
		return scram.Mechanism(scram.SHA512, s.Username, password)
	case "":
		return nil, fmt.Errorf("%w: kafka SASL needs a mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", ErrInvalidConfig)
	}
	return nil, fmt.Errorf("%w: kafka SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", ErrInvalidConfig, s.Mechanism)
}
