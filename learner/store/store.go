package store

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Store is one Pebble database. It is safe for concurrent use.
type Store struct {
	db         *pebble.DB
	dir        string
	failCommit func() error
	minFree    int64
	fatal      *fatalState
}

// Options configure a Store. The zero value (or nil) means the defaults.
type Options struct {
	// FailCommit, if set, is called by every Batch.Commit before it
	// writes; an error it returns fails that commit, which then writes
	// nothing and returns the error. It is the seam through which tests
	// make a real store fail a commit, to check what a failed checkpoint
	// leaves behind. The default, nil, never fails.
	FailCommit func() error
	// MinFreeBytes is the free space a commit leaves untouched on the
	// store's file system: a commit that finds less fails with a
	// *NoSpaceError (Temporary) and writes nothing, so that the store never
	// runs out of room in the middle of a write (Pebble treats a failed log
	// write as fatal). The default, 0, means DefaultMinFreeBytes; negative
	// disables the check.
	MinFreeBytes int64
	// FS, if set, is the file system Pebble uses instead of the
	// operating system's: the seam through which tests inject I/O errors
	// (Pebble's vfs/errorfs). The free-space reserve is still checked on
	// the real file system of dir.
	FS vfs.FS
	// CacheSize is the size of Pebble's block cache in bytes. The default,
	// 0, means DefaultCacheSize.
	CacheSize int64
}

// DefaultCacheSize is the default Options.CacheSize: enough for the
// filters and indexes of ten million entity histories, so that reading one
// back reads its data block only (Pebble's own default, 8 MiB, re-read
// them from the file system on every read: 120 KB a read at 10,000,000).
const DefaultCacheSize = 128 << 20

// DefaultMinFreeBytes is the default Options.MinFreeBytes.
const DefaultMinFreeBytes = 64 << 20

// NoSpaceError is returned by a Commit that found less free space than
// Options.MinFreeBytes. It is temporary: the commit succeeds once an
// operator frees space.
type NoSpaceError struct {
	Dir        string
	Free, Need int64
}

func (e *NoSpaceError) Error() string {
	return fmt.Sprintf("store: no space left on the device of %s: %d MiB free, %d MiB kept in reserve; free space there and learning resumes by itself",
		e.Dir, e.Free>>20, e.Need>>20)
}

// Temporary reports true: freeing space cures it.
func (e *NoSpaceError) Temporary() bool { return true }

