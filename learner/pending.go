package learner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/eddyhq/eddy/features"
)

// ReasonUnknownID is the reject reason of a delayed label whose event is not
// waiting: never seen, already learned (a duplicate label) or expired.
const ReasonUnknownID = "unknown_id"

// pendingEvent is an event scored without a label, waiting for it.
type pendingEvent struct {
	key       []byte
	fields    []features.Field // the event's fields and derived features at event time
	score     float64
	predicted int
	at        time.Time // when it was scored
}

// pendingSet holds a model's waiting events; changes reach Pebble at the
// next checkpoint.
type pendingSet struct {
	events  map[string]*pendingEvent
	added   map[string]struct{}
	removed map[string]struct{}
}

func newPendingSet() *pendingSet {
	return &pendingSet{events: map[string]*pendingEvent{}, added: map[string]struct{}{}, removed: map[string]struct{}{}}
}

func (s *pendingSet) put(id string, p *pendingEvent) {
	s.events[id] = p
	s.added[id] = struct{}{}
	delete(s.removed, id)
}

func (s *pendingSet) take(id string) *pendingEvent {
	p := s.events[id]
	if p != nil {
		delete(s.events, id)
		delete(s.added, id)
		s.removed[id] = struct{}{}
	}
	return p
}

// copyFields deep-copies fields: the consumer's buffers are reused.
func copyFields(fields []features.Field) []features.Field {
	out := make([]features.Field, len(fields))
	for i, f := range fields {
		out[i] = features.Field{Name: append([]byte(nil), f.Name...), Kind: f.Kind, Num: f.Num, Str: append([]byte(nil), f.Str...)}
	}
	return out
}

func pendingKey(model string, id []byte) []byte {
	return append([]byte("pending/"+model+"/"), id...)
}

const pendingVersion = 1

func (p *pendingEvent) appendBinary(dst []byte) []byte {
	dst = append(dst, pendingVersion)
	dst = appendBytes(dst, p.key)
	dst = binary.AppendVarint(dst, p.at.UnixNano())
	dst = appendFloat(dst, p.score)
	dst = binary.AppendVarint(dst, int64(p.predicted))
	dst = binary.AppendUvarint(dst, uint64(len(p.fields)))
	for _, f := range p.fields {
		dst = appendBytes(dst, f.Name)
		dst = append(dst, byte(f.Kind))
		dst = appendFloat(dst, f.Num)
		dst = appendBytes(dst, f.Str)
	}
	return dst
}

func decodePending(data []byte) (*pendingEvent, error) {
	r := reader{buf: data}
	if r.byte() != pendingVersion {
		return nil, errors.Join(ErrCorrupt, errors.New("unknown pending event version"))
	}
	p := &pendingEvent{key: append([]byte(nil), r.bytes()...)}
	p.at = time.Unix(0, r.varint())
	p.score = r.float()
	p.predicted = int(r.varint())
	for n := r.count(); n > 0 && r.err == nil; n-- {
		f := features.Field{Name: append([]byte(nil), r.bytes()...)}
		f.Kind = features.Kind(r.byte())
		f.Num = r.float()
		f.Str = append([]byte(nil), r.bytes()...)
		if math.IsNaN(f.Num) || math.IsInf(f.Num, 0) {
			return nil, fmt.Errorf("%w: non-finite pending field", ErrCorrupt)
		}
		p.fields = append(p.fields, f)
	}
	if r.err != nil {
		return nil, r.err
	}
	return p, nil
}
