package engine

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// keptSnapshot is one stored snapshot in a model's retention index.
type keptSnapshot struct {
	version uint64
	created time.Time
}

// loadRetained builds u's retention index from the stored snapshot infos.
// Snapshots stored before infos existed (all older than the first one with
// an info) get theirs now, in one synced batch, so that listing never needs
// their weights.
func (e *Engine) loadRetained(u *modelState) error {
	name := u.cfg.Name
	var kept []keptSnapshot
	prefix := snapshotInfoPrefix(name)
	err := e.store.Scan(prefix, func(key, value []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: snapshot info key %q", learner.ErrCorrupt, key)
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
	err = e.store.ScanRange(snapshotPrefix(name), snapshotKey(name, firstWithInfo), func(key, _ []byte) error {
		if len(key) != len(snapshotPrefix(name))+8 {
			return fmt.Errorf("%w: snapshot key %q", learner.ErrCorrupt, key)
		}
		older = append(older, binary.BigEndian.Uint64(key[len(key)-8:]))
		return nil
	})
	if err != nil || len(older) == 0 {
		u.kept = kept
		return err
	}
	batch := e.store.NewBatch()
	defer batch.Close()
	var migrated []keptSnapshot
	for _, v := range older {
		snap, err := loadSnapshot(e.store, u.model, v)
		if err != nil {
			return err
		}
		if err := batch.Set(snapshotInfoKey(name, v), appendSnapshotInfo(nil, infoOf(snap))); err != nil {
			return fmt.Errorf("learner: snapshot info: %w", err)
		}
		migrated = append(migrated, keptSnapshot{v, snap.Created()})
	}
	if err := batch.Commit(); err != nil {
		return fmt.Errorf("learner: snapshot info: %w", err)
	}
	e.log.Info("snapshot infos written for snapshots stored by an older eddy", "model", name, "snapshots", len(migrated))
	u.kept = append(migrated, kept...)
	return nil
}

// retire adds to batch the deletion of u's snapshots in kept (a copy of its
// retention index with the snapshot being added) that retention no longer
// keeps, and returns the survivors; u is unchanged. A snapshot is kept
// while it is among the newest Config.Retain or younger than RetainFor, and
// while the model keeps at most MaxRetained (the oldest go first); the
// served snapshot (pinned or not) is kept whatever its age, so that a
// restart can always load it.
func (e *Engine) retire(batch *store.Batch, u *modelState, kept []keptSnapshot, now time.Time) ([]keptSnapshot, error) {
	champion := u.mon.Champion()
	excess := len(kept) - e.maxRetained
	survivors := kept[:0]
	for i, k := range kept {
		served := champion != nil && champion.Version() == k.version
		newest := i >= len(kept)-e.cfg.Retain
		young := now.Sub(k.created) < e.cfg.RetainFor
		if served || excess <= 0 && (newest || young) {
			survivors = append(survivors, k)
			continue
		}
		if err := batch.Delete(snapshotKey(u.cfg.Name, k.version)); err != nil {
			return nil, fmt.Errorf("learner: snapshot retention: %w", err)
		}
		if err := batch.Delete(snapshotInfoKey(u.cfg.Name, k.version)); err != nil {
			return nil, fmt.Errorf("learner: snapshot retention: %w", err)
		}
		if err := batch.Delete(provenanceKey(u.cfg.Name, k.version)); err != nil {
			return nil, fmt.Errorf("learner: snapshot retention: %w", err)
		}
		excess--
	}
	return survivors, nil
}

// previousVersion returns the newest kept version of u's model older than
// its champion.
func (e *Engine) previousVersion(u *modelState) (uint64, error) {
	champion := u.mon.Champion()
	if champion == nil {
		return 0, fmt.Errorf("%w: model %s serves no snapshot", ErrNoPreviousVersion, u.cfg.Name)
	}
	previous := uint64(0)
	for _, k := range u.kept {
		if k.version < champion.Version() {
			previous = k.version
		}
	}
	if previous == 0 {
		return 0, fmt.Errorf("%w: model %s serves version %d, the oldest kept", ErrNoPreviousVersion, u.cfg.Name, champion.Version())
	}
	return previous, nil
}
