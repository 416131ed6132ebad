package eddy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "eddy test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestGRPCOverTLSWithAnAdminToken(t *testing.T) {
	broker := startBroker(t)
	certFile, keyFile, pool := selfSigned(t)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m"})
	cfg.Serving.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	cfg.Serving.AdminToken = "s3cret"
	svc := startTestService(t, cfg)
	produceSEAEvents(t, broker, "events", 3000)
	waitFor(t, 30*time.Second, "a snapshot", func() bool { return svc.model("m").ServedVersion != 0 })

	conn, err := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := eddyv1.NewInferenceClient(conn).Predict(ctx, &eddyv1.PredictRequest{Model: "m",
		Features: map[string]*structpb.Value{"f1": structpb.NewNumberValue(1)}}); err != nil {
		t.Fatalf("Predict over TLS: %v", err)
	}

	plain, _ := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	defer plain.Close()
	short, cancelShort := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancelShort()
	if _, err := eddyv1.NewInferenceClient(plain).Predict(short, &eddyv1.PredictRequest{Model: "m"}); err == nil {
		t.Fatal("a plaintext client was served by a TLS server")
	}

	admin := eddyv1.NewAdminClient(conn)
	if _, err := admin.ListSnapshots(ctx, &eddyv1.ListSnapshotsRequest{Model: "m"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ListSnapshots without the token: %v, want Unauthenticated", err)
	}
	wrong := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer guess")
	if _, err := admin.ListSnapshots(wrong, &eddyv1.ListSnapshotsRequest{Model: "m"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("ListSnapshots with a wrong token: %v, want Unauthenticated", err)
	}
	authorized := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer s3cret")
	list, err := admin.ListSnapshots(authorized, &eddyv1.ListSnapshotsRequest{Model: "m"})
	if err != nil || len(list.GetSnapshots()) == 0 {
		t.Fatalf("ListSnapshots with the token: %v, %v", list, err)
	}
}

func TestPredictHonoursTheDeadline(t *testing.T) {
	broker := startBroker(t)
	svc := startTestService(t, testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m"}))
	client := predictClient(t, svc.GRPCAddr())
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := client.Predict(ctx, &eddyv1.PredictRequest{Model: "m"}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("an expired deadline gave %v, want DeadlineExceeded", err)
	}
	big := map[string]*structpb.Value{"blob": structpb.NewStringValue(string(make([]byte, 2<<20)))}
	if _, err := client.Predict(context.Background(), &eddyv1.PredictRequest{Model: "m", Features: big}); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a 2 MiB request gave %v, want ResourceExhausted (the limit is 1 MiB)", err)
	}
}

// countingListener counts the connections it accepted that the server has
// not closed yet.
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

func TestIdleMetricsConnectionsAreClosedAfterTheIdleTimeout(t *testing.T) {
	broker := startBroker(t)
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m"})
	cfg.MetricsIdleTimeout = 300 * time.Millisecond
	svc := newTestService(t, cfg)
	var lis *countingListener
	svc.WrapMetricsListener(func(l net.Listener) net.Listener {
		lis = &countingListener{Listener: l}
		return lis
	})
	runTestService(t, svc)

	const clients = 5
	for range clients {
		// Each client keeps its connection alive after the response, as
		// Prometheus does between scrapes.
		client := &http.Client{Transport: &http.Transport{}}
		resp, err := client.Get("http://" + svc.MetricsAddr() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		t.Cleanup(client.CloseIdleConnections)
	}
	if n := lis.open.Load(); n != clients {
		t.Fatalf("%d connections open after %d scrapes, want %d kept alive", n, clients, clients)
	}
	deadline := time.Now().Add(cfg.MetricsIdleTimeout + 5*time.Second)
	for lis.open.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle keep-alive connections still open on the server %v after the idle timeout of %v", lis.open.Load(), 5*time.Second, cfg.MetricsIdleTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
