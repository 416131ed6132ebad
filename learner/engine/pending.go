package engine

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/features/codec"
	"github.com/eddyhq/eddy/learner"
)

// pendingEvent is an event scored without a label, waiting for it.
type pendingEvent struct {
	key        []byte
	fields     []features.Field   // the event's fields and derived features at event time
	prediction learner.Prediction // made when the event arrived
	at         time.Time          // when it was scored

	// The arrival order of the set's events, oldest first.
	id         string
	queued     bool
	prev, next *pendingEvent
}

// pendingSet holds a model's waiting events; changes reach Pebble at the
// next checkpoint. Besides the map by id, the events form a list in arrival
// order: the label TTL is the same for all of them, so they expire in that
// order, and expiry looks only at the oldest.
type pendingSet struct {
	events         map[string]*pendingEvent
	oldest, newest *pendingEvent
	queued         int // events in the list; fewer than len(events) after a restore
	added          map[string]struct{}
	removed        map[string]struct{}
}

func newPendingSet() *pendingSet {
	return &pendingSet{events: map[string]*pendingEvent{}, added: map[string]struct{}{}, removed: map[string]struct{}{}}
}

// put adds the event id, the newest, replacing a waiting one of the same id.
func (s *pendingSet) put(id string, p *pendingEvent) {
	if old := s.events[id]; old != nil {
		s.unlink(old)
	}
	s.events[id] = p
	p.id = id
	s.append(p)
	s.added[id] = struct{}{}
	delete(s.removed, id)
}

func (s *pendingSet) take(id string) *pendingEvent {
	p := s.events[id]
	if p != nil {
		s.unlink(p)
		delete(s.events, id)
		delete(s.added, id)
		s.removed[id] = struct{}{}
	}
	return p
}

// dueToExpire returns the ids of the events scored more than ttl before
// now, oldest first, without taking them (nil when none is). It visits only
// those and the oldest one left.
func (s *pendingSet) dueToExpire(now time.Time, ttl time.Duration) []string {
	if !s.expiryDue(now, ttl) {
		return nil
	}
	var ids []string
	for p := s.oldest; p != nil && now.Sub(p.at) > ttl; p = p.next {
		ids = append(ids, p.id)
	}
	return ids
}

// stored records that a checkpoint stored the set's changes and removed
// the expired events: they are taken, and nothing is left to write.
func (s *pendingSet) stored(expired []string) {
	for _, id := range expired {
		s.take(id)
	}
	clear(s.added)
	clear(s.removed)
}

// expiryDue reports whether an event has waited more than ttl at now.
func (s *pendingSet) expiryDue(now time.Time, ttl time.Duration) bool {
	if s.queued != len(s.events) {
		s.requeue()
	}
	return s.oldest != nil && now.Sub(s.oldest.at) > ttl
}

// requeue puts every event in the list, ordered by the time it was scored:
// events restored from Pebble (which holds them by id) are not in it yet.
func (s *pendingSet) requeue() {
	all := make([]*pendingEvent, 0, len(s.events))
	for id, p := range s.events {
		p.id = id
		all = append(all, p)
	}
	slices.SortFunc(all, func(a, b *pendingEvent) int { return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.id, b.id)) })
	s.oldest, s.newest, s.queued = nil, nil, 0
	for _, p := range all {
		p.queued, p.prev, p.next = false, nil, nil
		s.append(p)
	}
}

func (s *pendingSet) append(p *pendingEvent) {
	p.prev, p.next, p.queued = s.newest, nil, true
	if s.newest != nil {
		s.newest.next = p
	} else {
		s.oldest = p
	}
	s.newest = p
	s.queued++
}

func (s *pendingSet) unlink(p *pendingEvent) {
	if !p.queued {
		return
	}
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
	p.prev, p.next, p.queued = nil, nil, false
	s.queued--
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
