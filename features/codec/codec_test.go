package codec

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

var errCorrupt = errors.New("test: corrupt state")

// layout writes one of everything and reads it back.
func layout() []byte {
	dst := []byte{7}
	dst = AppendBool(dst, true)
	dst = binary.AppendUvarint(dst, 300)
	dst = binary.AppendVarint(dst, -5)
	dst = AppendUvarints(dst, 2, 1<<20)
	dst = AppendFloat(dst, math.Copysign(0, -1))
	dst = AppendFloat(dst, math.NaN())
	dst = AppendString(dst, "model")
	dst = AppendBytes(dst, []byte{1, 2, 3})
	return append(dst, "raw"...)
}

func read(r *Reader) []any {
	return []any{r.Byte(), r.Bool(), r.Uvarint(), r.Varint(), r.Int(2), r.Int(1 << 20), math.Float64bits(r.FiniteFloat()),
		math.IsNaN(r.Float()), r.String(), string(r.Bytes()), string(r.Next(3))}
}

func TestWhatIsAppendedReadsBackExactly(t *testing.T) {
	r := NewReader(layout(), errCorrupt)
	_ = r.Byte()
	_ = r.Bool()
	if v := r.Uvarint(); v != 300 {
		t.Fatalf("Uvarint = %d, want 300", v)
	}
	if v := r.Varint(); v != -5 {
		t.Fatalf("Varint = %d, want -5", v)
	}
	if v := r.Int(2); v != 2 {
		t.Fatalf("Int = %d, want 2", v)
	}
	if v := r.Int(1 << 20); v != 1<<20 {
		t.Fatalf("Int = %d, want %d", v, 1<<20)
	}
	if v := r.FiniteFloat(); math.Float64bits(v) != math.Float64bits(math.Copysign(0, -1)) {
		t.Fatalf("FiniteFloat = %v, want -0 bit for bit", v)
	}
	if v := r.Float(); !math.IsNaN(v) {
		t.Fatalf("Float = %v, want NaN", v)
	}
	if s, b, raw := r.String(), r.Bytes(), r.Next(3); s != "model" || string(b) != "\x01\x02\x03" || string(raw) != "raw" {
		t.Fatalf("String, Bytes, Next = %q, %q, %q", s, b, raw)
	}
	if r.Err() != nil || len(r.Rest()) != 0 {
		t.Fatalf("Err = %v, %d bytes left", r.Err(), len(r.Rest()))
	}
}

func TestEveryTruncationFailsWithTheSentinelAndNeverPanics(t *testing.T) {
	data := layout()
	if r := NewReader(data, errCorrupt); read(&r) != nil && r.Err() != nil {
		t.Fatalf("the whole layout: %v", r.Err())
	}
	for n := range len(data) {
		r := NewReader(data[:n:n], errCorrupt)
		read(&r)
		if !errors.Is(r.Err(), errCorrupt) {
			t.Fatalf("the first %d of %d bytes: Err = %v, want the sentinel", n, len(data), r.Err())
		}
	}
}

func TestInvalidValuesFail(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		read func(*Reader)
	}{
		{"a boolean byte of 2", []byte{2}, func(r *Reader) { r.Bool() }},
		{"an integer above its limit", binary.AppendUvarint(nil, 9), func(r *Reader) { r.Int(8) }},
		{"a count beyond the bytes left", binary.AppendUvarint(nil, 2), func(r *Reader) { r.Count() }},
		{"an infinite float read as finite", AppendFloat(nil, math.Inf(1)), func(r *Reader) { r.FiniteFloat() }},
		{"a failure recorded by the decoder", nil, func(r *Reader) { r.FailWith(errors.New("bad setting")) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(tc.data, errCorrupt)
			tc.read(&r)
			if !errors.Is(r.Err(), errCorrupt) {
				t.Fatalf("Err = %v, want the sentinel", r.Err())
			}
			if r.Uvarint() != 0 || r.Rest() != nil {
				t.Fatal("a read after the failure returned something")
			}
		})
	}
}
