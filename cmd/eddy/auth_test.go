package main

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// TestSIGHUPReloadsTheAuthFile serves with --auth-file requiring a
// credential for Predict, rewrites the file with a rotated token and sends
// the process a real SIGHUP: the new token works and the old one does not,
// without a restart; a broken file on the next SIGHUP changes nothing.
func TestSIGHUPReloadsTheAuthFile(t *testing.T) {
	broker := startBroker(t)
	authFile := filepath.Join(t.TempDir(), "auth.yaml")
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(authFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("require_predict: true\ncredentials:\n  - {name: scorer, token: old-token-0123456789, roles: [predict]}\n")
	o := testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
	o.authFile = authFile
	svc := startTestService(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	reloadAccessOnHangup(ctx, o, svc, slog.New(slog.NewTextHandler(io.Discard, nil)))
	keepProducing(t, broker, "events")

	client := predictClientCLI(t, svc.GRPCAddr())
	predict := func(token string) codes.Code {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
		_, err := client.Predict(ctx, &eddyv1.PredictRequest{Model: "sea", Features: map[string]*structpb.Value{"f1": structpb.NewNumberValue(1)}})
		return status.Code(err)
	}
	waitFor(t, 60*time.Second, "a served snapshot", func() bool { return predict("old-token-0123456789") == codes.OK })
	if got := predict("new-token-0123456789"); got != codes.Unauthenticated {
		t.Fatalf("a token not in the file yet: %v", got)
	}

	write("require_predict: true\ncredentials:\n  - {name: scorer, token: new-token-0123456789, roles: [predict]}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the rotated token to work", func() bool { return predict("new-token-0123456789") == codes.OK })
	if got := predict("old-token-0123456789"); got != codes.Unauthenticated {
		t.Errorf("the rotated-out token after SIGHUP: %v", got)
	}

	write("credentials:\n  - {name: scorer, token: short, roles: [predict]}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if got := predict("new-token-0123456789"); got != codes.OK {
		t.Errorf("after a broken auth file and SIGHUP: %v, want the previous credentials in force", got)
	}
}
