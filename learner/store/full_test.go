package store

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestOpeningOnAFullFileSystemIsAnErrorNotAPanic opens a new store on a
// real tmpfs filled to the last byte: with the reserve check, and without it
// (Pebble then fails to write its MANIFEST and declares that fatal), Open
// returns one error naming the directory and what to do. Mounting a tmpfs
// needs root (CI runs as root); elsewhere the test says so and skips.
func TestOpeningOnAFullFileSystemIsAnErrorNotAPanic(t *testing.T) {
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
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		name string
		opts *Options
		want string
	}{
		{"reserve checked", nil, "MiB free"},
		{"reserve disabled: Pebble's fatal error", &Options{MinFreeBytes: -1}, "cannot open"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(filepath.Join(dir, tc.name), log, tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("opened a store on a full file system")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), dir) {
				t.Fatalf("error %q: want it to name %s and say %q", err, dir, tc.want)
			}
			t.Logf("%v", err)
		})
	}
}
