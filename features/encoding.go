package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// encodingVersion is the first byte of an encoded Transformer. Bump it when
// the layout changes and keep decoding the old layouts.
const encodingVersion = 1

// ErrCorrupt is returned when an encoded Transformer cannot be decoded.
var ErrCorrupt = errors.New("features: corrupt encoding")

// AppendBinary appends the versioned binary encoding of t's configuration and
// state to dst. Layout (little endian, lengths as uvarints):
//
//	version u8 | scaler string | hash_bits uvarint | max_numeric uvarint |
//	ignore count, strings | slot count, per slot: name string, count f64,
//	mean f64, variance f64
func (t *Transformer) AppendBinary(dst []byte) []byte {
	dst = append(dst, encodingVersion)
	dst = appendString(dst, string(t.cfg.Scaler))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.HashBits))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.MaxNumeric))
	dst = binary.AppendUvarint(dst, uint64(len(t.cfg.Ignore)))
	for _, name := range t.cfg.Ignore {
		dst = appendString(dst, name)
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.names)))
	for i, name := range t.names {
		dst = appendString(dst, name)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(t.count[i]))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(t.mean[i]))
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(t.vars[i]))
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// DecodeTransformer decodes a Transformer encoded by AppendBinary from the
// start of data and returns the bytes that follow it.
func DecodeTransformer(data []byte) (*Transformer, []byte, error) {
	r := reader{buf: data}
	if v := r.byte(); v != encodingVersion {
		if r.err == nil {
			r.err = fmt.Errorf("%w: unknown transformer encoding version %d", ErrCorrupt, v)
		}
		return nil, nil, r.err
	}
	var cfg Config
	cfg.Scaler = Scaler(r.string())
	cfg.HashBits = int(r.uvarint())
	cfg.MaxNumeric = int(r.uvarint())
	for n := r.count(); n > 0; n-- {
		cfg.Ignore = append(cfg.Ignore, r.string())
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	t := New(cfg)
	for n := r.count(); n > 0 && r.err == nil; n-- {
		name := r.string()
		if r.err != nil {
			break
		}
		slot, err := t.addSlot(name)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
		}
		t.count[slot], t.mean[slot], t.vars[slot] = r.float(), r.float(), r.float()
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return t, r.buf, nil
}

// reader decodes the primitives of the encoding, remembering the first error.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	r.buf = nil
}

func (r *reader) byte() byte {
	if len(r.buf) < 1 {
		r.fail("byte")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a length that must fit in the remaining bytes, so corrupt input
// cannot make the decoder allocate without bound.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail("count")
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.count()
	if r.err != nil || n > len(r.buf) {
		r.fail("string")
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}

func (r *reader) float() float64 {
	if len(r.buf) < 8 {
		r.fail("float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.buf))
	r.buf = r.buf[8:]
	return v
}
