package drift

import (
	"cmp"
	"math"
	"slices"
)

// BinWindow holds the bins of a stream's newest values: a ring of at most
// a given size, and the count of each bin, kept in step. Distribution
// detectors (Shift, CategoryShift) and learner's skew use it. It allocates
// nothing once the ring is full.
type BinWindow struct {
	ring   []uint8
	head   int // the oldest entry once the ring is full
	counts []int
}

// NewBinWindow returns an empty window over bins bins.
func NewBinWindow(bins int) BinWindow { return BinWindow{counts: make([]int, bins)} }

// Add appends bin, dropping the oldest entry once the window holds size.
func (w *BinWindow) Add(bin uint8, size int) {
	if len(w.ring) < size {
		w.ring = append(w.ring, bin)
	} else {
		w.counts[w.ring[w.head]]--
		w.ring[w.head] = bin
		w.head = (w.head + 1) % size
	}
	w.counts[bin]++
}

// Len returns how many values the window holds.
func (w *BinWindow) Len() int { return len(w.ring) }

// Count returns how many of the window's values are in bin.
func (w *BinWindow) Count(bin int) int { return w.counts[bin] }

// Reset empties the window.
func (w *BinWindow) Reset() {
	w.ring, w.head = w.ring[:0], 0
	clear(w.counts)
}

// restore sets the window from an encoded ring and head, which the caller
// has checked, and rebuilds the counts.
func (w *BinWindow) restore(ring []uint8, head int) {
	w.ring, w.head = ring, head
	clear(w.counts)
	for _, b := range ring {
		w.counts[b]++
	}
}

// JSDistance returns the Jensen–Shannon distance (base 2, 0 to 1) between
// the probabilities ref and the distribution of w's values.
func JSDistance(ref []float64, w *BinWindow) float64 {
	n := float64(w.Len())
	var d float64
	for i, p := range ref {
		d += jsTerm(p, float64(w.counts[i])/n)
	}
	return math.Sqrt(max(d/2, 0))
}

// JSDistanceOfWindows returns the Jensen–Shannon distance between the
// distributions of two windows over the same bins.
func JSDistanceOfWindows(a, b *BinWindow) float64 {
	na, nb := float64(a.Len()), float64(b.Len())
	var d float64
	for i := range a.counts {
		d += jsTerm(float64(a.counts[i])/na, float64(b.counts[i])/nb)
	}
	return math.Sqrt(max(d/2, 0))
}

// jsTerm is one bin's share of twice the Jensen–Shannon divergence.
func jsTerm(p, q float64) float64 {
	m := (p + q) / 2
	var d float64
	if p > 0 {
		d += p * math.Log2(p/m)
	}
	if q > 0 {
		d += q * math.Log2(q/m)
	}
	return d
}

// TopValues returns the values of counts, most frequent first (ties in
// value order).
func TopValues(counts map[string]int) []string {
	values := make([]string, 0, len(counts))
	for v := range counts {
		values = append(values, v)
	}
	slices.SortFunc(values, func(a, b string) int { return cmp.Or(counts[b]-counts[a], cmp.Compare(a, b)) })
	return values
}