// Open opens (creating if needed) the store in dir. Pebble's own log lines
// go to log, Pebble's informational ones at debug level. A file system with
// less free space than the reserve, or an error Pebble declares fatal while
// opening (a MANIFEST it cannot write, say), is an error naming dir and what
// to do, not a panic.
func Open(dir string, log *slog.Logger, opts *Options) (*Store, error) {
	s := &Store{dir: dir, minFree: DefaultMinFreeBytes, fatal: &fatalState{dir: dir, done: make(chan struct{})}}
	var fs vfs.FS
	cacheSize := int64(DefaultCacheSize)
	if opts != nil {
		fs = opts.FS
		if opts.CacheSize > 0 {
			cacheSize = opts.CacheSize
		}
		s.failCommit = opts.FailCommit
		if opts.MinFreeBytes != 0 {
			s.minFree = opts.MinFreeBytes
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("store: create %s: %w", dir, err)
	}
	if err := s.checkFree(); err != nil {
		var ns *NoSpaceError
		errors.As(err, &ns)
		return nil, fmt.Errorf("store: cannot open %s: only %d MiB free on its file system, %d MiB needed in reserve: free space there (or point --data-dir elsewhere), then start eddy again", dir, ns.Free>>20, ns.Need>>20)
	}
	// Pebble opens in a goroutine of its own: an error it declares fatal
	// in one of its background goroutines blocks that goroutine (see
	// Fatalf), and Open may be waiting for it.
	type opened struct {
		db  *pebble.DB
		err error
	}
	done := make(chan opened, 1)
	go func() {
		var o opened
		defer func() { done <- o }()
		defer s.recoverFatal(&o.err)
		po := &pebble.Options{FS: fs, CacheSize: cacheSize, Logger: pebbleLogger{log: log.With("component", "pebble"), limiter: &errorLimiter{}, fatal: s.fatal}}
		// Bloom filters (10 bits a key, inherited by every level): an
		// entity's first event looks for a history that is not there, and
		// without a filter each such read visits a block of every level.
		po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
		o.db, o.err = pebble.Open(dir, po)
	}()
	var o opened
	select {
	case o = <-done:
	case <-s.fatal.done:
		o.err = s.fatal.err
	}
	if o.err == nil {
		o.err = s.Err() // fatal in a goroutine Open started, after it returned
	}
	var fatal *FatalError
	switch {
	case errors.As(o.err, &fatal) && fatal.corruption():
		return nil, fmt.Errorf("store: cannot open %s: its files are damaged (%s): move the directory aside and start again: each model restores from its group's state topic (or starts afresh if it has none)", dir, fatal.Msg)
	case errors.As(o.err, &fatal):
		return nil, fmt.Errorf("store: cannot open %s: %s: free space or repair the file system; if its files are damaged, move the directory aside: each model restores from its group's state topic", dir, fatal.Msg)
	case o.err != nil:
		return nil, fmt.Errorf("store: cannot open %s (damaged or not a Pebble store?): %s; to recover, move the directory aside and start again: each model restores from its group's state topic, or starts afresh if it has none", dir, firstLine(o.err.Error()))
	}
	s.db = o.db
	return s, nil
}

// Failed returns a channel that is closed when Pebble declares an error
// fatal while the store is open (corruption found by a compaction, a log
// write that failed): the store is then unusable, every later call returns
// that error (Err), and its owner should stop and be started again.
func (s *Store) Failed() <-chan struct{} { return s.fatal.done }

// Err returns the *FatalError the store failed with, or nil.
func (s *Store) Err() error {
	select {
	case <-s.fatal.done:
		return s.fatal.err
	default:
		return nil
	}
}

// Dir returns the directory the store lives in.
func (s *Store) Dir() string { return s.dir }

// Close flushes and closes the store. Nothing may use it afterwards. A
// store that failed (Failed) is not closed (Pebble's goroutine that hit the
// fatal error never finishes, so closing would wait forever): Close returns
// the error it failed with, and the process should exit.
func (s *Store) Close() (err error) {
	if err := s.Err(); err != nil {
		return err
	}
	defer s.recoverFatal(&err)
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Get returns a copy of the value of key, or ok false if it is absent.
func (s *Store) Get(key []byte) (value []byte, ok bool, err error) {
	defer s.recoverFatal(&err)
	return s.get(s.db, key)
}

// Scan calls fn with every key starting with prefix and its value, in key
// order, from one consistent view of the store. fn must not keep key or
// value, which are valid during the call only; an error from fn stops the
// scan and is returned. prefix must end with '/' (see PrefixEnd).
func (s *Store) Scan(prefix []byte, fn func(key, value []byte) error) (err error) {
	defer s.recoverFatal(&err)
	return s.scanRange(s.db, prefix, PrefixEnd(prefix), fn)
}

// ScanRange is Scan over the keys in [lower, upper).
func (s *Store) ScanRange(lower, upper []byte, fn func(key, value []byte) error) (err error) {
	defer s.recoverFatal(&err)
	return s.scanRange(s.db, lower, upper, fn)
}

// NewView returns a point-in-time view of the store: it reads what was
// committed when it was created, whatever commits afterwards. Close it when
// done; until then it pins the data it may read.
func (s *Store) NewView() *View { return &View{snap: s.db.NewSnapshot(), s: s} }

// View is a consistent, read-only, point-in-time view of a Store, safe for
// concurrent use.
type View struct {
	snap *pebble.Snapshot
	s    *Store
}

// Get is Store.Get as of the view.
func (v *View) Get(key []byte) (value []byte, ok bool, err error) {
	defer v.s.recoverFatal(&err)
	return v.s.get(v.snap, key)
}

// Scan is Store.Scan as of the view.
func (v *View) Scan(prefix []byte, fn func(key, value []byte) error) (err error) {
	defer v.s.recoverFatal(&err)
	return v.s.scanRange(v.snap, prefix, PrefixEnd(prefix), fn)
}

// Close releases the view.
func (v *View) Close() (err error) {
	defer v.s.recoverFatal(&err)
	if err := v.snap.Close(); err != nil {
		return fmt.Errorf("store: close view: %w", err)
	}
	return nil
}

// NewBatch returns an empty batch of writes to s. Close it when done,
// committed or not.
func (s *Store) NewBatch() *Batch { return &Batch{b: s.db.NewBatch(), s: s} }

// Batch is a set of writes that Commit applies atomically and durably: all
// of them or none. A Batch is owned by one goroutine.
type Batch struct {
	b *pebble.Batch
	s *Store
}

// Set adds the write of value under key. Both are copied: the caller may
// reuse them at once.
func (b *Batch) Set(key, value []byte) error {
	if err := b.b.Set(key, value, nil); err != nil {
		return fmt.Errorf("store: set %q: %w", string(key), err) // string(): a copy, so that key does not escape
	}
	return nil
}

// Delete adds the deletion of key (absent or not).
func (b *Batch) Delete(key []byte) error {
	if err := b.b.Delete(key, nil); err != nil {
		return fmt.Errorf("store: delete %q: %w", string(key), err)
	}
	return nil
}

// DeleteRange adds the deletion of every key in [start, end).
func (b *Batch) DeleteRange(start, end []byte) error {
	if err := b.b.DeleteRange(start, end, nil); err != nil {
		return fmt.Errorf("store: delete range %q-%q: %w", string(start), string(end), err)
	}
	return nil
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return int(b.b.Count()) }

// Commit applies every write of the batch atomically and syncs them to
// disk before it returns. On error nothing was applied.
func (b *Batch) Commit() (err error) {
	if err := b.s.Err(); err != nil {
		return err
	}
	defer b.s.recoverFatal(&err)
	if b.s.failCommit != nil {
		if err := b.s.failCommit(); err != nil {
			return fmt.Errorf("store: commit: %w", err)
		}
	}
	if err := b.s.checkFree(); err != nil {
		return err
	}
	if err := b.b.Commit(pebble.Sync); err != nil {
		return b.s.wrap("commit", err)
	}
	return nil
}

// Close releases the batch.
func (b *Batch) Close() error { return b.b.Close() }

// PrefixEnd returns the first key after every key starting with prefix,
// whose last byte must be '/' (so it can be incremented).
func PrefixEnd(prefix []byte) []byte {
	return append(append([]byte(nil), prefix[:len(prefix)-1]...), prefix[len(prefix)-1]+1)
}

func (s *Store) get(r pebble.Reader, key []byte) ([]byte, bool, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.wrap(fmt.Sprintf("read %q", key), err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// scanRange calls fn with every key in [lower, upper) of r, in order, with
// one iterator: fn sees one consistent view.
func (s *Store) scanRange(r pebble.Reader, lower, upper []byte, fn func(key, value []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return s.wrap(fmt.Sprintf("scan %q", lower), err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return s.wrap(fmt.Sprintf("scan %q", lower), err)
	}
	return nil
}

// wrap names what failed; a corruption Pebble found names the directory and
// the way out, on one line.
func (s *Store) wrap(what string, err error) error {
	if pebble.IsCorruptionError(err) {
		return &CorruptionError{Dir: s.dir, What: what, Msg: firstLine(err.Error()), err: err}
	}
	return fmt.Errorf("store: %s: %w", what, err)
}

// CorruptionError is a read or write that found damaged data in the store's
// files.
type CorruptionError struct {
	Dir, What, Msg string
	err            error
}

func (e *CorruptionError) Error() string {
	return fmt.Sprintf("store: %s: the files of %s are damaged (%s): stop eddy and move the directory aside; "+
		"each model then restores from its group's state topic (or starts afresh if it has none)", e.What, e.Dir, e.Msg)
}

func (e *CorruptionError) Unwrap() error { return e.err }

// firstLine returns the first line of an error message: Pebble's errors
// carry their stack traces on the lines after it.
func firstLine(msg string) string {
	line, _, _ := strings.Cut(msg, "\n")
	return line
}

// checkFree returns a *NoSpaceError when the store's file system has less
// free space than the reserve.
func (s *Store) checkFree() error {
	if s.minFree <= 0 {
		return nil
	}
	free, err := freeBytes(s.dir)
	if err != nil {
		return nil // cannot tell: let Pebble try
	}
	if free < s.minFree {
		return &NoSpaceError{Dir: s.dir, Free: free, Need: s.minFree}
	}
	return nil
}

// pebbleLogger routes Pebble's log lines to slog. Errors are rate-limited:
// a background error Pebble retries (a flush to a full disk) would
// otherwise be logged thousands of times a second.
type pebbleLogger struct {
	log     *slog.Logger
	limiter *errorLimiter
	fatal   *fatalState
}

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	if suppressed, ok := l.limiter.allow(time.Now()); ok {
		if suppressed > 0 {
			l.log.Error(fmt.Sprintf(format, args...), "suppressed_since_last", suppressed)
			return
		}
		l.log.Error(fmt.Sprintf(format, args...))
	}
}

// errorLimiter lets one error line through every errorEvery.
type errorLimiter struct {
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

const errorEvery = 10 * time.Second

func (r *errorLimiter) allow(now time.Time) (suppressed int, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() && now.Sub(r.last) < errorEvery {
		r.suppressed++
		return 0, false
	}
	suppressed, r.suppressed, r.last = r.suppressed, 0, now
	return suppressed, true
}

// FatalError is an error Pebble declared fatal: the store it happened in
// is unusable until the process starts again.
type FatalError struct {
	Dir, Msg string
}

func (e *FatalError) Error() string {
	if e.corruption() {
		return fmt.Sprintf("store: Pebble found damaged files in %s and stopped (%s): move the directory aside and start eddy again: "+
			"each model restores from its group's state topic (or starts afresh if it has none)", e.Dir, e.Msg)
	}
	return fmt.Sprintf("store: Pebble stopped on a fatal error in %s: %s; if the disk is full or failing, fix that and start eddy again "+
		"(each model continues from its last checkpoint); if the files are damaged, move the directory aside and start again: "+
		"each model restores from its group's state topic (or starts afresh if it has none)", e.Dir, e.Msg)
}

// corruption reports whether Pebble found damaged data (its messages say
// "corruption" then).
func (e *FatalError) corruption() bool { return strings.Contains(e.Msg, "corruption") }

// fatalState is set once, by the first fatal error.
type fatalState struct {
	dir  string
	once sync.Once
	err  *FatalError
	done chan struct{}
}

// Fatalf is called by Pebble on an error it cannot go on from (corruption a
// compaction found, a failed log write); Pebble's contract is that it does
// not return. The store records the error (Failed, Err) and logs it once,
// on one line. Called from a goroutine that went through the store's own
// methods, it panics with the *FatalError, which those methods recover and
// return (so the caller gets an error); called from one of Pebble's
// background goroutines, it blocks that goroutine until the process exits,
// instead of crashing the process with a stack trace.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	err := &FatalError{Dir: l.fatal.dir, Msg: firstLine(fmt.Sprintf(format, args...))}
	l.fatal.once.Do(func() {
		l.fatal.err = err
		l.log.Error("fatal error: the store stops", "dir", err.Dir, "err", err.Msg)
		close(l.fatal.done)
	})
	if calledThroughStore() {
		panic(err)
	}
	select {}
}

// calledThroughStore reports whether the calling goroutine is inside one
// of the Store's methods, whose recoverFatal turns a Fatalf into an error.
func calledThroughStore() bool {
	pcs := make([]uintptr, 64)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(3, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, storePackage) && !strings.Contains(f.Function, "pebbleLogger") {
			return true
		}
		if !more {
			return false
		}
	}
}

// storePackage prefixes the names of this package's functions.
const storePackage = "github.com/eddyhq/eddy/learner/store."

// recoverFatal turns the panic of a Fatalf on this goroutine into *err.
// Other panics go on.
func (s *Store) recoverFatal(err *error) {
	if r := recover(); r != nil {
		f, ok := r.(*FatalError)
		if !ok {
			panic(r)
		}
		*err = f
	}
}
