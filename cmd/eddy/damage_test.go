//go:build processtests

package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// damage is one way a store's files break between two runs.
type damage struct {
	name string
	// wal damages the store right after the first run, whose checkpoints
	// are then in Pebble's write-ahead log only; the others damage it
	// after a second run, which has flushed them to a table.
	wal bool
	// apply damages the Pebble directory dir; it fails the test if dir
	// has no file of the kind it damages.
	apply func(t *testing.T, dir string)
}

// pebbleFiles returns the files of dir whose names end with suffix (or
// start with it, for "MANIFEST-"), largest first.
func pebbleFiles(t *testing.T, dir, pattern string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil {
		t.Fatal(err)
	}
	size := func(f string) int64 {
		st, err := os.Stat(f)
		if err != nil {
			return 0
		}
		return st.Size()
	}
	slices.SortFunc(files, func(a, b string) int { return int(size(b) - size(a)) })
	if len(files) == 0 {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("no %s in %s (it holds %v)", pattern, dir, names)
	}
	return files
}

// garble overwrites n bytes of file at offset at (clamped to the file)
// with a pattern no checksum accepts.
func garble(t *testing.T, file string, at func(size int64) int64, n int) {
	t.Helper()
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	off := max(0, min(at(st.Size()), st.Size()-int64(n)))
	if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5, 0x5A}, n/2), off); err != nil {
		t.Fatal(err)
	}
}

var damages = []damage{
	{"truncated sst", false, func(t *testing.T, dir string) {
		f := pebbleFiles(t, dir, "*.sst")[0]
		st, _ := os.Stat(f)
		if err := os.Truncate(f, st.Size()/2); err != nil {
			t.Fatal(err)
		}
	}},
	{"garbled sst", false, func(t *testing.T, dir string) {
		garble(t, pebbleFiles(t, dir, "*.sst")[0], func(size int64) int64 { return size / 4 }, 256)
	}},
	{"garbled MANIFEST", false, func(t *testing.T, dir string) {
		garble(t, pebbleFiles(t, dir, "MANIFEST-*")[0], func(size int64) int64 { return size / 2 }, 64)
	}},
	{"deleted MANIFEST", false, func(t *testing.T, dir string) {
		for _, f := range pebbleFiles(t, dir, "MANIFEST-*") {
			if err := os.Remove(f); err != nil {
				t.Fatal(err)
			}
		}
	}},
	{"garbled WAL records", true, func(t *testing.T, dir string) {
		garble(t, pebbleFiles(t, dir, "*.log")[0], func(size int64) int64 { return size / 2 }, 512)
	}},
	{"truncated WAL", true, func(t *testing.T, dir string) {
		f := pebbleFiles(t, dir, "*.log")[0]
		st, _ := os.Stat(f)
		if err := os.Truncate(f, st.Size()/3); err != nil {
			t.Fatal(err)
		}
	}},
	{"deleted directory", false, func(t *testing.T, dir string) {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
	}},
}

