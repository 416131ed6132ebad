package serving_test

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
)

// countingListener counts the connections it accepted that are still open
// on the server's side.
type countingListener struct {
	net.Listener
	open atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.open.Add(1)
	return &countedConn{Conn: c, l: l}, nil
}

type countedConn struct {
	net.Conn
	l    *countingListener
	once sync.Once
}

func (c *countedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}

// serveCounting runs a Server with cfg on a counting loopback listener.
func serveCounting(t *testing.T, cfg serving.Config) (*countingListener, *serving.Server) {
	t.Helper()
	srv := newServer(t, cfg, prometheus.NewRegistry(), "fraud")
	srv.Publish(&linearSnapshot{Name: "fraud", Ver: 1, Binary: true})
	lis := &countingListener{Listener: listenLoopback(t)}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-served })
	return lis, srv
}

func waitOpen(t *testing.T, lis *countingListener, want int64, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for lis.open.Load() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d connections open on the server after %v, want %d", what, lis.open.Load(), within, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialRaw opens n TCP connections to addr and writes hello on each.
func dialRaw(t *testing.T, addr string, n int, hello []byte) {
	t.Helper()
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := c.Write(hello); err != nil {
			t.Fatal(err)
		}
	}
}

// The client connection preface of HTTP/2: the magic string and an empty
// SETTINGS frame.
var http2Preface = append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, 0, 0, 4, 0, 0, 0, 0, 0)

func TestIdleGRPCConnectionsAreClosed(t *testing.T) {
	const clients = 50
	cfg := serving.Config{MaxConnectionIdle: 300 * time.Millisecond, HandshakeTimeout: 300 * time.Millisecond}

	t.Run("connections that send the HTTP/2 preface and then idle are closed after MaxConnectionIdle", func(t *testing.T) {
		t.Parallel()
		lis, _ := serveCounting(t, cfg)
		dialRaw(t, lis.Addr().String(), clients, http2Preface)
		waitOpen(t, lis, clients, 5*time.Second, "accepting the raw clients")
		// MaxConnectionIdle, then gRPC's graceful GOAWAY waits up to 5s for a
		// ping acknowledgement these clients never send.
		waitOpen(t, lis, 0, cfg.MaxConnectionIdle+10*time.Second, "idle HTTP/2 clients")
	})
	t.Run("connections that never finish the handshake are closed after HandshakeTimeout", func(t *testing.T) {
		t.Parallel()
		lis, _ := serveCounting(t, cfg)
		dialRaw(t, lis.Addr().String(), clients, nil)
		waitOpen(t, lis, clients, 5*time.Second, "accepting the raw clients")
		waitOpen(t, lis, 0, cfg.HandshakeTimeout+5*time.Second, "silent TCP clients")
	})
	t.Run("a gRPC client idle after a call is disconnected and reconnects for the next", func(t *testing.T) {
		t.Parallel()
		lis, _ := serveCounting(t, cfg)
		client := eddyv1.NewInferenceClient(dial(t, lis.Addr().String()))
		if _, err := client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "fraud", Features: numbers(1)}); err != nil {
			t.Fatalf("Predict: %v", err)
		}
		waitOpen(t, lis, 0, cfg.MaxConnectionIdle+10*time.Second, "an idle gRPC client")
		if _, err := client.Predict(rpcContext(t), &eddyv1.PredictRequest{Model: "fraud", Features: numbers(1)}); err != nil {
			t.Fatalf("Predict after the idle connection was closed: %v", err)
		}
	})
}
