package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// keepProducing sends SEA events to topic, a hundred every 50 ms, until the
// test ends, so that every promotion interval has something new to promote.
func keepProducing(t *testing.T, broker, topic string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
		defer w.Close()
		gen := newSEA(7, 25000, 0.1)
		for ctx.Err() == nil {
			batch := make([]kafka.Message, 100)
			for i := range batch {
				batch[i] = kafka.Message{Value: gen.next(nil, "k-")}
			}
			if err := w.WriteMessages(ctx, batch...); err != nil && ctx.Err() == nil {
				t.Errorf("producing: %v", err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// versionIn returns N from the first "vN" word after prefix in out.
func versionIn(t *testing.T, out, prefix string) uint64 {
	t.Helper()
	_, rest, ok := strings.Cut(out, prefix)
	var v uint64
	if !ok {
		t.Fatalf("no %q in:\n%s", prefix, out)
	}
	if _, err := fmt.Sscanf(rest, "v%d", &v); err != nil {
		t.Fatalf("no version after %q in:\n%s", prefix, out)
	}
	return v
}

// rowOf returns the table row of version v in the output of eddy snapshots.
func rowOf(t *testing.T, out string, v uint64) string {
	t.Helper()
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, fmt.Sprintf("v%d ", v)) {
			return strings.TrimSpace(line)
		}
	}
	t.Fatalf("no row for v%d in:\n%s", v, out)
	return ""
}

// storedSnapshots returns a function listing the stored snapshots of model
// through the Admin RPC of the service at addr (over TLS, with the token).
func storedSnapshots(t *testing.T, addr string, pool *x509.CertPool, token, model string) func() ([]*eddyv1.SnapshotInfo, error) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: pool})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	admin := eddyv1.NewAdminClient(conn)
	return func() ([]*eddyv1.SnapshotInfo, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		list, err := admin.ListSnapshots(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), &eddyv1.ListSnapshotsRequest{Model: model})
		return list.GetSnapshots(), err
	}
}

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

func TestOperatorCommandsListPinAndReleaseThroughTheCLI(t *testing.T) {
	broker := startBroker(t)
	certFile, keyFile, pool := selfSigned(t)
	o := testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
	o.tlsCert, o.tlsKey, o.adminToken = certFile, keyFile, "s3cret"
	svc := startTestService(t, o)
	stored := storedSnapshots(t, svc.GRPCAddr(), pool, "s3cret", "sea")
	keepProducing(t, broker, "events")
	waitFor(t, 60*time.Second, "three versions", func() bool {
		infos, err := stored()
		return err == nil && len(infos) >= 3
	})
	env := map[string]string{"EDDY_ADMIN_TOKEN": "s3cret"}
	conn := []string{"--model", "sea", "--addr", svc.GRPCAddr(), "--tls-ca", certFile}
	eddy := func(env map[string]string, args ...string) (string, error) {
		t.Helper()
		out, _, err := runCLI(t, env, append(args, conn...)...)
		return out, err
	}

	out, err := eddy(env, "snapshots")
	if err != nil {
		t.Fatal(err)
	}
	for _, column := range []string{"VERSION", "CREATED (UTC)", "AGE", "REASON", "LEARNED", "ACCURACY", "LOG_LOSS", "ROLLING", "STATUS", "initial", "periodic"} {
		if !strings.Contains(out, column) {
			t.Errorf("eddy snapshots shows no %q:\n%s", column, out)
		}
	}
	serving := versionIn(t, out, "model sea: ")
	if !strings.Contains(out, "chosen by automatic promotion") || !strings.HasSuffix(rowOf(t, out, serving), "serving") {
		t.Fatalf("eddy snapshots does not mark v%d as served by automatic promotion:\n%s", serving, out)
	}

	out, err = eddy(env, "rollback")
	if err != nil {
		t.Fatal(err)
	}
	pinned := versionIn(t, out, "model sea: ")
	if !strings.Contains(out, "pinned") {
		t.Fatalf("eddy rollback printed:\n%s", out)
	}
	var newest uint64
	waitFor(t, 30*time.Second, "newer versions", func() bool {
		infos, err := stored()
		if err == nil {
			newest = infos[len(infos)-1].GetVersion()
		}
		return newest > pinned+3
	})
	out, err = eddy(env, "snapshots", "--limit", "2")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, fmt.Sprintf("v%d serves, pinned by an operator", pinned)) || !strings.HasSuffix(rowOf(t, out, pinned), "serving, pinned") ||
		!strings.Contains(out, "--limit 0 shows all") || strings.Count(out, "\nv") != 3 {
		t.Fatalf("eddy snapshots --limit 2 after a rollback to v%d shows no pinned v%d beside the newest two:\n%s", pinned, pinned, out)
	}

	out, err = eddy(env, "promote", "--version", fmt.Sprint(newest))
	if err != nil || versionIn(t, out, "model sea: ") != newest || !strings.Contains(out, "pinned") {
		t.Fatalf("eddy promote --version %d: %v\n%s", newest, err, out)
	}
	out, err = eddy(env, "release")
	if err != nil || versionIn(t, out, "model sea: ") < newest || !strings.Contains(out, "automatic promotion chooses") {
		t.Fatalf("eddy release after pinning v%d: %v\n%s", newest, err, out)
	}

	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no token", nil, []string{"snapshots"}, "Unauthenticated"},
		{"a version never stored", env, []string{"promote", "--version", "999999"}, "NotFound"},
	} {
		if _, err := eddy(tc.env, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %s", tc.name, err, tc.want)
		}
	}
	if _, _, err := runCLI(t, env, "rollback", "--addr", svc.GRPCAddr()); err == nil || !strings.Contains(err.Error(), "--model is required") {
		t.Errorf("rollback without --model: %v", err)
	}
}