// TestEachKindOfDamageToTheStoreIsClearAndSkipsNothing damages the only
// instance's Pebble files between two runs, in each of the ways files
// break (a truncated or garbled table, a garbled or deleted MANIFEST,
// garbled log records, a deleted directory), and starts it again. Either
// eddy starts, or it exits with one error line naming the directory and
// the way out; it never prints a panic. After the way out (moving the
// directory aside) the model continues from its exported state: in the
// end it has learned every event exactly once.
func TestEachKindOfDamageToTheStoreIsClearAndSkipsNothing(t *testing.T) {
	const first, second = 3000, 1000
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			g := newGroup(t, "damage", 1, 2, "--state-interval", "1s")
			g.logDir = t.TempDir()
			g.start(0)
			prod := newPacedProducer(g.broker, first)
			prod.every = 5 * time.Millisecond
			go prod.run()
			prod.wait(t)
			waitFor(t, 60*time.Second, "the first events learned", func() bool { return g.learned() == first })
			g.stopAll()
			pebbleDir := filepath.Join(g.dirs[0], "pebble")
			if d.wal {
				d.apply(t, pebbleDir)
			} else {
				// One more run, stopped at once, so that Pebble has
				// flushed the first run's log to a table.
				g.start(0)
				waitFor(t, 30*time.Second, "the restart", func() bool { return g.learned() == first })
				g.stopAll()
				d.apply(t, pebbleDir)
			}

			g.start(0)
			p := g.member(0)
			// It either exits or comes up and stays up (for 5 s: long
			// enough for Pebble's compactions of the damaged files).
			var up time.Time
		watch:
			for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
				select {
				case <-p.done:
					break watch
				case <-time.After(100 * time.Millisecond):
				}
				switch {
				case g.learned() < 0:
				case up.IsZero():
					up = time.Now()
				case time.Since(up) > 5*time.Second:
					break watch
				}
			}
			log, _ := os.ReadFile(g.logs[len(g.logs)-1])
			if strings.Contains(string(log), "goroutine ") || strings.Contains(string(log), "panic") {
				t.Fatalf("a panic after the damage:\n%s", log)
			}
			select {
			case <-p.done:
				code := p.cmd.ProcessState.ExitCode()
				lines := strings.Split(strings.TrimSpace(string(log)), "\n")
				t.Logf("exit %d, %d lines; last: %s", code, len(lines), lines[len(lines)-1])
				if code == 0 || len(lines) > 10 || !strings.Contains(lines[len(lines)-1], pebbleDir) {
					t.Fatalf("after the damage eddy exited with %d and %d log lines, want non-zero and one clear error naming %s:\n%s", code, len(lines), pebbleDir, log)
				}
				g.procs[1] = nil
				// The way out the message names: move the directory aside.
				if err := os.Rename(pebbleDir, pebbleDir+".damaged"); err != nil {
					t.Fatal(err)
				}
				g.start(0)
			default:
				lines := strings.Split(strings.TrimSpace(string(log)), "\n")
				t.Logf("started on the damaged store; %d log lines, the acquisition: %s", len(lines), grepLine(lines, "unit acquired"))
			}
			prod = newPacedProducer(g.broker, second)
			go prod.run()
			prod.wait(t)
			waitFor(t, 60*time.Second, "every event learned", func() bool { return g.learned() >= first+second })
			time.Sleep(time.Second)
			if got := g.learned(); got != first+second {
				t.Fatalf("learned %v after the damage, want exactly %d", got, first+second)
			}
			g.stopAll()
			requireExactlyOnce(t, exportedModel(t, g.broker, "damage"), first+second)
		})
	}
}

func grepLine(lines []string, s string) string {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// TestResetModelStartsTheModelAfreshInTheGroup learns, then restarts the
// only instance with --reset-model and --start latest: the model starts
// untrained at the end of its topic and learns only what comes after, and
// the fresh state replaces the group's checkpoint: a restart without the
// flag continues from it, and the newest exported state says the same.
func TestResetModelStartsTheModelAfreshInTheGroup(t *testing.T) {
	g := newGroup(t, "reset", 1, 2, "--state-interval", "1s")
	g.start(0)
	prod := newPacedProducer(g.broker, 3000)
	prod.every = 5 * time.Millisecond
	go prod.run()
	prod.wait(t)
	waitFor(t, 60*time.Second, "the first events learned", func() bool { return g.learned() == 3000 })
	g.stopAll()
	before := exportedModel(t, g.broker, "reset")

	g.args = append(g.args, "--reset-model", "default", "--start", "latest")
	g.logDir = t.TempDir()
	g.start(0)
	waitFor(t, 30*time.Second, "the reset model serving", func() bool { return g.learned() == 0 })
	prod = newPacedProducer(g.broker, 500)
	go prod.run()
	prod.wait(t)
	waitFor(t, 60*time.Second, "the new events learned", func() bool { return g.learned() >= 500 })
	time.Sleep(time.Second)
	if got := g.learned(); got != 500 {
		t.Fatalf("the reset model learned %v, want exactly the 500 events sent after it started", got)
	}
	g.stopAll()
	log, _ := os.ReadFile(g.logs[0])
	if !strings.Contains(string(log), "models reset on purpose") {
		t.Fatalf("the reset is not in the log:\n%s", log)
	}

	g.args = g.args[:len(g.args)-4]
	g.start(0)
	waitFor(t, 30*time.Second, "the restart without the flag", func() bool { return g.learned() == 500 })
	g.stopAll()
	after := exportedModel(t, g.broker, "reset")
	if after.learned != 500 || after.next[0]+after.next[1] != 3500 {
		t.Fatalf("the group's state after the reset learned %d at positions %v; want 500 learned, positions at the end (3500)", after.learned, after.next)
	}
	if before.learned != 3000 {
		t.Fatalf("before the reset the state had learned %d, want 3000", before.learned)
	}
}

// TestAFullDiskAtStartIsOneClearLine starts eddy with its data directory
// on a real tmpfs filled to the last byte, with the free-space reserve and
// without it (Pebble itself then fails to write its files): either way it
// exits at once with a non-zero code and a few log lines, the last naming
// the directory, not a flood and not a panic. Mounting a tmpfs needs root
// (CI runs as root); elsewhere the test says so and skips.
func TestAFullDiskAtStartIsOneClearLine(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=8m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root: %v)", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	g := newGroup(t, "full", 1, 1)
	for _, tc := range []struct{ name, minFree string }{{"reserve", "64"}, {"no reserve", "0"}} {
		t.Run(tc.name, func(t *testing.T) {
			logFile := filepath.Join(t.TempDir(), "eddy.log")
			p := startProcessLogging(t, logFile, g.bin, "serve", "--brokers", g.broker, "--data-dir", filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")),
				"--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--min-free-mib", tc.minFree)
			select {
			case <-p.done:
			case <-time.After(10 * time.Second):
				code := p.stop(t, syscall.SIGTERM, 5*time.Second)
				log, _ := os.ReadFile(logFile)
				t.Fatalf("still running 10 s after start on a full disk (exit %d after SIGTERM):\n%s", code, log)
			}
			log, _ := os.ReadFile(logFile)
			lines := strings.Split(strings.TrimSpace(string(log)), "\n")
			t.Logf("exit %d, %d lines; last: %s", p.cmd.ProcessState.ExitCode(), len(lines), lines[len(lines)-1])
			if p.cmd.ProcessState.ExitCode() <= 0 || len(lines) > 10 || !strings.Contains(lines[len(lines)-1], dir) ||
				strings.Contains(string(log), "goroutine ") {
				t.Fatalf("on a full disk eddy exited with %d and %d log lines; want non-zero, at most 10 lines, the last naming %s:\n%s",
					p.cmd.ProcessState.ExitCode(), len(lines), dir, log)
			}
		})
	}
}

