package drift

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The encoding of a detector's state starts with one byte: the kind in the
// high nibble, the format version in the low one. The configuration follows,
// then the state, in the order each detector's AppendBinary writes them:
// integers as uvarints, floats as 8 little-endian bytes of their IEEE 754
// bits (so a restored detector continues bit for bit), booleans as one byte.
const formatVersion = 1

// Kind codes of the header byte. They are part of the stored format: never
// renumber them.
const (
	codeADWIN       = 1
	codePageHinkley = 2
	codeDDM         = 3
	codeEDDM        = 4
	codeKSWIN       = 5
)

func header(code byte) byte { return code<<4 | formatVersion }

// Decode restores a detector from the start of data, as one of this
// package's AppendBinary methods wrote it, and returns the bytes after it.
// A restored detector continues exactly as the encoded one would have. An
// encoding that is truncated, corrupt or of an unknown version is an error
// wrapping ErrCorruptState; Decode never panics.
func Decode(data []byte) (Detector, []byte, error) {
	if len(data) == 0 {
		return nil, nil, fmt.Errorf("%w: empty", ErrCorruptState)
	}
	code, version := data[0]>>4, data[0]&0x0f
	if version != formatVersion {
		return nil, nil, fmt.Errorf("%w: format version %d, want %d", ErrCorruptState, version, formatVersion)
	}
	r := &reader{data: data[1:]}
	var (
		d   Detector
		err error
	)
	switch code {
	case codeADWIN:
		d, err = decodeADWIN(r)
	case codePageHinkley:
		d, err = decodePageHinkley(r)
	case codeDDM:
		d, err = decodeDDM(r)
	case codeEDDM:
		d, err = decodeEDDM(r)
	case codeKSWIN:
		d, err = decodeKSWIN(r)
	default:
		return nil, nil, fmt.Errorf("%w: unknown detector code %d", ErrCorruptState, code)
	}
	if err == nil {
		err = r.err
	}
	if err != nil {
		return nil, nil, err
	}
	return d, r.data, nil
}

func appendFloat(dst []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendUvarints(dst []byte, values ...int) []byte {
	for _, v := range values {
		dst = binary.AppendUvarint(dst, uint64(v))
	}
	return dst
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// reader decodes the primitives of the format, remembering the first
// failure; after one, every read returns a zero value.
type reader struct {
	data []byte
	err  error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorruptState}, args...)...)
	}
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.data)
	if n <= 0 {
		r.fail("%s: truncated or overlong integer", what)
		return 0
	}
	r.data = r.data[n:]
	return v
}

// int reads a uvarint that must not exceed max.
func (r *reader) int(what string, max int) int {
	v := r.uvarint(what)
	if v > uint64(max) {
		r.fail("%s = %d, above %d", what, v, max)
		return 0
	}
	return int(v)
}

// float reads a float that must be finite.
func (r *reader) float(what string) float64 {
	if r.err != nil {
		return 0
	}
	if len(r.data) < 8 {
		r.fail("%s: truncated", what)
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.data))
	r.data = r.data[8:]
	if !finite(v) {
		r.fail("%s is %g", what, v)
		return 0
	}
	return v
}

func (r *reader) bool(what string) bool {
	if r.err != nil {
		return false
	}
	if len(r.data) < 1 {
		r.fail("%s: truncated", what)
		return false
	}
	b := r.data[0]
	r.data = r.data[1:]
	if b > 1 {
		r.fail("%s: byte %d is not a boolean", what, b)
		return false
	}
	return b == 1
}

// bytes reads n bytes.
func (r *reader) bytes(what string, n int) []byte {
	if r.err != nil {
		return nil
	}
	if len(r.data) < n {
		r.fail("%s: truncated", what)
		return nil
	}
	b := r.data[:n]
	r.data = r.data[n:]
	return b
}

// config wraps a configuration that fails Validate as corrupt state.
func (r *reader) config(err error) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%w: %w", ErrCorruptState, err)
	}
}
