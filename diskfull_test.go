package eddy_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddyhq/eddy/learner"
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
