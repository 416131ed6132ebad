package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// clientFlags are the connection flags of the commands that call a running
// eddy over gRPC (predict and the admin commands).
type clientFlags struct {
	addr    string
	tlsCA   string
	timeout time.Duration
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:50051", "gRPC address of eddy")
	fs.DurationVar(&c.timeout, "timeout", 5*time.Second, "deadline of the call")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM certificate(s) to trust: connect over TLS (for serve --tls-cert)")
}

// dial returns a client connection to --addr, over TLS trusting --tls-ca
// when it is set. Like grpc.NewClient, it connects at the first call.
func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if c.tlsCA != "" {
		pem, err := os.ReadFile(c.tlsCA)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", c.tlsCA)
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	return grpc.NewClient(c.addr, grpc.WithTransportCredentials(creds))
}
