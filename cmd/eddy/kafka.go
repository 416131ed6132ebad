package main

import (
	"flag"
	"strings"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/stream"
)

// kafkaOptions are the Kafka connection flags every command that talks to
// Kafka accepts (serve, produce, bench), in Kafka's own names.
type kafkaOptions struct {
	eddy.KafkaConfig
}

func (k *kafkaOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&k.SecurityProtocol, "kafka-security-protocol", "", "Kafka security.protocol: plaintext, ssl, sasl_plaintext or sasl_ssl (default: inferred from the --kafka-sasl-* and --kafka-tls-* flags, plaintext without them)")
	fs.StringVar(&k.SASL.Mechanism, "kafka-sasl-mechanism", "", "Kafka sasl.mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	fs.StringVar(&k.SASL.Username, "kafka-sasl-username", "", "SASL username")
	fs.StringVar(&k.SASL.Password, "kafka-sasl-password", "", "SASL password (prefer --kafka-sasl-password-file or EDDY_KAFKA_SASL_PASSWORD: a flag is visible to every user of the machine)")
	fs.StringVar(&k.SASL.PasswordFile, "kafka-sasl-password-file", "", "file whose first line is the SASL password")
	fs.StringVar(&k.TLS.CAFile, "kafka-tls-ca", "", "PEM file of the CA certificates that sign the brokers' (default: the system's roots)")
	fs.StringVar(&k.TLS.CertFile, "kafka-tls-cert", "", "PEM client certificate for mutual TLS (with --kafka-tls-key)")
	fs.StringVar(&k.TLS.KeyFile, "kafka-tls-key", "", "PEM private key of --kafka-tls-cert")
	fs.StringVar(&k.TLS.ServerName, "kafka-tls-server-name", "", "name to check in the brokers' certificates (default: each broker's host)")
	fs.BoolVar(&k.TLS.InsecureSkipVerify, "kafka-tls-insecure-skip-verify", false, "accept any broker certificate: development only (anyone in the middle can read and change the data)")
}

// cluster returns the cluster at brokers (comma-separated) with the
// security the flags (over file's kafka: section, if a file is named) say.
func (k *kafkaOptions) cluster(brokers, file string) (stream.Cluster, error) {
	cfg, err := k.config(file)
	if err != nil {
		return stream.Cluster{}, err
	}
	tlsConfig, mechanism, err := cfg.Security()
	if err != nil {
		return stream.Cluster{}, err
	}
	return stream.Cluster{Brokers: strings.Split(brokers, ","), TLS: tlsConfig, SASL: mechanism}, nil
}

// config returns the Kafka configuration: file's kafka: section (if a file
// is named), overridden by the flags.
func (k *kafkaOptions) config(file string) (eddy.KafkaConfig, error) {
	var base eddy.KafkaConfig
	if file != "" {
		var err error
		if base, err = eddy.LoadKafkaConfigFile(file); err != nil {
			return base, err
		}
	}
	return base.Override(k.KafkaConfig), nil
}
