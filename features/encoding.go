package features

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/eddyhq/eddy/features/codec"
)

// encodingVersion is the first byte of an encoded Transformer. Bump it when
// the layout changes and keep decoding the old layouts: version 1 (FNV
// hashing, no namespaces) and version 2 still load.
const encodingVersion = 3

// ErrCorrupt is returned when an encoded Transformer cannot be decoded.
var ErrCorrupt = errors.New("features: corrupt encoding")

// AppendState appends the versioned binary encoding of t's configuration and
// state to dst. Layout of version 3 (little endian, lengths as uvarints):
//
//	version u8 | scaler string | hash_bits uvarint | max_numeric uvarint |
//	hash function u8 | cross base uvarint | ignore count, strings |
//	namespace count, per namespace: name, field count, fields |
//	interaction count, pairs of strings | slot count, per slot: name
//	string, count f64, mean f64, variance f64
//
// The cross base is the max_numeric that interactions hash indices against
// (the model's first, kept across SetMaxNumeric). Version 2 is version 3
// without it (the cross base is max_numeric): AppendState writes version 2
// for a model never resized, so that the release before version 3 reads
// it. Version 1 had neither the hash function byte nor namespaces and
// interactions.
func (t *Transformer) AppendState(dst []byte) []byte {
	resized := t.crossBase != t.cfg.MaxNumeric
	if resized {
		dst = append(dst, encodingVersion)
	} else {
		dst = append(dst, 2)
	}
	dst = codec.AppendString(dst, string(t.cfg.Scaler))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.HashBits))
	dst = binary.AppendUvarint(dst, uint64(t.cfg.MaxNumeric))
	dst = append(dst, byte(t.hash))
	if resized {
		dst = binary.AppendUvarint(dst, uint64(t.crossBase))
	}
	dst = appendStrings(dst, t.cfg.Ignore)
	dst = binary.AppendUvarint(dst, uint64(len(t.nsName)))
	for _, ns := range t.nsName {
		dst = codec.AppendString(dst, ns)
		dst = appendStrings(dst, t.cfg.Namespaces[ns])
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.cfg.Interactions)))
	for _, p := range t.cfg.Interactions {
		dst = codec.AppendString(dst, p[0])
		dst = codec.AppendString(dst, p[1])
	}
	dst = binary.AppendUvarint(dst, uint64(len(t.names)))
	for i, name := range t.names {
		dst = codec.AppendString(dst, name)
		dst = codec.AppendFloat(dst, t.count[i])
		dst = codec.AppendFloat(dst, t.mean[i])
		dst = codec.AppendFloat(dst, t.vars[i])
	}
	return dst
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = codec.AppendString(dst, s)
	}
	return dst
}

func readStrings(r *codec.Reader) []string {
	var out []string
	for n := r.Count(); n > 0 && r.Err() == nil; n-- {
		out = append(out, r.String())
	}
	return out
}

// DecodeTransformer decodes a Transformer encoded by AppendState (any
// supported version) from the start of data and returns the bytes that
// follow it.
func DecodeTransformer(data []byte) (*Transformer, []byte, error) {
	r := codec.NewReader(data, ErrCorrupt)
	version := r.Byte()
	if r.Err() != nil {
		return nil, nil, r.Err()
	}
	if version < 1 || version > encodingVersion {
		return nil, nil, fmt.Errorf("%w: unknown transformer encoding version %d", ErrCorrupt, version)
	}
	var cfg Config
	cfg.Scaler = Scaler(r.String())
	cfg.HashBits = int(r.Uvarint())
	cfg.MaxNumeric = int(r.Uvarint())
	hash := hashFNV
	if version >= 2 {
		hash = hashFunc(r.Byte())
	}
	crossBase := cfg.MaxNumeric
	if version >= 3 {
		crossBase = int(r.Uvarint())
	}
	cfg.Ignore = readStrings(&r)
	if version >= 2 {
		if n := r.Count(); n > 0 {
			cfg.Namespaces = make(map[string][]string, n)
			for ; n > 0 && r.Err() == nil; n-- {
				ns := r.String()
				cfg.Namespaces[ns] = readStrings(&r)
			}
		}
		for n := r.Count(); n > 0 && r.Err() == nil; n-- {
			cfg.Interactions = append(cfg.Interactions, [2]string{r.String(), r.String()})
		}
	}
	if r.Err() != nil {
		return nil, nil, r.Err()
	}
	if hash != hashFNV && hash != hashXX {
		return nil, nil, fmt.Errorf("%w: unknown hash function %d", ErrCorrupt, hash)
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if crossBase < 1 || crossBase > maxMaxNumeric {
		return nil, nil, fmt.Errorf("%w: cross base %d", ErrCorrupt, crossBase)
	}
	t := New(cfg)
	t.hash = hash
	t.crossBase = crossBase
	for n := r.Count(); n > 0 && r.Err() == nil; n-- {
		name := r.String()
		if r.Err() != nil {
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
		t.setInfo(name, fi)
		slot := int(fi.slot)
		t.count[slot], t.mean[slot], t.vars[slot] = r.Float(), r.Float(), r.Float()
	}
	if r.Err() != nil {
		return nil, nil, r.Err()
	}
	return t, r.Rest(), nil
}

// SameLayout reports whether a and b put every feature at the same index
// (the settings that weights depend on), naming the first difference.
// MaxNumeric is not compared: a stored model may be given more (or fewer,
// down to the slots it uses) numeric slots with SetMaxNumeric and Reindex.
func SameLayout(a, b Config) (string, bool) {
	switch {
	case a.Scaler != b.Scaler:
		return fmt.Sprintf("scaler %s vs %s", a.Scaler, b.Scaler), false
	case a.HashBits != b.HashBits:
		return fmt.Sprintf("hash_bits %d vs %d", a.HashBits, b.HashBits), false
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
