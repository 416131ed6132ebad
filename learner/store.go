package learner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eddyhq/eddy/features/codec"
)

// Store is eddy's state on disk: one Pebble database holding every model's
// state, every partition's next offset and every retained snapshot. It is
// safe for concurrent use.
//
// Keys:
//
//	model/<name>                              model state
//	offset/<topic>/<partition u32 BE>          next offset to consume, u64 BE
//	snapshot/<name>/<version u64 BE>           snapshot
//	snapshot-info/<name>/<version u64 BE>      its SnapshotInfo, to list snapshots without their weights
//	monitor/<name>                            champion version and pin, drift detector, challengers
//	detection/<name>/<sequence u64 BE>        one drift detection (time, position, detector state)
//	history/<name>/<entity key>               one entity's recent values and labels
//	pending/<name>/<event id>                 an event waiting for its delayed label
type Store struct {
	db  *pebble.DB
	dir string
}

// OpenStore opens (creating if needed) the store in dir.
func OpenStore(dir string, log *slog.Logger) (*Store, error) {
	db, err := pebble.Open(dir, &pebble.Options{Logger: pebbleLogger{log.With("component", "pebble")}})
	if err != nil {
		return nil, fmt.Errorf("learner: open store in %s: %w", dir, err)
	}
	return &Store{db: db, dir: dir}, nil
}

// Dir returns the directory the store lives in.
func (s *Store) Dir() string { return s.dir }

// Close flushes and closes the store.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("learner: close store: %w", err)
	}
	return nil
}

func modelKey(name string) []byte { return []byte("model/" + name) }

func monitorKey(name string) []byte { return []byte("monitor/" + name) }

func historyKey(name string, entity []byte) []byte {
	return append([]byte("history/"+name+"/"), entity...)
}

func detectionKey(name string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte("detection/"+name+"/"), seq)
}

func offsetKey(topic string, partition int) []byte {
	return binary.BigEndian.AppendUint32([]byte("offset/"+topic+"/"), uint32(partition))
}

func snapshotPrefix(name string) []byte { return []byte("snapshot/" + name + "/") }

func snapshotKey(name string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(snapshotPrefix(name), version)
}

func snapshotInfoPrefix(name string) []byte { return []byte("snapshot-info/" + name + "/") }

func snapshotInfoKey(name string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(snapshotInfoPrefix(name), version)
}

// snapshotInfos lists the stored snapshots of model, oldest first, marking
// the pinned one, all read from one point-in-time view of the store: a
// checkpoint committing meanwhile (a new snapshot, retention deleting old
// ones, a pin) is seen entirely or not at all. It reads no weights.
func (s *Store) snapshotInfos(model string) ([]SnapshotInfo, error) {
	view := s.db.NewSnapshot()
	defer view.Close()
	var pinned uint64
	if v, closer, err := view.Get(monitorKey(model)); err == nil {
		r := codec.NewReader(v, ErrCorrupt)
		champion, isPinned, err := decodeMonitorHeader(&r)
		closer.Close()
		if err != nil {
			return nil, fmt.Errorf("learner: model %s monitor: %w", model, err)
		}
		if isPinned {
			pinned = champion
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("learner: read %q: %w", monitorKey(model), err)
	}
	var infos []SnapshotInfo
	prefix := snapshotInfoPrefix(model)
	err := scanRange(view, prefix, prefixEnd(prefix), func(key, value []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: snapshot info key %q", ErrCorrupt, key)
		}
		in, err := decodeSnapshotInfo(binary.BigEndian.Uint64(key[len(prefix):]), value)
		if err != nil {
			return fmt.Errorf("learner: model %s: %w", model, err)
		}
		in.Pinned = in.Version == pinned
		infos = append(infos, in)
		return nil
	})
	return infos, err
}

// get returns a copy of the value of key, or ok false if it is absent.
func (s *Store) get(key []byte) (value []byte, ok bool, err error) {
	v, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("learner: read %q: %w", key, err)
	}
	defer closer.Close()
	return append([]byte(nil), v...), true, nil
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int
}

// Offsets returns every stored next offset.
func (s *Store) Offsets() (map[TopicPartition]int64, error) {
	out := make(map[TopicPartition]int64)
	err := s.scan([]byte("offset/"), func(key, value []byte) error {
		rest := key[len("offset/"):]
		if len(rest) < 5 || rest[len(rest)-5] != '/' || len(value) != 8 {
			return fmt.Errorf("%w: offset key %q", ErrCorrupt, key)
		}
		tp := TopicPartition{Topic: string(rest[:len(rest)-5]), Partition: int(binary.BigEndian.Uint32(rest[len(rest)-4:]))}
		out[tp] = int64(binary.BigEndian.Uint64(value))
		return nil
	})
	return out, err
}

// SnapshotVersions returns the stored snapshot versions of a model, oldest
// first.
func (s *Store) SnapshotVersions(model string) ([]uint64, error) {
	var versions []uint64
	prefix := snapshotPrefix(model)
	err := s.scan(prefix, func(key, _ []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: snapshot key %q", ErrCorrupt, key)
		}
		versions = append(versions, binary.BigEndian.Uint64(key[len(prefix):]))
		return nil
	})
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	return versions, err
}

func (s *Store) scan(prefix []byte, fn func(key, value []byte) error) error {
	return scanRange(s.db, prefix, prefixEnd(prefix), fn)
}

// prefixEnd returns the first key after every key starting with prefix
// (whose last byte is '/', so it can be incremented).
func prefixEnd(prefix []byte) []byte {
	return append(append([]byte(nil), prefix[:len(prefix)-1]...), prefix[len(prefix)-1]+1)
}

// scanRange calls fn with every key in [lower, upper) of r, in order, with
// one iterator: fn sees one consistent view.
func scanRange(r pebble.Reader, lower, upper []byte, fn func(key, value []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("learner: scan %q: %w", lower, err)
	}
	for it.First(); it.Valid(); it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("learner: scan %q: %w", lower, err)
	}
	return nil
}

// pebbleLogger routes Pebble's log lines to slog.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...))
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error(fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble on unrecoverable corruption; Pebble's contract
// is that it does not return.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error(msg, "fatal", true)
	panic("pebble: " + msg)
}
