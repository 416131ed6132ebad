package serving_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream/devbroker"
)

// whoAdmin is an Admin that records who called Promote.
type whoAdmin struct {
	answeringAdmin
	mu  sync.Mutex
	who []string
}

func (a *whoAdmin) Promote(ctx context.Context, model string, version uint64) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.who = append(a.who, serving.Identity(ctx))
	return version, nil
}

// startAccessServer serves model m (one published snapshot) and admin with
// cfg, on loopback, and returns the server and its address.
func startAccessServer(t *testing.T, cfg serving.Config, admin serving.Admin) (*serving.Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serving.New(cfg, []string{"m"}, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetAdmin(admin)
	if err := srv.Publish(&linearSnapshot{Name: "m", Ver: 1, Binary: true}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() { cancel(); <-served })
	return srv, lis.Addr().String()
}

const (
	aliceToken  = "alice-0123456789abcdef"
	dashToken   = "dash-0123456789abcdef"
	scorerToken = "scorer-0123456789abcdef"
)

var roles = serving.Access{RequirePredict: true, Credentials: []serving.Credential{
	{Name: "alice", Token: aliceToken, Roles: []string{serving.RoleAdmin}},
	{Name: "dashboards", Token: dashToken, Roles: []string{serving.RoleRead}},
	{Name: "scorer", Token: scorerToken, Roles: []string{serving.RolePredict}},
}}

func withHeader(auth string) context.Context {
	ctx := context.Background()
	if auth != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", auth)
	}
	return ctx
}

