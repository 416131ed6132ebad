package engine

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// Label learns, for every model whose labels topic is topic, the waiting
// event id with label y, scored with the prediction made when the event
// arrived. A label for no waiting event (unknown, already learned, expired)
// is rejected with learner.ReasonUnknownID: nothing is ever learned twice.
func (e *Engine) Label(topic string, id []byte, y float64) error {
	e.runAdmin()
	var first error
	matched := false
	for _, u := range e.states {
		if u.pending == nil || u.cfg.LabelsTopic != topic {
			continue
		}
		p, inMemory, err := u.pending.lookup(string(id))
		if err != nil {
			return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
		}
		if p == nil {
			continue
		}
		if u.hist != nil {
			// Before anything changes: a history the store cannot give
			// back stops the engine with its state as it was.
			if err := u.hist.Fetch(p.key); err != nil {
				return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
			}
		}
		u.pending.take(string(id), p, inMemory)
		matched = true
		e.dirty = true
		if err := u.model.LearnDelayed(p.fields, y, p.prediction); err != nil {
			e.rejected(u, err)
			if first == nil {
				first = err
			}
			continue
		}
		if !u.standby {
			u.handles.learned.Inc()
			e.metrics.delayed.WithLabelValues(u.cfg.Name).Inc()
			u.learned++
			e.learned++
			u.delayed++
		}
		if u.hist != nil {
			if err := u.hist.Observe(p.key, time.Time{}, nil, y, true); err != nil {
				return fmt.Errorf("learner: model %s: %w", u.cfg.Name, err)
			}
		}
	}
	if !matched && first == nil {
		return &learner.RejectError{Reason: learner.ReasonUnknownID,
			Detail: fmt.Sprintf("no event %q waits for a label on %s (never seen, already labeled, or expired)", id, topic)}
	}
	return first
}

// expiryDue reports whether a model has an event waiting longer than its
// label TTL: a quiet stream must still let waiting events expire.
func (e *Engine) expiryDue(now time.Time) bool {
	for _, u := range e.states {
		if u.pending != nil && u.pending.expiryDue(now, u.cfg.LabelTTL) {
			return true
		}
	}
	return false
}

// writePending adds to batch u's events that began waiting since the last
// checkpoint, removes those learned since and those stored that expire now,
// and stores how many wait. It returns the ids that expire, for the
// pending set to forget once the batch is durable (pendingSet.stored), and
// changes nothing itself. Expiry reads only the index entries of the
// events past their TTL, not every event waiting.
func (e *Engine) writePending(batch *store.Batch, u *modelState, now time.Time) ([]string, error) {
	expired, err := u.pending.write(batch, e.buf, now, u.cfg.LabelTTL)
	if err != nil {
		return nil, fmt.Errorf("learner: checkpoint: %w", err)
	}
	count := binary.AppendUvarint(nil, uint64(u.pending.waiting-len(expired)))
	if err := batch.Set(pendingCountKey(u.cfg.Name), count); err != nil {
		return nil, fmt.Errorf("learner: checkpoint: %w", err)
	}
	return expired, nil
}

// loadPending restores u's waiting events: how many wait and when the
// oldest was scored, not the events, which stay in the store until their
// label comes. A store written before the index by time existed gets it
// first, in one batch.
func (e *Engine) loadPending(u *modelState) error {
	if u.cfg.LabelsTopic == "" {
		return nil
	}
	name := u.cfg.Name
	u.pending = newPendingSet(e.store, name, u.cfg.MaxPendingInMemory)
	data, ok, err := e.store.Get(pendingCountKey(name))
	if err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	if ok {
		n, size := binary.Uvarint(data)
		if size <= 0 {
			return fmt.Errorf("learner: model %s: %w: pending count", name, learner.ErrCorrupt)
		}
		u.pending.waiting = int(n)
	} else if err := e.indexPending(u); err != nil {
		return err
	}
	if err := u.pending.findOldestStored(); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	return nil
}

// indexPending writes the index by time and the count of u's stored
// waiting events, for a store from before they existed.
func (e *Engine) indexPending(u *modelState) error {
	name := u.cfg.Name
	batch := e.store.NewBatch()
	defer batch.Close()
	prefix := pendingKey(name, nil)
	err := e.store.Scan(prefix, func(key, value []byte) error {
		p, err := decodePending(value)
		if err != nil {
			return fmt.Errorf("learner: model %s pending event %q: %w", name, key[len(prefix):], err)
		}
		u.pending.waiting++
		return batch.Set(pendingAtKey(name, p.at, string(key[len(prefix):])), nil)
	})
	if err != nil {
		return err
	}
	if u.pending.waiting == 0 {
		return nil
	}
	if err := batch.Set(pendingCountKey(name), binary.AppendUvarint(nil, uint64(u.pending.waiting))); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	if err := batch.Commit(); err != nil {
		return fmt.Errorf("learner: model %s: indexing the events waiting for labels: %w", name, err)
	}
	e.log.Info("events waiting for labels indexed by time (once, for a store from an earlier release)", "model", name, "events", u.pending.waiting)
	return nil
}
