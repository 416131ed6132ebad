package engine

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/features/codec"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// pendingEvent is an event scored without a label, waiting for it.
type pendingEvent struct {
	key        []byte
	fields     []features.Field   // the event's fields and derived features at event time
	prediction learner.Prediction // made when the event arrived
	at         time.Time          // when it was scored

	// The arrival order of the events in memory, oldest first.
	id         string
	prev, next *pendingEvent
}

// pendingSet holds a model's waiting events. Each checkpoint stores those
// that began waiting since the last one under pending/<model>/<id>, with an
// entry in an index by the time each was scored
// (pending-at/<model>/<time><id>): the label TTL is the same for every
// event, so they expire in that order, and expiry reads only the index
// entries due. Memory holds the events that began waiting since the last
// checkpoint and, after it, at most max of the newest; a label for one
// only stored reads it back. Engine goroutine only.
type pendingSet struct {
	st    *store.Store
	model string
	max   int // events held in memory after a checkpoint; -1: all

	events         map[string]*pendingEvent // in memory
	oldest, newest *pendingEvent            // the events in memory, in arrival order
	added          map[string]struct{}      // put since the last checkpoint: to store
	removed        map[string]struct{}      // taken since: their stored event to delete
	unindexed      map[string]struct{}      // index keys to delete: taken or replaced since
	waiting        int                      // events waiting, stored or not
	oldestStored   time.Time                // when the oldest stored event was scored; zero: none stored
}

func newPendingSet(st *store.Store, model string, max int) *pendingSet {
	return &pendingSet{st: st, model: model, max: cmp.Or(max, learner.DefaultMaxPendingInMemory),
		events: map[string]*pendingEvent{}, added: map[string]struct{}{}, removed: map[string]struct{}{}, unindexed: map[string]struct{}{}}
}

// lookup returns the event id waiting, from memory or else the store, and
// whether it is in memory; nil when none waits.
func (s *pendingSet) lookup(id string) (*pendingEvent, bool, error) {
	if p := s.events[id]; p != nil {
		return p, true, nil
	}
	if _, gone := s.removed[id]; gone {
		return nil, false, nil
	}
	data, ok, err := s.st.Get(pendingKey(s.model, []byte(id)))
	if err != nil || !ok {
		return nil, false, err
	}
	p, err := decodePending(data)
	if err != nil {
		return nil, false, fmt.Errorf("model %s pending event %q: %w", s.model, id, err)
	}
	p.id = id
	return p, false, nil
}

// put adds the event id, the newest, replacing a waiting one of the same
// id (read from the store when it is not in memory, to drop its index
// entry).
func (s *pendingSet) put(id string, p *pendingEvent) error {
	old, inMemory, err := s.lookup(id)
	if err != nil {
		return err
	}
	if old != nil {
		s.unindexed[string(pendingAtKey(s.model, old.at, id))] = struct{}{}
		if inMemory {
			s.unlink(old)
		}
	} else {
		s.waiting++
	}
	s.events[id] = p
	p.id = id
	s.append(p)
	s.added[id] = struct{}{}
	delete(s.removed, id)
	return nil
}

// take removes p, the event id that lookup returned.
func (s *pendingSet) take(id string, p *pendingEvent, inMemory bool) {
	if inMemory {
		s.unlink(p)
		delete(s.events, id)
	}
	delete(s.added, id)
	s.removed[id] = struct{}{}
	s.unindexed[string(pendingAtKey(s.model, p.at, id))] = struct{}{}
	s.waiting--
}

// maxExpiredPerCheckpoint bounds the events one checkpoint expires: after
// a long stop, a backlog of millions expires over several checkpoints
// instead of in one batch.
const maxExpiredPerCheckpoint = 100_000

// write adds to batch the events that began waiting since the last
// checkpoint (and their index entries), the deletion of those taken since,
// and of those stored that have waited more than ttl at now, oldest first,
// read from the index: only the entries due, and up to
// maxExpiredPerCheckpoint. It returns the ids that expire and changes
// nothing itself: stored applies it once the batch is durable.
func (s *pendingSet) write(batch *store.Batch, buf []byte, now time.Time, ttl time.Duration) ([]string, error) {
	// Those not stored yet that are due already expire without being
	// stored: they are in memory, oldest first, among the stored ones.
	var expired []string
	var unstored map[string]bool
	for p := s.oldest; p != nil && now.Sub(p.at) > ttl && len(expired) < maxExpiredPerCheckpoint; p = p.next {
		if _, added := s.added[p.id]; added {
			if unstored == nil {
				unstored = make(map[string]bool)
			}
			unstored[p.id] = true
			expired = append(expired, p.id)
			if err := batch.Delete(pendingKey(s.model, []byte(p.id))); err != nil { // an older one it replaced
				return nil, err
			}
		}
	}
	for id := range s.added {
		if unstored[id] {
			continue
		}
		p := s.events[id]
		buf = p.appendState(buf[:0])
		if err := batch.Set(pendingKey(s.model, []byte(id)), buf); err != nil {
			return nil, err
		}
		if err := batch.Set(pendingAtKey(s.model, p.at, id), nil); err != nil {
			return nil, err
		}
	}
	for id := range s.removed {
		if err := batch.Delete(pendingKey(s.model, []byte(id))); err != nil {
			return nil, err
		}
	}
	for key := range s.unindexed {
		if err := batch.Delete([]byte(key)); err != nil {
			return nil, err
		}
	}
	if s.oldestStored.IsZero() || now.Sub(s.oldestStored) <= ttl {
		return expired, nil
	}
	prefix := pendingAtPrefix(s.model)
	err := s.st.ScanRange(prefix, pendingAtKey(s.model, now.Add(-ttl), ""), func(key, _ []byte) error {
		if len(expired) == maxExpiredPerCheckpoint {
			return errChunkDone
		}
		if _, gone := s.unindexed[string(key)]; gone {
			return nil
		}
		id := string(key[len(prefix)+8:])
		if _, gone := s.removed[id]; gone {
			return nil
		}
		expired = append(expired, id)
		if err := batch.Delete(key); err != nil {
			return err
		}
		return batch.Delete(pendingKey(s.model, []byte(id)))
	})
	if err != nil && !errors.Is(err, errChunkDone) {
		return nil, err
	}
	return expired, nil
}

