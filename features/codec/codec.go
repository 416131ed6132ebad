package codec

import (
	"encoding/binary"
	"fmt"
	"math"
)

// AppendFloat appends x as the 8 little-endian bytes of its IEEE 754 bits,
// so that a decoded value is bit for bit the encoded one.
func AppendFloat(dst []byte, x float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
}

// AppendString appends s prefixed with its length as a uvarint.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendBytes appends b prefixed with its length as a uvarint.
func AppendBytes(dst, b []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(b)))
	return append(dst, b...)
}

// AppendBool appends one byte, 1 for true and 0 for false.
func AppendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// AppendUvarints appends each value as a uvarint. Values must not be
// negative.
func AppendUvarints(dst []byte, values ...int) []byte {
	for _, v := range values {
		dst = binary.AppendUvarint(dst, uint64(v))
	}
	return dst
}

// Reader decodes the primitives the Append functions write from the front
// of a buffer. It remembers the first failure, an error wrapping the
// sentinel given to NewReader; after it every read returns the zero value,
// so a decoder may read a whole layout and check Err once. No input makes a
// Reader panic or allocate more than the input's length.
type Reader struct {
	buf     []byte
	err     error
	corrupt error
}

// NewReader returns a Reader of data whose failures wrap corrupt (a
// package's "corrupt state" sentinel).
func NewReader(data []byte, corrupt error) Reader {
	return Reader{buf: data, corrupt: corrupt}
}

// Err returns the first failure, or nil.
func (r *Reader) Err() error { return r.err }

// Rest returns the bytes not read yet (nil after a failure).
func (r *Reader) Rest() []byte { return r.buf }

// Fail records a failure, unless one is recorded already: an error wrapping
// the Reader's sentinel with the message format and args give. Decoders
// call it for values that are readable but invalid.
func (r *Reader) Fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{r.corrupt}, args...)...)
	}
	r.buf = nil
}

// FailWith records err, wrapped with the Reader's sentinel, unless a
// failure is recorded already. A nil err records nothing.
func (r *Reader) FailWith(err error) {
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("%w: %w", r.corrupt, err)
		r.buf = nil
	}
}

func (r *Reader) truncated(what string) { r.Fail("truncated %s", what) }

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if len(r.buf) < 1 {
		r.truncated("byte")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

// Bool reads one byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	if len(r.buf) < 1 {
		r.truncated("boolean")
		return false
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	if b > 1 {
		r.Fail("byte %d is not a boolean", b)
		return false
	}
	return b == 1
}

// Uvarint reads an unsigned varint.
func (r *Reader) Uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.truncated("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// Varint reads a signed varint.
func (r *Reader) Varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.truncated("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// Int reads an unsigned varint that must not exceed limit.
func (r *Reader) Int(limit int) int {
	v := r.Uvarint()
	if v > uint64(limit) {
		r.Fail("integer %d above %d", v, limit)
		return 0
	}
	return int(v)
}

// Count reads a length or a number of elements, which cannot exceed the
// bytes left (each element takes at least one), so that corrupt input
// cannot make a decoder allocate without bound.
func (r *Reader) Count() int {
	n := r.Uvarint()
	if n > uint64(len(r.buf)) {
		r.truncated("count")
		return 0
	}
	return int(n)
}

// Float reads a float written by AppendFloat, whatever its bits.
func (r *Reader) Float() float64 {
	if len(r.buf) < 8 {
		r.truncated("float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.buf))
	r.buf = r.buf[8:]
	return v
}

// FiniteFloat reads a float that must be neither NaN nor infinite.
func (r *Reader) FiniteFloat() float64 {
	v := r.Float()
	if math.IsNaN(v) || math.IsInf(v, 0) {
		r.Fail("float is %g", v)
		return 0
	}
	return v
}

// Bytes reads bytes written by AppendBytes. The result aliases the input.
func (r *Reader) Bytes() []byte {
	n := r.Count()
	if r.err != nil {
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}

// String reads a string written by AppendString.
func (r *Reader) String() string { return string(r.Bytes()) }

// Next reads the next n bytes as they are. The result aliases the input.
func (r *Reader) Next(n int) []byte {
	if n < 0 || len(r.buf) < n {
		r.truncated("bytes")
		return nil
	}
	b := r.buf[:n]
	r.buf = r.buf[n:]
	return b
}
