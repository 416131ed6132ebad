package serving_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
)

// answeringAdmin is an Admin whose every call answers err (or, when nil,
// succeeds with snaps and version), recording which calls it got.
type answeringAdmin struct {
	err     error
	snaps   []serving.SnapshotInfo
	version uint64

	mu    sync.Mutex
	calls []string
}

func (a *answeringAdmin) record(call string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls = append(a.calls, call)
}

func (a *answeringAdmin) Snapshots(model string) ([]serving.SnapshotInfo, error) {
	a.record("Snapshots " + model)
	return a.snaps, a.err
}

func (a *answeringAdmin) Promote(_ context.Context, model string, version uint64) (uint64, error) {
	a.record(fmt.Sprintf("Promote %s %d", model, version))
	return a.version, a.err
}

func (a *answeringAdmin) Rollback(_ context.Context, model string) (uint64, error) {
	a.record("Rollback " + model)
	return a.version, a.err
}

func (a *answeringAdmin) Release(_ context.Context, model string) (uint64, error) {
	a.record("Release " + model)
	return a.version, a.err
}

// startAdminServer serves admin on loopback with a logger writing to log
// and returns an Admin client.
func startAdminServer(t *testing.T, admin serving.Admin, log *syncBuffer) eddyv1.AdminClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := serving.New(serving.Config{}, []string{"m"}, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(log, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv.SetAdmin(admin)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		<-served
	})
	return eddyv1.NewAdminClient(dial(t, lis.Addr().String()))
}

// syncBuffer collects what the server's goroutines log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestInternalAdminErrorsReachTheLogNotTheClient(t *testing.T) {
	detail := "learner: read \"snapshot/m/\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x07\": open /var/lib/eddy/pebble/000123.sst: input/output error"
	var log syncBuffer
	admin := &answeringAdmin{err: errors.New(detail)}
	client := startAdminServer(t, admin, &log)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	calls := map[string]func() error{
		"ListSnapshots": func() error {
			_, err := client.ListSnapshots(ctx, &eddyv1.ListSnapshotsRequest{Model: "m"})
			return err
		},
		"Promote": func() error {
			_, err := client.Promote(ctx, &eddyv1.PromoteRequest{Model: "m", Version: 7})
			return err
		},
		"Rollback": func() error {
			_, err := client.Rollback(ctx, &eddyv1.RollbackRequest{Model: "m"})
			return err
		},
		"Release": func() error {
			_, err := client.Release(ctx, &eddyv1.ReleaseRequest{Model: "m"})
			return err
		},
	}
	for name, call := range calls {
		st := status.Convert(call())
		if st.Code() != codes.Internal {
			t.Errorf("%s: %v, want Internal", name, st.Err())
		}
		for _, secret := range []string{"/var/lib/eddy", "snapshot/m", ".sst", "learner:"} {
			if strings.Contains(st.Message(), secret) {
				t.Errorf("%s sent the client %q, which gives away %q", name, st.Message(), secret)
			}
		}
	}
	if n := strings.Count(log.String(), "/var/lib/eddy/pebble/000123.sst"); n != len(calls) {
		t.Errorf("the server logged the detail %d times for %d failed calls, want once each:\n%s", n, len(calls), log.String())
	}
}

func TestNotFoundAndPreconditionErrorsKeepTheirMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{fmt.Errorf("%w: model m version 99", serving.ErrNotFound), codes.NotFound},
		{fmt.Errorf("%w: model m serves version 1, the oldest kept", serving.ErrPrecondition), codes.FailedPrecondition},
	} {
		var log syncBuffer
		client := startAdminServer(t, &answeringAdmin{err: tc.err}, &log)
		_, err := client.Rollback(context.Background(), &eddyv1.RollbackRequest{Model: "m"})
		if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.err.Error() {
			t.Errorf("Rollback = %v, want %v %q", err, tc.code, tc.err)
		}
	}
}

func TestPromoteWithAutoReleasesThePin(t *testing.T) {
	var log syncBuffer
	admin := &answeringAdmin{version: 12, snaps: []serving.SnapshotInfo{{Version: 11, Pinned: true}, {Version: 12}}}
	client := startAdminServer(t, admin, &log)
	ctx := context.Background()
	resp, err := client.Promote(ctx, &eddyv1.PromoteRequest{Model: "m", Auto: true})
	if err != nil || resp.GetServingVersion() != 12 || resp.GetPinned() {
		t.Fatalf("Promote auto = %v, %v; want v12 serving, unpinned", resp, err)
	}
	if _, err := client.Promote(ctx, &eddyv1.PromoteRequest{Model: "m", Auto: true, Version: 3}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("Promote auto with a version = %v, want InvalidArgument", err)
	}
	resp, err = client.Promote(ctx, &eddyv1.PromoteRequest{Model: "m", Version: 12})
	if err != nil || !resp.GetPinned() {
		t.Fatalf("Promote v12 = %v, %v; want pinned", resp, err)
	}
	list, err := client.ListSnapshots(ctx, &eddyv1.ListSnapshotsRequest{Model: "m"})
	if err != nil || !list.GetSnapshots()[0].GetPinned() || list.GetSnapshots()[1].GetPinned() {
		t.Fatalf("ListSnapshots = %v, %v; want v11 marked pinned", list, err)
	}
	if list.GetPinned() {
		t.Fatal("ListSnapshots says the serving version is pinned while no snapshot serves")
	}
	want := []string{"Release m", "Promote m 12", "Snapshots m"}
	admin.mu.Lock()
	defer admin.mu.Unlock()
	if strings.Join(admin.calls, "; ") != strings.Join(want, "; ") {
		t.Fatalf("calls %v, want %v", admin.calls, want)
	}
}
