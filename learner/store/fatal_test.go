package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// TestAFailedLogWriteIsAnErrorNotAPanic fails every write of Pebble's
// write-ahead log (an injected EIO through Pebble's vfs, as a failing disk
// would): Pebble declares the commit fatal, and the store turns that into
// a *FatalError from Commit (naming the directory), closes Failed, refuses
// every later commit, and Close returns at once. Opened again on the real
// file system, the store holds what was committed before the failure and
// nothing of the failed commit.
func TestAFailedLogWriteIsAnErrorNotAPanic(t *testing.T) {
	dir := t.TempDir()
	eio := &errorfs.Toggle{Injector: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if strings.HasSuffix(op.Path, ".log") && (op.Kind == errorfs.OpFileWrite || op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData) {
			return fmt.Errorf("injected: %w", syscall.EIO)
		}
		return nil
	})}
	var logged bytes.Buffer
	s, err := Open(dir, slog.New(slog.NewTextHandler(&logged, nil)), &Options{FS: errorfs.Wrap(vfs.Default, eio), MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	set := func(key string) error {
		return commit(t, s, func(b *Batch) error { return b.Set([]byte(key), []byte("v")) })
	}
	if err := set("k/before"); err != nil {
		t.Fatal(err)
	}
	eio.On()
	err = set("k/failed")
	var fatal *FatalError
	if !errors.As(err, &fatal) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("commit on a failing disk returned %v, want a *FatalError naming %s", err, dir)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed is not closed after a fatal error")
	}
	eio.Off()
	if err := set("k/after"); !errors.As(err, &fatal) {
		t.Fatalf("a commit after the fatal error returned %v, want the fatal error", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if !errors.As(err, &fatal) {
			t.Fatalf("Close returned %v, want the fatal error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close of a failed store did not return")
	}
	if n := strings.Count(logged.String(), "fatal error"); n != 1 {
		t.Fatalf("the fatal error was logged %d times, want once:\n%s", n, logged.String())
	}
	if strings.Contains(logged.String(), "goroutine ") || strings.Contains(logged.String(), "\n  |") {
		t.Fatalf("the log holds a stack trace:\n%s", logged.String())
	}

	// Pebble's lock is held by the failed store's files; a new process
	// would open the directory afresh. Copy it, as that restart sees it.
	again := filepath.Join(t.TempDir(), "again")
	if err := os.CopyFS(again, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(again, "LOCK"))
	s2 := mustOpen(t, again)
	if got := keys(t, s2.Scan, "k/"); len(got) != 1 || got[0] != "k/before" {
		t.Fatalf("after the restart the store holds %v, want only k/before", got)
	}
}

// TestCorruptionFoundByACompactionStopsTheStoreWithoutACrash garbles a
// table of an open store and has Pebble compact it: the compaction, in one
// of Pebble's own goroutines, finds the corruption and declares it fatal.
// The process does not crash: Failed is closed, Err names the directory and
// the way out, and Commit and Close return that error.
func TestCorruptionFoundByACompactionStopsTheStoreWithoutACrash(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, slog.New(slog.DiscardHandler), &Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte("state "), 200)
	write := func(round byte) {
		t.Helper()
		if err := commit(t, s, func(b *Batch) error {
			for i := range 500 {
				if err := b.Set(fmt.Appendf(nil, "k/%04d", i), append(value, round)); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	if err := s.db.Compact(context.Background(), []byte("k/"), []byte("k0"), false); err != nil {
		t.Fatal(err)
	}
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	if len(tables) == 0 {
		t.Fatal("no table after a flush")
	}
	for _, table := range tables {
		f, err := os.OpenFile(table, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := f.Stat()
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 512), st.Size()/4); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write(1)                                                                                  // an overlapping table: compacting it reads the garbled one
	go func() { _ = s.db.Compact(context.Background(), []byte("k/"), []byte("k0"), false) }() // may never return: its compaction stops
	select {
	case <-s.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("the compaction of a garbled table did not fail the store")
	}
	var fatal *FatalError
	if err := s.Err(); !errors.As(err, &fatal) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "move the directory aside") {
		t.Fatalf("Err() = %v, want a *FatalError naming %s and the way out", err, dir)
	}
	if err := commit(t, s, func(b *Batch) error { return b.Set([]byte("k/x"), value) }); !errors.As(err, &fatal) {
		t.Fatalf("a commit after the fatal error returned %v", err)
	}
	if err := s.Close(); !errors.As(err, &fatal) {
		t.Fatalf("Close returned %v, want the fatal error", err)
	}
}

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir, slog.New(slog.DiscardHandler), &Options{MinFreeBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
