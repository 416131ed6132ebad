package engine

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// Checkpoint durably writes, in one synced batch, the state of every model
// and the given next offsets (which must reflect exactly the events processed
// so far). If the promotion policy says so, it also creates a snapshot of
// each model that learned since its last one, and publishes it once durable.
// Admin commands waiting (see Wake) run first and are answered once the
// batch that stores them is durable. When nothing changed and no promotion
// is due, it writes nothing, so callers may call it on every tick. An error
// means the stored state is the previous checkpoint; the Engine's in-memory
// state is ahead of it, so the caller must stop and restart from the store.
func (e *Engine) Checkpoint(offsets []Offset) (err error) {
	e.runAdmin()
	defer func() { e.answerAdmin(err) }()
	start := e.now()
	periodic := e.promotionDue(start)
	reasons := e.promotions(periodic)
	if !e.dirty && !e.offsetsChanged(offsets) && len(reasons) == 0 && !e.expiryDue(start) {
		return nil // nothing to write: idle ticks cost nothing
	}
	batch := e.store.NewBatch()
	defer batch.Close()
	var snaps []*learner.Snapshot
	for _, u := range e.units {
		m := u.model
		champion := uint64(0)
		if c := u.mon.Champion(); c != nil {
			champion = c.Version()
		}
		if reason := reasons[u]; reason != "" {
			snap, err := e.addSnapshot(batch, u, start, reason)
			if err != nil {
				return err
			}
			snaps = append(snaps, snap)
			if !u.mon.Pinned() {
				champion = snap.Version()
			}
		}
		e.buf = m.AppendState(e.buf[:0])
		if err := batch.Set(modelKey(u.cfg.Name), e.buf); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
		if err := e.writeMonitor(batch, u, champion); err != nil {
			return err
		}
		if u.hist != nil {
			err := u.hist.TakeDirty(func(key, value []byte) error { return batch.Set(historyKey(u.cfg.Name, key), value) })
			if err != nil {
				return fmt.Errorf("learner: checkpoint: %w", err)
			}
			evicted, err := u.hist.Evict(func(key []byte) error { return batch.Delete(historyKey(u.cfg.Name, key)) })
			if err != nil {
				return fmt.Errorf("learner: checkpoint: %w", err)
			}
			e.metrics.evicted.WithLabelValues(u.cfg.Name).Add(float64(evicted))
			u.evicted += uint64(evicted)
			e.metrics.entities.WithLabelValues(u.cfg.Name).Set(float64(u.hist.Entities()))
			e.metrics.observeHistory(u.cfg.Name, u.hist.Late(), u.hist.Future())
		}
		if u.pending != nil {
			if err := e.writePending(batch, u, start); err != nil {
				return err
			}
		}
	}
	for _, o := range offsets {
		if err := batch.Set(offsetKey(o.Topic, o.Partition), binary.BigEndian.AppendUint64(nil, uint64(o.Next))); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	if err := batch.Commit(); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	for _, o := range offsets {
		e.offsets[o.TopicPartition] = o.Next
	}
	e.dirty = false
	if periodic {
		e.promoted = start
	}
	for _, u := range e.units {
		u.records = u.records[:0]
	}
	for _, s := range snaps {
		e.champion(s, start)
	}
	for _, u := range e.units {
		e.metrics.observe(u)
	}
	e.checkpoints++
	e.metrics.checkpoint.Observe(e.now().Sub(start).Seconds())
	return nil
}

func (e *Engine) offsetsChanged(offsets []Offset) bool {
	for _, o := range offsets {
		if next, ok := e.offsets[o.TopicPartition]; !ok || next != o.Next {
			return true
		}
	}
	return false
}

// addSnapshot bumps u's model version and adds its snapshot and the
// snapshot's info to batch, deleting versions retention no longer keeps.
func (e *Engine) addSnapshot(batch *store.Batch, u *unit, now time.Time, reason string) (*learner.Snapshot, error) {
	m := u.model
	m.SetVersion(m.Version() + 1)
	snap := m.Snapshot(m.Version(), now.UTC(), reason)
	if err := batch.Set(snapshotKey(u.cfg.Name, snap.Version()), m.AppendSnapshot(nil, snap)); err != nil {
		return nil, fmt.Errorf("learner: snapshot: %w", err)
	}
	if err := batch.Set(snapshotInfoKey(u.cfg.Name, snap.Version()), appendSnapshotInfo(nil, infoOf(snap))); err != nil {
		return nil, fmt.Errorf("learner: snapshot: %w", err)
	}
	u.kept = append(u.kept, keptSnapshot{snap.Version(), snap.Created()})
	if err := e.retire(batch, u, now); err != nil {
		return nil, err
	}
	u.snapped = m.Learned()
	return snap, nil
}