// TestAFullDiskWhileRunningPausesTheProcessAndLosesNothing runs an eddy
// process with its data directory on a real 96 MiB tmpfs, fills the file
// system while events stream in, and checks from outside what an operator
// sees: the process stays up, `eddy predict` answers, /healthz is 503
// naming the cause, eddy_learning_paused is 1; once space is freed,
// learning resumes by itself and the exported model learned every event
// exactly once. Mounting a tmpfs needs root (CI runs as root); elsewhere
// the test says so and skips.
func TestAFullDiskWhileRunningPausesTheProcessAndLosesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=96m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root: %v); the full-disk test needs a real small file system", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	grpcAddr := freeAddr(t)
	g := newGroup(t, "fullrun", 1, 2, "--min-free-mib", "16", "--grpc-addr", grpcAddr)
	g.dirs[0] = filepath.Join(dir, "eddy")
	g.start(0)
	prod := newPacedProducer(g.broker, 2000)
	prod.every = 5 * time.Millisecond
	go prod.run()
	prod.wait(t)
	waitFor(t, 60*time.Second, "2,000 learned", func() bool { return g.learned() == 2000 })

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
	prod = newPacedProducer(g.broker, 2000)
	prod.every = 5 * time.Millisecond
	go prod.run()
	prod.wait(t)
	waitFor(t, 30*time.Second, "learning paused", func() bool { return scrape(g.metrics[0], "eddy_learning_paused") == 1 })
	resp, err := http.Get("http://" + g.metrics[0] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "no space left") {
		t.Fatalf("/healthz = %d %q while the disk is full, want 503 naming the cause", resp.StatusCode, body)
	}
	out, err := exec.Command(g.bin, "predict", "--addr", grpcAddr, "--model", "default", "--feature", "f1=3", "--feature", "f2=4", "--feature", "f3=1").CombinedOutput()
	if err != nil {
		t.Fatalf("eddy predict while the disk is full: %v\n%s", err, out)
	}
	stuck := g.learned()
	time.Sleep(time.Second)
	if got := g.learned(); got != stuck || got >= 4000 {
		t.Fatalf("the model's stored count moved from %v to %v while no checkpoint can be written", stuck, got)
	}

	if err := os.Remove(filepath.Join(dir, "filler")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "learning resumed and every event learned", func() bool { return g.learned() == 4000 })
	if scrape(g.metrics[0], "eddy_learning_paused") != 0 {
		t.Fatal("still paused after space was freed")
	}
	g.stopAll()
	requireExactlyOnce(t, exportedModel(t, g.broker, "fullrun"), 4000)
	t.Logf("paused at %v learned, predict answered %q", stuck, strings.TrimSpace(string(out)))
}
