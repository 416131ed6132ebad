package engine

import (
	"bytes"
	"errors"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner/store"
)

// backHistory backs the per-entity history of u's model with the store:
// nothing is read at restore, each entity when its next event, label or
// prediction needs it, so that a restart takes as long with ten million
// entities as with one. Memory holds at most max_entities_in_memory of them
// after each checkpoint (features.History).
func (e *Engine) backHistory(u *modelState) {
	if u.hist == nil {
		return
	}
	name := u.cfg.Name
	u.hist.SetLoader(func(key []byte) ([]byte, bool, error) { return e.store.Get(historyKey(name, key)) })
}

// storedSweepChunk is how many stored entities one checkpoint looks at for
// entity_ttl: a pass over ten million takes a thousand checkpoints, each a
// few milliseconds longer.
const storedSweepChunk = 10000

// storedSweep is what one checkpoint's part of a sweep of the stored
// entities deletes, and where the next part starts (nil: the pass is over).
type storedSweep struct {
	deleted int
	next    []byte
}

var errChunkDone = errors.New("chunk done")

// sweepStored adds to batch the deletion of the stored entities of u's
// model not observed for entity_ttl, looking at up to storedSweepChunk of
// them from where the pass under way stopped (a pass starts when the
// History's own sweep is due). An entity in memory is left to the History,
// whose copy is the newer.
func (e *Engine) sweepStored(batch *store.Batch, u *modelState, now time.Time) (storedSweep, error) {
	var sw storedSweep
	prefix := historyKey(u.cfg.Name, nil)
	lower := u.sweepFrom
	if lower == nil {
		lower = prefix
	}
	cutoff := now.Add(-u.hist.TTL())
	seen := 0
	err := e.store.ScanRange(lower, store.PrefixEnd(prefix), func(key, value []byte) error {
		if seen == storedSweepChunk {
			sw.next = bytes.Clone(key)
			return errChunkDone
		}
		seen++
		if !features.StoredIdle(value, cutoff) || u.hist.Holds(key[len(prefix):]) {
			return nil
		}
		sw.deleted++
		return batch.Delete(key)
	})
	if err != nil && !errors.Is(err, errChunkDone) {
		return storedSweep{}, err
	}
	return sw, nil
}
