package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

func TestBrokerRefusesAnAddressItCannotParse(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:90o2", "127.0.0.1", "localhost:9092", "127.0.0.1:70000"} {
		t.Run(addr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, []string{"broker", "--addr", addr}, func(string) string { return "" }, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), "--addr") || !strings.Contains(err.Error(), addr) {
				t.Fatalf("broker --addr %s: err = %v, stdout %q; want an error naming --addr and the address", addr, err, stdout.String())
			}
		})
	}
}

func TestServeRefusesAnEmbeddedAddressItCannotParse(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:90o2", "127.0.0.1:70000"} {
		t.Run(addr, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var stdout, stderr bytes.Buffer
			err := run(ctx, []string{"serve", "--embedded-addr", addr, "--data-dir", t.TempDir(), "--grpc-addr", "127.0.0.1:0", "--metrics-addr", ""},
				func(string) string { return "" }, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), "--embedded-addr") || !strings.Contains(err.Error(), addr) {
				t.Fatalf("serve --embedded-addr %s: err = %v; want an error naming --embedded-addr and the address", addr, err)
			}
		})
	}
}
