package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// encodingVersion is the first byte of an encoded Transformer. Bump it when
// the layout changes and keep decoding the old layouts: version 1 (FNV
// hashing, no namespaces) still loads.
const encodingVersion = 2

// ErrCorrupt is returned when an encoded Transformer cannot be decoded.
var ErrCorrupt = errors.New("features: corrupt encoding")

// AppendBinary appends the versioned binary encoding of t's configuration and
// state to dst. Layout of version 2 (little endian, lengths as uvarints):
//
//	version u8 | scaler string | hash_bits uvarint | max_numeric uvarint |
//	hash function u8 | ignore count, strings | namespace count, per
//	namespace: name, field count, fields | interaction count, pairs of
//	strings | slot count, per slot: name string, count f64, mean f64,
//	variance f64
//
// Version 1 had neither the hash function byte nor namespaces and
// interactions.
func (t *Transformer) AppendBinary(dst []byte) []byte {
	dst = append(dst, encodingVersion)
	dst = appendString(dst, string(t.cfg.Scaler))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.HashBits))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.MaxNumeric))
	dst = append(dst, byte(t.hash))
	dst = appendStrings(dst, t.cfg.Ignore)
	dst = binary.AppendUvarint(dst, uint64(len(t.nsName)))
	for _, ns := range t.nsName {
		dst = appendString(dst, ns)
		dst = appendStrings(dst, t.cfg.Namespaces[ns])
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.cfg.Interactions)))
	for _, p := range t.cfg.Interactions {
		dst = appendString(dst, p[0])
		dst = appendString(dst, p[1])
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

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = appendString(dst, s)
	}
	return dst
}

// DecodeTransformer decodes a Transformer encoded by AppendBinary (any
// supported version) from the start of data and returns the bytes that
// follow it.
func DecodeTransformer(data []byte) (*Transformer, []byte, error) {
	r := reader{buf: data}
	version := r.byte()
	if r.err != nil {
		return nil, nil, r.err
	}
	if version != 1 && version != 2 {
		return nil, nil, fmt.Errorf("%w: unknown transformer encoding version %d", ErrCorrupt, version)
	}
	var cfg Config
	cfg.Scaler = Scaler(r.string())
	cfg.HashBits = int(r.uvarint())
	cfg.MaxNumeric = int(r.uvarint())
	hash := hashFNV
	if version >= 2 {
		hash = hashFunc(r.byte())
	}
	cfg.Ignore = r.strings()
	if version >= 2 {
		if n := r.count(); n > 0 {
			cfg.Namespaces = make(map[string][]string, n)
			for ; n > 0 && r.err == nil; n-- {
				ns := r.string()
				cfg.Namespaces[ns] = r.strings()
			}
		}
		for n := r.count(); n > 0 && r.err == nil; n-- {
			cfg.Interactions = append(cfg.Interactions, [2]string{r.string(), r.string()})
		}
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	if hash != hashFNV && hash != hashXX {
		return nil, nil, fmt.Errorf("%w: unknown hash function %d", ErrCorrupt, hash)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	t := New(cfg)
	t.hash = hash
	for n := r.count(); n > 0 && r.err == nil; n-- {
		name := r.string()
		if r.err != nil {
			break
		}
		if len(t.names) >= cfg.MaxNumeric {
			return nil, nil, fmt.Errorf("%w: more slots than max_numeric_features", ErrCorrupt)
		}
		fi := t.lookup(name)
		if fi.slot >= 0 {
			return nil, nil, fmt.Errorf("%w: slot %q twice", ErrCorrupt, name)
		}
		fi.slot = int32(t.addSlot(name))
		t.info[name] = fi
		slot := int(fi.slot)
		t.count[slot], t.mean[slot], t.vars[slot] = r.float(), r.float(), r.float()
	}
	if r.err != nil {
		return nil, nil, r.err
	}
	return t, r.buf, nil
}

// SameLayout reports whether a and b put every feature at the same index
// (the settings that weights depend on), naming the first difference.
func SameLayout(a, b Config) (string, bool) {
	switch {
	case a.Scaler != b.Scaler:
		return fmt.Sprintf("scaler %s vs %s", a.Scaler, b.Scaler), false
	case a.HashBits != b.HashBits:
		return fmt.Sprintf("hash_bits %d vs %d", a.HashBits, b.HashBits), false
	case a.MaxNumeric != b.MaxNumeric:
		return fmt.Sprintf("max_numeric_features %d vs %d", a.MaxNumeric, b.MaxNumeric), false
	case !slices.Equal(a.Interactions, b.Interactions):
		return fmt.Sprintf("interactions %v vs %v", a.Interactions, b.Interactions), false
	}
	if len(a.Namespaces) != len(b.Namespaces) {
		return "namespaces differ", false
	}
	for ns, names := range a.Namespaces {
		if !slices.Equal(names, b.Namespaces[ns]) {
			return fmt.Sprintf("namespace %q differs", ns), false
		}
	}
	return "", true
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

func (r *reader) strings() []string {
	var out []string
	for n := r.count(); n > 0 && r.err == nil; n-- {
		out = append(out, r.string())
	}
	return out
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
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
