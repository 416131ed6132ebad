package learner

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// keptSnapshot is one stored snapshot in a model's retention index.
type keptSnapshot struct {
	version uint64
	created time.Time
}

// loadRetained builds m's retention index from the stored snapshot infos.
// Snapshots stored before infos existed (all older than the first one with
// an info) get theirs now, in one synced batch, so that listing never needs
// their weights.
func (e *Engine) loadRetained(m *Model) error {
	name := m.cfg.Name
	var kept []keptSnapshot
	prefix := snapshotInfoPrefix(name)
	err := e.store.scan(prefix, func(key, value []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: snapshot info key %q", ErrCorrupt, key)
		}
		in, err := decodeSnapshotInfo(binary.BigEndian.Uint64(key[len(prefix):]), value)
		if err != nil {
			return fmt.Errorf("learner: model %s: %w", name, err)
		}
		kept = append(kept, keptSnapshot{in.Version, in.Created})
		return nil
	})
	if err != nil {
		return err
	}
	firstWithInfo := uint64(math.MaxUint64)
	if len(kept) > 0 {
		firstWithInfo = kept[0].version
	}
	var older []uint64
	err = scanRange(e.store.db, snapshotPrefix(name), snapshotKey(name, firstWithInfo), func(key, _ []byte) error {
		if len(key) != len(snapshotPrefix(name))+8 {
			return fmt.Errorf("%w: snapshot key %q", ErrCorrupt, key)
		}
		older = append(older, binary.BigEndian.Uint64(key[len(key)-8:]))
		return nil
	})
	if err != nil || len(older) == 0 {
		e.kept[m] = kept
		return err
	}
	batch := e.store.db.NewBatch()
	defer batch.Close()
	var migrated []keptSnapshot
	for _, v := range older {
		snap, err := e.Snapshot(name, v)
		if err != nil {
			return err
		}
		if err := batch.Set(snapshotInfoKey(name, v), appendSnapshotInfo(nil, snap.info()), nil); err != nil {
			return fmt.Errorf("learner: snapshot info: %w", err)
		}
		migrated = append(migrated, keptSnapshot{v, snap.created})
	}
	if err := batch.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("learner: snapshot info: %w", err)
	}
	e.log.Info("snapshot infos written for snapshots stored by an older eddy", "model", name, "snapshots", len(migrated))
	e.kept[m] = append(migrated, kept...)
	return nil
}

// retire adds to batch the deletion of m's snapshots that retention no
// longer keeps. A snapshot is kept while it is among the newest
// EngineConfig.Retain or younger than RetainFor, and while the model keeps
// at most MaxRetained (the oldest go first); the served snapshot (pinned or
// not) is kept whatever its age, so that a restart can always load it.
func (e *Engine) retire(batch *pebble.Batch, m *Model, now time.Time) error {
	kept := e.kept[m]
	excess := len(kept) - e.maxRetained
	survivors := kept[:0]
	for i, k := range kept {
		served := m.mon.champion != nil && m.mon.champion.version == k.version
		newest := i >= len(kept)-e.cfg.Retain
		young := now.Sub(k.created) < e.cfg.RetainFor
		if served || excess <= 0 && (newest || young) {
			survivors = append(survivors, k)
			continue
		}
		if err := batch.Delete(snapshotKey(m.cfg.Name, k.version), nil); err != nil {
			return fmt.Errorf("learner: snapshot retention: %w", err)
		}
		if err := batch.Delete(snapshotInfoKey(m.cfg.Name, k.version), nil); err != nil {
			return fmt.Errorf("learner: snapshot retention: %w", err)
		}
		excess--
	}
	e.kept[m] = survivors
	return nil
}

// previousVersion returns the newest kept version of m older than its
// champion.
func (e *Engine) previousVersion(m *Model) (uint64, error) {
	if m.mon.champion == nil {
		return 0, fmt.Errorf("%w: model %s serves no snapshot", ErrNoPreviousVersion, m.cfg.Name)
	}
	previous := uint64(0)
	for _, k := range e.kept[m] {
		if k.version < m.mon.champion.version {
			previous = k.version
		}
	}
	if previous == 0 {
		return 0, fmt.Errorf("%w: model %s serves version %d, the oldest kept", ErrNoPreviousVersion, m.cfg.Name, m.mon.champion.version)
	}
	return previous, nil
}
