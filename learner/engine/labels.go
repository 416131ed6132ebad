package engine

import (
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
		p := u.pending.events[string(id)]
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
		u.pending.take(string(id))
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
// checkpoint, and removes those learned since and those that expire now
// (after the additions: an event that arrived and expired since the last
// checkpoint ends deleted). It returns the ids that expire, for the
// pending set to forget once the batch is durable (pendingSet.stored), and
// changes nothing itself. Expiry looks only at the events past their TTL
// and the oldest one left, not at every event waiting.
func (e *Engine) writePending(batch *store.Batch, u *modelState, now time.Time) ([]string, error) {
	ps := u.pending
	for id := range ps.added {
		e.buf = ps.events[id].appendState(e.buf[:0])
		if err := batch.Set(pendingKey(u.cfg.Name, []byte(id)), e.buf); err != nil {
			return nil, fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	for id := range ps.removed {
		if err := batch.Delete(pendingKey(u.cfg.Name, []byte(id))); err != nil {
			return nil, fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	expired := ps.dueToExpire(now, u.cfg.LabelTTL)
	for _, id := range expired {
		if err := batch.Delete(pendingKey(u.cfg.Name, []byte(id))); err != nil {
			return nil, fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	return expired, nil
}

// loadPending restores u's waiting events.
func (e *Engine) loadPending(u *modelState) error {
	if u.cfg.LabelsTopic == "" {
		return nil
	}
	u.pending = newPendingSet()
	prefix := pendingKey(u.cfg.Name, nil)
	return e.store.Scan(prefix, func(key, value []byte) error {
		p, err := decodePending(value)
		if err != nil {
			return fmt.Errorf("learner: model %s pending event %q: %w", u.cfg.Name, key[len(prefix):], err)
		}
		u.pending.events[string(key[len(prefix):])] = p
		return nil
	})
}