func TestTheSnapshotsTableShowsWhatServesAndWhatIsPinned(t *testing.T) {
	now := time.Date(2026, 11, 20, 11, 0, 0, 0, time.UTC)
	info := func(v uint64, ago time.Duration, reason string, learned uint64, acc float64, serving, pinned bool) *eddyv1.SnapshotInfo {
		return &eddyv1.SnapshotInfo{Version: v, Created: timestamppb.New(now.Add(-ago)), Reason: reason, Learned: learned,
			Metrics: map[string]float64{"n": float64(learned), "accuracy": acc, "log_loss": 0.3, "rolling": acc + 0.01}, Serving: serving, Pinned: pinned}
	}
	list := &eddyv1.ListSnapshotsResponse{ServingVersion: 2, Pinned: true, Snapshots: []*eddyv1.SnapshotInfo{
		info(1, 62*time.Minute, "initial", 1000, 0.81, false, false),
		info(2, 61*time.Minute+30*time.Second, "periodic", 2000, 0.8512, true, true),
		info(3, 90*time.Second, "drift", 3000, 0.86, false, false),
		info(4, 3*time.Second, "periodic", 4000, 0.87, false, false),
	}}
	var out strings.Builder
	if err := printSnapshots(&out, "sea", list, 2, now); err != nil {
		t.Fatal(err)
	}
	want := `model sea: v2 serves, pinned by an operator ("eddy release --model sea" resumes automatic promotion)
4 snapshots stored; the newest 2 shown (--limit 0 shows all)
VERSION  CREATED (UTC)        AGE    REASON    LEARNED  ACCURACY  LOG_LOSS  ROLLING  STATUS
v2       2026-11-20 09:58:30  1h1m   periodic  2000     0.8512    0.3000    0.8612   serving, pinned
v3       2026-11-20 10:58:30  1m30s  drift     3000     0.8600    0.3000    0.8700
v4       2026-11-20 10:59:57  3s     periodic  4000     0.8700    0.3000    0.8800
`
	if out.String() != want {
		t.Fatalf("eddy snapshots printed\n%s\nwant\n%s", out.String(), want)
	}
}

func TestRetainForComesFromTheConfigFileOrTheFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "models.yaml")
	if err := os.WriteFile(path, []byte("models:\n  - name: a\nretain_for: 24h\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var o serveOptions
	env := &environment{getenv: func(string) string { return "" }, stdout: io.Discard, stderr: io.Discard}
	fs := newFlagSet(env, "serve", serveUsage)
	o.register(fs)
	if err := parseFlags(fs, env, nil); err != nil {
		t.Fatal(err)
	}
	if cfg, err := o.engineConfig(); err != nil || cfg.RetainFor != engine.DefaultRetainFor {
		t.Fatalf("without a config file retain_for = %v, %v; want the flag's default %v", cfg.RetainFor, err, engine.DefaultRetainFor)
	}
	o.configFile = path
	if cfg, err := o.engineConfig(); err != nil || cfg.RetainFor != 24*time.Hour {
		t.Fatalf("retain_for from the config file = %v, %v; want 24h", cfg.RetainFor, err)
	}
}
