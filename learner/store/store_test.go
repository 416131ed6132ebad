package store

import (
	"errors"
	"log/slog"
	"slices"
	"testing"
)

func openTest(t *testing.T, opts *Options) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), slog.New(slog.DiscardHandler), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// keys returns the keys under prefix, in order.
func keys(t *testing.T, scan func([]byte, func(key, value []byte) error) error, prefix string) []string {
	t.Helper()
	var out []string
	if err := scan([]byte(prefix), func(key, _ []byte) error { out = append(out, string(key)); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func commit(t *testing.T, s *Store, writes func(*Batch) error) error {
	t.Helper()
	b := s.NewBatch()
	defer b.Close()
	if err := writes(b); err != nil {
		t.Fatal(err)
	}
	return b.Commit()
}

func TestABatchAppliesItsSetsDeletesAndRangeDeletesTogether(t *testing.T) {
	s := openTest(t, nil)
	err := commit(t, s, func(b *Batch) error {
		for _, k := range []string{"a/1", "a/2", "a/3", "b/1"} {
			if err := b.Set([]byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = commit(t, s, func(b *Batch) error {
		if err := b.Delete([]byte("b/1")); err != nil {
			return err
		}
		if err := b.DeleteRange([]byte("a/2"), PrefixEnd([]byte("a/"))); err != nil {
			return err
		}
		if b.Len() != 2 {
			t.Errorf("Len = %d, want 2", b.Len())
		}
		return b.Set([]byte("a/9"), []byte("late"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := keys(t, s.Scan, "a/"); !slices.Equal(got, []string{"a/1", "a/9"}) {
		t.Errorf("keys under a/ = %v, want [a/1 a/9]", got)
	}
	if v, ok, err := s.Get([]byte("a/9")); err != nil || !ok || string(v) != "late" {
		t.Errorf("Get(a/9) = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := s.Get([]byte("b/1")); err != nil || ok {
		t.Errorf("Get(b/1) = %v, %v; want absent", ok, err)
	}
}

func TestAViewReadsTheStoreAsItWasWhenCreated(t *testing.T) {
	s := openTest(t, nil)
	set := func(k, v string) {
		if err := commit(t, s, func(b *Batch) error { return b.Set([]byte(k), []byte(v)) }); err != nil {
			t.Fatal(err)
		}
	}
	set("k/1", "old")
	view := s.NewView()
	defer view.Close()
	set("k/1", "new")
	set("k/2", "new")
	if v, _, err := view.Get([]byte("k/1")); err != nil || string(v) != "old" {
		t.Errorf("view Get(k/1) = %q, %v; want old", v, err)
	}
	if got := keys(t, view.Scan, "k/"); !slices.Equal(got, []string{"k/1"}) {
		t.Errorf("view keys = %v, want [k/1]", got)
	}
}

func TestACommitFailedAtTheSeamWritesNothingAndARetrySucceeds(t *testing.T) {
	injected := errors.New("disk full")
	fail := true
	s := openTest(t, &Options{FailCommit: func() error {
		if fail {
			return injected
		}
		return nil
	}})
	write := func(b *Batch) error { return b.Set([]byte("k/1"), []byte("v")) }
	if err := commit(t, s, write); !errors.Is(err, injected) {
		t.Fatalf("Commit = %v, want the injected error", err)
	}
	if _, ok, _ := s.Get([]byte("k/1")); ok {
		t.Fatal("a failed commit wrote its batch")
	}
	fail = false
	if err := commit(t, s, write); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := s.Get([]byte("k/1")); !ok {
		t.Fatal("the retried commit wrote nothing")
	}
}