// stored records that a checkpoint stored what write added, and removed
// the expired events: nothing is left to write, and the oldest events in
// memory beyond the bound leave it (they wait in the store).
func (s *pendingSet) stored(expired []string) error {
	for _, id := range expired {
		if p := s.events[id]; p != nil {
			s.unlink(p)
			delete(s.events, id)
		}
	}
	s.waiting -= len(expired)
	clear(s.added)
	clear(s.removed)
	clear(s.unindexed)
	for s.max >= 0 && len(s.events) > s.max {
		p := s.oldest
		s.unlink(p)
		delete(s.events, p.id)
	}
	return s.findOldestStored()
}

// findOldestStored reads when the oldest stored event was scored: the
// first index entry.
func (s *pendingSet) findOldestStored() error {
	s.oldestStored = time.Time{}
	prefix := pendingAtPrefix(s.model)
	err := s.st.Scan(prefix, func(key, _ []byte) error {
		if len(key) >= len(prefix)+8 {
			s.oldestStored = time.Unix(0, int64(binary.BigEndian.Uint64(key[len(prefix):])^1<<63))
		}
		return errChunkDone
	})
	if errors.Is(err, errChunkDone) {
		err = nil
	}
	return err
}

// expiryDue reports whether an event has waited more than ttl at now: the
// oldest stored, or the oldest in memory.
func (s *pendingSet) expiryDue(now time.Time, ttl time.Duration) bool {
	due := func(at time.Time) bool { return !at.IsZero() && now.Sub(at) > ttl }
	return due(s.oldestStored) || (s.oldest != nil && due(s.oldest.at))
}

func (s *pendingSet) append(p *pendingEvent) {
	p.prev, p.next = s.newest, nil
	if s.newest != nil {
		s.newest.next = p
	} else {
		s.oldest = p
	}
	s.newest = p
}

func (s *pendingSet) unlink(p *pendingEvent) {
	if p.prev != nil {
		p.prev.next = p.next
	} else {
		s.oldest = p.next
	}
	if p.next != nil {
		p.next.prev = p.prev
	} else {
		s.newest = p.prev
	}
	p.prev, p.next = nil, nil
}

// copyFields deep-copies fields: the consumer's buffers are reused.
func copyFields(fields []features.Field) []features.Field {
	out := make([]features.Field, len(fields))
	for i, f := range fields {
		out[i] = features.Field{Name: append([]byte(nil), f.Name...), Kind: f.Kind, Num: f.Num, Str: append([]byte(nil), f.Str...)}
	}
	return out
}

// pendingVersion is the first byte of an encoded waiting event. Layout:
// version u8 | entity key bytes | scored at (Unix nanoseconds, varint) |
// score float | predicted output varint | field count, per field: name
// bytes, kind u8, number float, string bytes.
const pendingVersion = 1

func (p *pendingEvent) appendState(dst []byte) []byte {
	dst = append(dst, pendingVersion)
	dst = codec.AppendBytes(dst, p.key)
	dst = binary.AppendVarint(dst, p.at.UnixNano())
	dst = codec.AppendFloat(dst, p.prediction.Score)
	dst = binary.AppendVarint(dst, int64(p.prediction.Output))
	dst = binary.AppendUvarint(dst, uint64(len(p.fields)))
	for _, f := range p.fields {
		dst = codec.AppendBytes(dst, f.Name)
		dst = append(dst, byte(f.Kind))
		dst = codec.AppendFloat(dst, f.Num)
		dst = codec.AppendBytes(dst, f.Str)
	}
	return dst
}

func decodePending(data []byte) (*pendingEvent, error) {
	r := codec.NewReader(data, learner.ErrCorrupt)
	if r.Byte() != pendingVersion {
		return nil, errors.Join(learner.ErrCorrupt, errors.New("unknown pending event version"))
	}
	p := &pendingEvent{key: append([]byte(nil), r.Bytes()...)}
	p.at = time.Unix(0, r.Varint())
	p.prediction.Score = r.Float()
	p.prediction.Output = int(r.Varint())
	for n := r.Count(); n > 0 && r.Err() == nil; n-- {
		f := features.Field{Name: append([]byte(nil), r.Bytes()...)}
		f.Kind = features.Kind(r.Byte())
		f.Num = r.Float()
		f.Str = append([]byte(nil), r.Bytes()...)
		if math.IsNaN(f.Num) || math.IsInf(f.Num, 0) {
			return nil, fmt.Errorf("%w: non-finite pending field", learner.ErrCorrupt)
		}
		p.fields = append(p.fields, f)
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	return p, nil
}
