package learner

import (
	"encoding/binary"

	"github.com/eddyhq/eddy/features/codec"
)

// ring holds the last len(values) numbers added, with their running sum.
// The sum is recomputed from the ring at every wrap, so rounding never
// accumulates: one huge value would otherwise skew it for good (1e17 + 1 −
// 1e17 is 0 in float64, so every later 1 would be lost from the sum). A
// ring of length 0 ignores what is added. The prequential rolling window
// and the champion/challenger comparison windows are rings.
type ring struct {
	values []float64
	next   int // where the next value goes
	filled int // values held, at most len(values)
	sum    float64
}

func newRing(n int) ring { return ring{values: make([]float64, n)} }

func (r *ring) add(x float64) {
	if len(r.values) == 0 {
		return
	}
	if r.filled == len(r.values) {
		r.sum -= r.values[r.next]
	} else {
		r.filled++
	}
	r.values[r.next] = x
	r.sum += x
	r.next = (r.next + 1) % len(r.values)
	if r.next == 0 {
		r.sum = sum(r.values)
	}
}

// mean returns the mean of the values held (0 for none).
func (r *ring) mean() float64 {
	if r.filled == 0 {
		return 0
	}
	return r.sum / float64(r.filled)
}

func (r *ring) reset() {
	clear(r.values)
	r.next, r.filled, r.sum = 0, 0, 0
}

// sum adds xs.
func sum(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s
}

// appendValues appends the ring's values, oldest slot first, as floats.
func (r *ring) appendValues(dst []byte) []byte {
	for _, x := range r.values {
		dst = codec.AppendFloat(dst, x)
	}
	return dst
}

// appendPositions appends the ring's length, next and filled as uvarints.
func (r *ring) appendPositions(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(r.values)))
	dst = binary.AppendUvarint(dst, uint64(r.next))
	return binary.AppendUvarint(dst, uint64(r.filled))
}

// storedRing is a ring as an encoding holds it, read before it is known to
// fit the configured one.
type storedRing struct {
	values       []float64
	next, filled uint64
	sum          float64
}

// readValues reads n floats.
func readValues(r *codec.Reader, n int) []float64 {
	values := make([]float64, 0, n)
	for range n {
		values = append(values, r.Float())
	}
	return values
}

// restore makes r the stored ring if it has r's length and consistent
// positions, and reports whether it did; otherwise (the configured length
// changed) r stays as it was, to start afresh.
func (r *ring) restore(s storedRing) bool {
	n := uint64(len(s.values))
	if len(s.values) != len(r.values) || s.next >= n || s.filled > n {
		return false
	}
	copy(r.values, s.values)
	r.next, r.filled, r.sum = int(s.next), int(s.filled), s.sum
	return true
}
