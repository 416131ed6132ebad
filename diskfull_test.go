package eddy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// TestAFullDiskPausesLearningAndNothingIsLost runs the service with its
// data directory on a real 64 MiB tmpfs, fills the file system while events
// stream in, and checks that the service stays up: Predict answers,
// /healthz says 503 naming the cause, eddy_learning_paused is 1, nothing is
// learned past the last checkpoint; then, once space is freed, learning
// resumes by itself and the model ends with exactly every event.
//
// Mounting a tmpfs needs root (CI runs as root); elsewhere the test says so
// and skips.
func TestAFullDiskPausesLearningAndNothingIsLost(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root: %v); the full-disk test needs a real small file system", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	broker := startBroker(t)
	cfg := testConfig(broker, filepath.Join(dir, "eddy"), learner.ModelConfig{Name: "sea"})
	cfg.MinFreeBytes = 16 << 20
	svc := startTestService(t, cfg)
	produceSEAEvents(t, broker, "events", 2000)
	waitFor(t, 30*time.Second, "2,000 learned", func() bool { return svc.learned("sea") == 2000 })

	// Fill the file system to below the reserve.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			t.Fatal(err)
		}
		if int64(st.Bavail)*st.Bsize < 8<<20 {
			break
		}
		if _, err := filler.Write(chunk); err != nil {
			break
		}
	}
	filler.Close()
	produceSEAEvents(t, broker, "events", 2000)
	waitFor(t, 30*time.Second, "learning paused", func() bool { return svc.gauge("eddy_learning_paused", nil) == 1 })
	code, body := get(t, "http://"+svc.MetricsAddr()+"/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "no space left") {
		t.Fatalf("/healthz = %d %q while the disk is full, want 503 naming the cause", code, body)
	}
	if _, err := predictClient(t, svc.GRPCAddr()).Predict(context.Background(), seaRequest("sea")); err != nil {
		t.Fatalf("Predict while the disk is full: %v", err)
	}
	stuck := svc.learned("sea")
	time.Sleep(time.Second)
	if got := svc.learned("sea"); got != stuck || got > 4000 {
		t.Fatalf("the stored count moved from %d to %d while no checkpoint can be written", stuck, got)
	}

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "learning resumed and every event learned", func() bool { return svc.learned("sea") == 4000 })
	if svc.gauge("eddy_learning_paused", nil) != 0 {
		t.Fatal("still paused after space was freed")
	}
	if code, _ := get(t, "http://"+svc.MetricsAddr()+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz = %d after space was freed, want 200", code)
	}
	time.Sleep(500 * time.Millisecond)
	if got := svc.learned("sea"); got != 4000 {
		t.Fatalf("learned %d, want exactly 4000", got)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestAStoreFailingWhileRunningStopsTheServiceAndTheRestartIsExact fails
// every write of Pebble's write-ahead log while the service learns (an
// injected EIO through Pebble's vfs, as a failing disk would): Pebble
// declares it fatal, and Run returns an error naming the directory, within
// seconds, without a panic. A restart on the same files (a new process
// would see them as a copy does) continues from the last checkpoint and
// ends with every event learned exactly once.
func TestAStoreFailingWhileRunningStopsTheServiceAndTheRestartIsExact(t *testing.T) {
	broker := startBroker(t)
	dataDir := t.TempDir()
	eio := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) {
			return fmt.Errorf("injected: %w", syscall.EIO)
		}
		return nil
	})}
	cfg := testConfig(broker, dataDir, learner.ModelConfig{Name: "sea"})
	svc := startTestService(t, eddy.WithStoreFS(cfg, errorfs.Wrap(vfs.Default, eio)))
	produceSEAEvents(t, broker, "events", 2000)
	waitFor(t, 30*time.Second, "2,000 learned", func() bool { return svc.learned("sea") == 2000 })
	eio.On()
	produceSEAEvents(t, broker, "events", 1000)
	select {
	case <-svc.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the service did not stop by itself after its store failed")
	}
	err := svc.runErr
	var fatal *store.FatalError
	if !errors.As(err, &fatal) || !strings.Contains(err.Error(), filepath.Join(dataDir, "pebble")) {
		t.Fatalf("Run returned %v, want the store's fatal error naming its directory", err)
	}
	// The failed store's lock is this process's; a new process sees the
	// files as a copy does.
	again := t.TempDir()
	if err := os.CopyFS(again, os.DirFS(dataDir)); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(again, "pebble", "LOCK"))
	svc = startTestService(t, testConfig(broker, again, learner.ModelConfig{Name: "sea"}))
	waitFor(t, 30*time.Second, "every event learned after the restart", func() bool { return svc.learned("sea") >= 3000 })
	time.Sleep(500 * time.Millisecond)
	if got := svc.learned("sea"); got != 3000 {
		t.Fatalf("learned %d after the restart, want exactly 3000", got)
	}
}
