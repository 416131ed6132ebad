package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
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

// adminOf returns an Admin client of the service at addr.
func adminOf(t *testing.T, addr string) eddyv1.AdminClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eddyv1.NewAdminClient(conn)
}

// seaService is a running service learning model "sea" and clients of it.
type seaService struct {
	*running
	admin   eddyv1.AdminClient
	predict eddyv1.InferenceClient
}

func (s *seaService) list(t *testing.T) *eddyv1.ListSnapshotsResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := s.admin.ListSnapshots(ctx, &eddyv1.ListSnapshotsRequest{Model: "sea"})
	if err != nil {
		t.Fatalf("ListSnapshots: %v", err)
	}
	return list
}

func (s *seaService) newest(t *testing.T) uint64 {
	t.Helper()
	snaps := s.list(t).GetSnapshots()
	if len(snaps) == 0 {
		return 0
	}
	return snaps[len(snaps)-1].GetVersion()
}

// answering returns the version that answers a prediction.
func (s *seaService) answering(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.predict.Predict(ctx, &eddyv1.PredictRequest{Model: "sea", Features: map[string]*structpb.Value{
		"f1": structpb.NewNumberValue(3), "f2": structpb.NewNumberValue(4), "f3": structpb.NewNumberValue(5)}})
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	return resp.GetModelVersion()
}

// assertHeld checks that automatic promotion keeps creating versions past
// newestBefore while the pinned version keeps answering and is listed as
// pinned, and returns the newest version.
func (s *seaService) assertHeld(t *testing.T, pinned, newestBefore uint64) uint64 {
	t.Helper()
	waitFor(t, 30*time.Second, "three more versions from automatic promotion", func() bool { return s.newest(t) >= newestBefore+3 })
	if v := s.answering(t); v != pinned {
		t.Fatalf("Predict answers v%d, want the pinned v%d", v, pinned)
	}
	list := s.list(t)
	if list.GetServingVersion() != pinned || !list.GetPinned() {
		t.Fatalf("ListSnapshots says v%d serves (pinned %v), want the pinned v%d", list.GetServingVersion(), list.GetPinned(), pinned)
	}
	for _, snap := range list.GetSnapshots() {
		if snap.GetPinned() != (snap.GetVersion() == pinned) || snap.GetServing() != (snap.GetVersion() == pinned) {
			t.Fatalf("v%d listed serving %v, pinned %v; only v%d is either", snap.GetVersion(), snap.GetServing(), snap.GetPinned(), pinned)
		}
	}
	return list.GetSnapshots()[len(list.GetSnapshots())-1].GetVersion()
}

func startSeaService(t *testing.T, o serveOptions) *seaService {
	t.Helper()
	svc := startTestService(t, o)
	return &seaService{running: svc, admin: adminOf(t, svc.grpcAddr()), predict: predictClient(t, svc.grpcAddr())}
}

func TestARollbackOverGRPCHoldsThroughPromotionsAndARestartUntilReleased(t *testing.T) {
	broker := startBroker(t)
	dir := t.TempDir()
	o := testOptions(broker, dir, learner.ModelConfig{Name: "sea"})
	o.retainSnapshots, o.retainFor = 3, time.Nanosecond // retention deletes at every promotion: the pin must survive it
	first := startSeaService(t, o)
	keepProducing(t, broker, "events")
	waitFor(t, 60*time.Second, "three versions", func() bool { return first.newest(t) >= 3 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rolled, err := first.admin.Rollback(ctx, &eddyv1.RollbackRequest{Model: "sea"})
	if err != nil || !rolled.GetPinned() {
		t.Fatalf("Rollback = %v, %v; want a pinned version", rolled, err)
	}
	pinned := rolled.GetServingVersion()
	newest := first.assertHeld(t, pinned, first.newest(t))
	t.Logf("rolled back to v%d; automatic promotion went on to v%d without serving it", pinned, newest)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	second := startSeaService(t, o)
	if v := second.answering(t); v != pinned {
		t.Fatalf("after a restart Predict answers v%d, want the pinned v%d", v, pinned)
	}
	newest = second.assertHeld(t, pinned, newest)

	released, err := second.admin.Release(ctx, &eddyv1.ReleaseRequest{Model: "sea"})
	if err != nil || released.GetPinned() || released.GetServingVersion() < newest {
		t.Fatalf("Release = %v, %v; want the newest version (v%d or later), unpinned", released, err, newest)
	}
	if v := second.answering(t); v < released.GetServingVersion() {
		t.Fatalf("after the release Predict answers v%d, want v%d or later", v, released.GetServingVersion())
	}
	waitFor(t, 30*time.Second, "automatic promotion serving a newer version", func() bool {
		return second.answering(t) > released.GetServingVersion()
	})
	if list := second.list(t); list.GetPinned() {
		t.Fatalf("after the release ListSnapshots still says pinned: %v", list)
	}
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

func TestOperatorCommandsListPinAndReleaseThroughTheCLI(t *testing.T) {
	broker := startBroker(t)
	certFile, keyFile, _ := selfSigned(t)
	o := testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
	o.tlsCert, o.tlsKey, o.adminToken = certFile, keyFile, "s3cret"
	svc := startTestService(t, o)
	keepProducing(t, broker, "events")
	waitFor(t, 60*time.Second, "three versions", func() bool {
		infos, err := svc.engine.Snapshots("sea")
		return err == nil && len(infos) >= 3
	})
	env := map[string]string{"EDDY_ADMIN_TOKEN": "s3cret"}
	conn := []string{"--model", "sea", "--addr", svc.grpcAddr(), "--tls-ca", certFile}
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
		infos, err := svc.engine.Snapshots("sea")
		if err == nil {
			newest = infos[len(infos)-1].Version
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
	if _, _, err := runCLI(t, env, "rollback", "--addr", svc.grpcAddr()); err == nil || !strings.Contains(err.Error(), "--model is required") {
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

// TestAdminErrorsSayTheLearnersMessageOnceWithTheirStatus: a missing
// snapshot reaches the client as NOT_FOUND with the learner's words, not
// "serving: not found: learner: snapshot not found: ...".
func TestAdminErrorsSayTheLearnersMessageOnceWithTheirStatus(t *testing.T) {
	inner := fmt.Errorf("%w: model m version 9", engine.ErrSnapshotNotFound)
	err := adminError(inner)
	if !errors.Is(err, serving.ErrNotFound) || !errors.Is(err, engine.ErrSnapshotNotFound) {
		t.Fatalf("%v: want both serving.ErrNotFound and engine.ErrSnapshotNotFound", err)
	}
	if err.Error() != inner.Error() {
		t.Fatalf("message %q, want %q", err.Error(), inner.Error())
	}
}