// TestRolesDecideWhoMayCallWhat: a predict credential may predict and
// nothing else (PERMISSION_DENIED), a read one may list but not promote,
// an admin one may do all, a wrong or missing token is UNAUTHENTICATED,
// the scheme is matched in any case, and the identity reaches the Admin.
// SetAccess then replaces a token at once; an invalid Access changes
// nothing.
func TestRolesDecideWhoMayCallWhat(t *testing.T) {
	admin := &whoAdmin{}
	srv, addr := startAccessServer(t, serving.Config{Access: roles}, admin)
	conn := dial(t, addr)
	inference, adm := eddyv1.NewInferenceClient(conn), eddyv1.NewAdminClient(conn)
	predict := func(auth string) codes.Code {
		_, err := inference.Predict(withHeader(auth), &eddyv1.PredictRequest{Model: "m", Features: numbers(1)})
		return status.Code(err)
	}
	batch := func(auth string) codes.Code {
		_, err := inference.PredictBatch(withHeader(auth), &eddyv1.PredictBatchRequest{Requests: []*eddyv1.PredictRequest{{Model: "m", Features: numbers(1)}}})
		return status.Code(err)
	}
	list := func(auth string) codes.Code {
		_, err := adm.ListSnapshots(withHeader(auth), &eddyv1.ListSnapshotsRequest{Model: "m"})
		return status.Code(err)
	}
	promote := func(auth string) codes.Code {
		_, err := adm.Promote(withHeader(auth), &eddyv1.PromoteRequest{Model: "m", Version: 1})
		return status.Code(err)
	}
	importFile := func(auth string) codes.Code { // a client stream: authorized by the stream interceptor
		stream, err := adm.ImportSnapshot(withHeader(auth))
		if err == nil {
			stream.Send(&eddyv1.ImportSnapshotRequest{Model: "m", Chunk: []byte("x")})
			_, err = stream.CloseAndRecv()
		}
		return status.Code(err)
	}
	for _, tc := range []struct {
		what string
		got  codes.Code
		want codes.Code
	}{
		{"Predict without a credential", predict(""), codes.Unauthenticated},
		{"Predict with a wrong token", predict("Bearer not-a-token-at-all-123"), codes.Unauthenticated},
		{"Predict as scorer", predict("Bearer " + scorerToken), codes.OK},
		{"Predict as scorer, scheme in lower case", predict("bearer " + scorerToken), codes.OK},
		{"Predict as scorer, scheme in upper case", predict("BEARER " + scorerToken), codes.OK},
		{"Predict as dashboards (read)", predict("Bearer " + dashToken), codes.PermissionDenied},
		{"Predict as alice (admin)", predict("Bearer " + aliceToken), codes.OK},
		{"PredictBatch without a credential", batch(""), codes.Unauthenticated},
		{"PredictBatch as scorer", batch("Bearer " + scorerToken), codes.OK},
		{"PredictBatch as dashboards (read)", batch("Bearer " + dashToken), codes.PermissionDenied},
		{"ListSnapshots as scorer", list("Bearer " + scorerToken), codes.PermissionDenied},
		{"ListSnapshots as dashboards", list("Bearer " + dashToken), codes.OK},
		{"ListSnapshots without a credential", list(""), codes.Unauthenticated},
		{"Promote as dashboards", promote("Bearer " + dashToken), codes.PermissionDenied},
		{"Promote as scorer", promote("Bearer " + scorerToken), codes.PermissionDenied},
		{"Promote as alice", promote("Bearer " + aliceToken), codes.OK},
		{"ImportSnapshot without a credential", importFile(""), codes.Unauthenticated},
		{"ImportSnapshot as dashboards", importFile("Bearer " + dashToken), codes.PermissionDenied},
		{"ImportSnapshot as alice (admitted; this Admin cannot import)", importFile("Bearer " + aliceToken), codes.Unimplemented},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	if len(admin.who) != 1 || admin.who[0] != "alice" {
		t.Errorf("Promote reached the admin as %v, want [alice]", admin.who)
	}

	reloaded := roles
	reloaded.Credentials = append([]serving.Credential(nil), roles.Credentials...)
	reloaded.Credentials[2].Token = "scorer-rotated-0123456789"
	if err := srv.SetAccess(reloaded); err != nil {
		t.Fatal(err)
	}
	if got := predict("Bearer " + scorerToken); got != codes.Unauthenticated {
		t.Errorf("the rotated-out token after SetAccess: %v, want Unauthenticated", got)
	}
	if got := predict("Bearer scorer-rotated-0123456789"); got != codes.OK {
		t.Errorf("the new token after SetAccess: %v", got)
	}
	bad := serving.Access{Credentials: []serving.Credential{{Name: "x", Token: "short", Roles: []string{"admin"}}}}
	if err := srv.SetAccess(bad); err == nil {
		t.Error("SetAccess took a token of 5 characters")
	}
	if got := predict("Bearer scorer-rotated-0123456789"); got != codes.OK {
		t.Errorf("after a refused SetAccess the credentials changed: %v", got)
	}
}

// TestAClientCertificateIsACredential: with mutual TLS, the verified
// client certificate whose subject a credential names is that credential.
func TestAClientCertificateIsACredential(t *testing.T) {
	certs, err := devbroker.GenerateCertificates(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	serverCert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(certs.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := serving.Config{
		TLS: &tls.Config{Certificates: []tls.Certificate{serverCert}, ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12},
		Access: serving.Access{Credentials: []serving.Credential{
			{Name: "ops", Subject: "CN=eddy-client", Roles: []string{serving.RoleAdmin}},
		}},
	}
	admin := &whoAdmin{}
	_, addr := startAccessServer(t, cfg, admin)
	clientCert, err := tls.LoadX509KeyPair(certs.ClientCert, certs.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(withCert bool) eddyv1.AdminClient {
		tc := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if withCert {
			tc.Certificates = []tls.Certificate{clientCert}
		}
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tc)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return eddyv1.NewAdminClient(conn)
	}
	if _, err := connect(true).Promote(context.Background(), &eddyv1.PromoteRequest{Model: "m", Version: 1}); err != nil {
		t.Fatalf("Promote with the client certificate: %v", err)
	}
	if len(admin.who) != 1 || admin.who[0] != "ops" {
		t.Errorf("Promote reached the admin as %v, want [ops]", admin.who)
	}
	if _, err := connect(false).Promote(context.Background(), &eddyv1.PromoteRequest{Model: "m", Version: 1}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Promote without a certificate: %v, want Unauthenticated", err)
	}
}
