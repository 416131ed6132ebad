package engine

import (
	"fmt"
	"time"

	"github.com/eddyhq/eddy/learner"
)

// restore loads one model, its monitor, history, waiting events and
// retention index, and publishes its champion (the snapshot it served when
// it stopped), if any. A model the store does not hold starts untrained.
func (e *Engine) restore(mc learner.ModelConfig) (_ *modelState, err error) {
	u := &modelState{cfg: mc, handles: e.metrics.forModel(mc.Name)}
	defer func() {
		if err != nil {
			return
		}
		if u.hist != nil {
			u.hist.SetClock(func() time.Time { return e.now() })
		}
		e.metrics.observe(u)
	}()
	mon, err := learner.NewMonitor(mc, e.cfg.RollingWindow)
	if err != nil {
		return nil, err
	}
	u.mon = mon
	if u.auditSeq, err = lastAuditSequence(e.store, mc.Name); err != nil {
		return nil, fmt.Errorf("learner: %w", err)
	}
	if u.lin, err = loadLineage(e.store, mc.Name); err != nil {
		return nil, err
	}
	if u.fwatch, err = e.newFeatureWatch(mc); err != nil {
		return nil, err
	}
	if u.fwatch != nil {
		if blob, ok, err := e.store.Get(featureDriftKey(mc.Name)); err != nil {
			return nil, fmt.Errorf("learner: %w", err)
		} else if ok {
			if err := u.fwatch.decode(blob); err != nil {
				return nil, fmt.Errorf("learner: model %s: %w", mc.Name, err)
			}
		}
	}
	data, ok, err := e.store.Get(modelKey(mc.Name))
	if err != nil {
		return nil, fmt.Errorf("learner: %w", err)
	}
	if !ok {
		e.log.Info("new model", "model", mc.Name, "task", mc.Task, "topic", mc.Topic, "drift_detector", mc.Drift.Detector)
		if u.model, err = learner.NewModel(mc, e.cfg.RollingWindow); err != nil {
			return nil, err
		}
		u.hist = u.model.History()
		e.backHistory(u)
		if err := e.loadPending(u); err != nil { // nothing stored, or what a Reset left
			return nil, err
		}
		return u, nil
	}
	if u.model, _, err = learner.DecodeModel(mc, e.cfg.RollingWindow, data); err != nil {
		return nil, err
	}
	m := u.model
	if from := m.StoredMaxNumeric(); from != m.Config().Features.MaxNumeric {
		e.log.Info("numeric feature slots resized; weights re-indexed", "model", mc.Name,
			"from", from, "to", m.Config().Features.MaxNumeric, "slots_used", m.NumericSlots())
	}
	if blob, ok, err := e.store.Get(schemaKey(mc.Name)); err != nil {
		return nil, fmt.Errorf("learner: %w", err)
	} else if ok {
		if err := m.RestoreSchemaState(blob); err != nil {
			return nil, err
		}
	}
	u.hist = m.History()
	e.backHistory(u)
	if err := e.loadPending(u); err != nil {
		return nil, err
	}
	champion := m.Version()
	if blob, ok, err := e.store.Get(monitorKey(mc.Name)); err != nil {
		return nil, fmt.Errorf("learner: %w", err)
	} else if ok {
		if champion, err = mon.Decode(m, blob); err != nil {
			return nil, err
		}
	}
	if err := e.loadRetained(u); err != nil {
		return nil, err
	}
	e.log.Info("model restored", "model", mc.Name, "learned", m.Learned(), "newest_version", m.Version(), "champion", champion, "pinned", mon.Pinned())
	if m.Version() > 0 {
		newest, err := loadSnapshot(e.store, m, m.Version())
		if err != nil {
			return nil, err
		}
		u.snapped = newest.Learned()
	}
	if champion > 0 {
		snap, err := loadSnapshot(e.store, m, champion)
		if err != nil {
			return nil, err
		}
		mon.RestoreChampion(snap) // not SetChampion: the detector state is restored as it was
		if p := e.partOf(mc.Name); p == nil || !p.follow {
			e.publish(snap)
		}
	}
	return u, nil
}
