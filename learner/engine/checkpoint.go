package engine

import (
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// Checkpoint durably writes, in one synced batch, the state of every model
// and the given next offsets (which must reflect exactly the events processed
// so far). If the promotion policy says so, it also creates a snapshot of
// each model that learned since its last one, and publishes it once durable.
// Admin commands waiting (see Wake) run first and are answered once a
// batch that stores them is durable. When nothing changed and no promotion
// is due, it writes nothing, so callers may call it on every tick.
//
// A checkpoint is computed, committed, then applied: the batch is built
// without changing what the engine knows about the store (snapshot
// versions, retention, entities changed or due for eviction, events
// waiting or expired, detections, offsets), and only once it is durable
// does the engine record it, publish snapshots and answer admin commands.
// An error therefore leaves the stored state as it was and the engine as
// it was, with everything since the last checkpoint still to write: the
// caller may retry, or stop and restart from the store.
func (e *Engine) Checkpoint(offsets []Offset) (err error) {
	e.runAdmin()
	wrote := false
	defer func() {
		if err == nil {
			e.answerAdmin()
		}
		if wrote {
			e.updateStats() // after every publication, the admin commands' included
		}
	}()
	start := e.now()
	periodic := e.promotionDue(start)
	reasons := e.promotions(periodic)
	if !e.dirty && !e.offsetsChanged(offsets) && len(reasons) == 0 && !e.expiryDue(start) {
		return nil // nothing to write: idle ticks cost nothing
	}
	batch := e.store.NewBatch()
	defer batch.Close()
	plans := e.plans[:0]
	for range e.states {
		plans = append(plans, modelPlan{})
	}
	e.plans = plans
	for i, u := range e.states {
		if err := e.plan(batch, u, &plans[i], start, reasons[u], offsets); err != nil {
			return err
		}
	}
	for _, p := range e.parts {
		if p.held {
			if err := batch.Set(unitKey(p.Name), appendPosition(nil, p.epoch, p.seq+1)); err != nil {
				return fmt.Errorf("learner: checkpoint: %w", err)
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
	e.apply(plans, offsets, start, periodic)
	clear(plans) // keep no snapshot or index alive until the next checkpoint
	wrote = true
	return nil
}

// modelPlan is what a checkpoint writes for one model and applies to it once
// the batch is durable.
type modelPlan struct {
	snap    *learner.Snapshot       // the new snapshot, nil when none
	kept    []keptSnapshot          // the retention index with snap, when snap is not nil
	history features.HistoryChanges // entities written and evicted
	sweep   storedSweep             // entities only stored, evicted for entity_ttl
	expired []string                // waiting events that expire
	lineage lineage                 // the lineage once it commits
}

// plan adds u's state to batch (its new snapshot if reason is not empty,
// its model, monitor and detection records, changed and evicted entities,
// waiting events added, learned and expired) and records in p what to apply
// once the batch commits. It changes nothing in u.
func (e *Engine) plan(batch *store.Batch, u *modelState, p *modelPlan, now time.Time, reason string, offsets []Offset) error {
	m := u.model
	version := m.Version()
	var served *learner.Snapshot // the snapshot this checkpoint serves once it commits

	p.lineage = u.lin.after(u.cfg.Topic, offsets, reason != "", m.Learned())
	var prov *Provenance
	var config []byte
	if reason != "" {
		snap, kept, err := e.planSnapshot(batch, u, now, reason)
		if err != nil {
			return err
		}
		p.snap, p.kept = snap, kept
		hash, data := configHash(u.cfg)
		pv := u.lin.provenance(u, snap, version, p.lineage, hash)
		prov, config = &pv, data
		version = snap.Version()
		if !u.mon.Pinned() {
			served = snap
		}
	}
	if err := writeLineage(batch, u, &p.lineage, prov, config); err != nil {
		return err
	}
	e.buf = m.AppendStateAs(e.buf[:0], version)
	if err := batch.Set(modelKey(u.cfg.Name), e.buf); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	if err := e.writeMonitor(batch, u, served); err != nil {
		return err
	}
	if err := writeAudit(batch, u, version); err != nil {
		return err
	}
	if u.fwatch != nil {
		if err := batch.Set(featureDriftKey(u.cfg.Name), u.fwatch.appendState(nil)); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	if st, err := m.AppendSchemaState(); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	} else if st != nil {
		if err := batch.Set(schemaKey(u.cfg.Name), st); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	if u.hist != nil {
		changes, err := u.hist.WriteChanges(
			func(key, value []byte) error { return batch.Set(historyKey(u.cfg.Name, key), value) },
			func(key []byte) error { return batch.Delete(historyKey(u.cfg.Name, key)) })
		if err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
		p.history = changes
		if changes.Swept() || u.sweepFrom != nil {
			if p.sweep, err = e.sweepStored(batch, u, now); err != nil {
				return fmt.Errorf("learner: checkpoint: %w", err)
			}
		}
	}
	if u.pending != nil {
		expired, err := e.writePending(batch, u, now)
		if err != nil {
			return err
		}
		p.expired = expired
	}
	return nil
}

// planSnapshot adds to batch the next snapshot of u's model and its info,
// and the deletion of the versions retention no longer keeps once it is
// stored; it returns the snapshot and the retention index with it.
func (e *Engine) planSnapshot(batch *store.Batch, u *modelState, now time.Time, reason string) (*learner.Snapshot, []keptSnapshot, error) {
	m := u.model
	snap := m.Snapshot(m.Version()+1, now.UTC(), reason)
	if err := batch.Set(snapshotKey(u.cfg.Name, snap.Version()), m.AppendSnapshot(nil, snap)); err != nil {
		return nil, nil, fmt.Errorf("learner: snapshot: %w", err)
	}
	if err := batch.Set(snapshotInfoKey(u.cfg.Name, snap.Version()), appendSnapshotInfo(nil, infoOf(snap))); err != nil {
		return nil, nil, fmt.Errorf("learner: snapshot: %w", err)
	}
	kept := append(slices.Clone(u.kept), keptSnapshot{snap.Version(), snap.Created()})
	kept, err := e.retire(batch, u, kept, now)
	if err != nil {
		return nil, nil, err
	}
	return snap, kept, nil
}

// apply records a committed checkpoint: snapshot versions and retention,
// the entities and waiting events it wrote, evicted and expired, the
// detections it stored, the offsets; then it serves the new snapshots and
// refreshes the metrics.
func (e *Engine) apply(plans []modelPlan, offsets []Offset, start time.Time, periodic bool) {
	for i, u := range e.states {
		p := &plans[i]
		if u.fwatch != nil {
			u.fwatch.publish()
			e.publishSkew(u)
		}
		if !u.overflowLogged && u.model.OverflowedFeatures() > 0 {
			u.overflowLogged = true
			e.log.Warn("max_numeric_features reached: new numeric features are left out of the events learned (too_many_features: ignore_feature); "+
				"declare the features in a schema (new_features: ignore or dead_letter) to keep a flood of names from filling the slots",
				"model", u.cfg.Name, "max_numeric_features", u.cfg.Features.MaxNumeric)
		}
		u.auditSeq += uint64(len(u.audit))
		u.audit = u.audit[:0]
		first, seen := u.lin.first, u.lin.seen
		u.lin = p.lineage
		for i := range first {
			first[i], seen[i] = -1, -1
		}
		u.lin.first, u.lin.seen = first, seen
		if p.snap != nil {
			u.model.SetVersion(p.snap.Version())
			u.snapped = u.model.Learned()
			u.kept = p.kept
		}
		if u.hist != nil {
			u.hist.ApplyChanges(p.history)
			evicted := p.history.Evicted() + p.sweep.deleted
			u.sweepFrom = p.sweep.next
			e.metrics.evicted.WithLabelValues(u.cfg.Name).Add(float64(evicted))
			u.evicted += uint64(evicted)
			e.metrics.observeHistory(u.cfg.Name, u.hist)
		}
		if u.pending != nil {
			if err := u.pending.stored(p.expired); err != nil {
				e.log.Warn("could not read when the oldest event waiting for a label was scored; expiry waits for the next checkpoint", "model", u.cfg.Name, "err", err)
			}
			if n := len(p.expired); n > 0 {
				e.metrics.expired.WithLabelValues(u.cfg.Name).Add(float64(n))
				u.expired += uint64(n)
			}
			e.metrics.pending.WithLabelValues(u.cfg.Name).Set(float64(u.pending.waiting))
			e.metrics.pendingInMemory.WithLabelValues(u.cfg.Name).Set(float64(len(u.pending.events)))
		}
		u.records = u.records[:0]
	}
	for _, o := range offsets {
		e.offsets[o.TopicPartition] = o.Next
	}
	for _, p := range e.parts {
		if p.held {
			p.seq++
		}
	}
	e.dirty = false
	if periodic {
		e.promoted = start
	}
	for i := range plans {
		if s := plans[i].snap; s != nil {
			e.champion(s, start)
		}
	}
	for _, u := range e.states {
		e.metrics.observe(u)
	}
	e.checkpoints++
	e.metrics.checkpoint.Observe(e.now().Sub(start).Seconds())
}

func (e *Engine) offsetsChanged(offsets []Offset) bool {
	for _, o := range offsets {
		if next, ok := e.offsets[o.TopicPartition]; !ok || next != o.Next {
			return true
		}
	}
	return false
}
