package drift

import (
	"math"
	"sort"
	"testing"
)

// pyRandom reproduces CPython's random.Random bit for bit for what River's
// docstrings use: seeding with a non-negative int, random(), and choices()
// with and without weights. It is a port of CPython's _randommodule.c
// (MT19937, init_by_array) and Lib/random.py.
type pyRandom struct {
	state [624]uint32
	index int
}

// newPyRandom is random.Random(seed) for a non-negative integer seed: the
// key of init_by_array is the seed's 32-bit words, least significant first
// (one zero word for seed 0).
func newPyRandom(seed uint64) *pyRandom {
	key := []uint32{uint32(seed)}
	if hi := uint32(seed >> 32); hi != 0 {
		key = append(key, hi)
	}
	r := &pyRandom{}
	r.initByArray(key)
	return r
}

func (r *pyRandom) initGenrand(s uint32) {
	r.state[0] = s
	for i := 1; i < len(r.state); i++ {
		prev := r.state[i-1]
		r.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	r.index = len(r.state)
}

func (r *pyRandom) initByArray(key []uint32) {
	const n = 624
	r.initGenrand(19650218)
	i, j := 1, 0
	for k := max(n, len(key)); k > 0; k-- {
		prev := r.state[i-1]
		r.state[i] = (r.state[i] ^ ((prev ^ (prev >> 30)) * 1664525)) + key[j] + uint32(j)
		i++
		j++
		if i >= n {
			r.state[0] = r.state[n-1]
			i = 1
		}
		if j >= len(key) {
			j = 0
		}
	}
	for k := n - 1; k > 0; k-- {
		prev := r.state[i-1]
		r.state[i] = (r.state[i] ^ ((prev ^ (prev >> 30)) * 1566083941)) - uint32(i)
		i++
		if i >= n {
			r.state[0] = r.state[n-1]
			i = 1
		}
	}
	r.state[0] = 0x80000000
	r.index = n
}

func (r *pyRandom) uint32() uint32 {
	const (
		n, m      = 624, 397
		matrixA   = 0x9908b0df
		upperMask = 0x80000000
		lowerMask = 0x7fffffff
	)
	if r.index >= n {
		for k := range n {
			y := r.state[k]&upperMask | r.state[(k+1)%n]&lowerMask
			next := r.state[(k+m)%n] ^ y>>1
			if y&1 != 0 {
				next ^= matrixA
			}
			r.state[k] = next
		}
		r.index = 0
	}
	y := r.state[r.index]
	r.index++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// random is random.random(): 53 random bits in [0, 1).
func (r *pyRandom) random() float64 {
	a, b := r.uint32()>>5, r.uint32()>>6
	return (float64(a)*67108864 + float64(b)) * (1.0 / 9007199254740992)
}

// choices is random.choices(population, k=k): population[floor(random()·n)].
func (r *pyRandom) choices(population []float64, k int) []float64 {
	out := make([]float64, k)
	n := float64(len(population))
	for i := range out {
		out[i] = population[int(math.Floor(r.random()*n))]
	}
	return out
}

// weightedChoices is random.choices(population, weights, k=k): the weights
// are accumulated left to right, and each draw is
// bisect_right(cum_weights, random()·total, 0, n-1).
func (r *pyRandom) weightedChoices(population, weights []float64, k int) []float64 {
	cum := make([]float64, len(weights))
	sum := 0.0
	for i, w := range weights {
		sum += w
		cum[i] = sum
	}
	total := cum[len(cum)-1]
	hi := len(population) - 1
	out := make([]float64, k)
	for i := range out {
		x := r.random() * total
		out[i] = population[sort.Search(hi, func(j int) bool { return cum[j] > x })]
	}
	return out
}

func pyRange(from, to int) []float64 {
	var out []float64
	for v := from; v < to; v++ {
		out = append(out, float64(v))
	}
	return out
}

func TestPythonRandomPortReproducesCPythonsFirstOutputs(t *testing.T) {
	r := newPyRandom(42)
	want := []float64{0.6394267984578837, 0.025010755222666936, 0.27502931836911926}
	for i, w := range want {
		if got := r.random(); got != w {
			t.Errorf("random.Random(42) output %d = %v, want %v", i, got, w)
		}
	}
}

func TestPythonRandomPortRegeneratesRiversDocstringStream(t *testing.T) {
	file := readValues(t, "river_docstring.txt")
	r := newPyRandom(12345)
	stream := append(r.choices([]float64{0, 1}, 1000), r.choices(pyRange(4, 8), 1000)...)
	if len(stream) != len(file) {
		t.Fatalf("generated %d values, the file holds %d", len(stream), len(file))
	}
	for i := range stream {
		if stream[i] != file[i] {
			t.Fatalf("value %d: generated %v, the file holds %v", i, stream[i], file[i])
		}
	}
}

func TestPythonRandomPortRegeneratesTheFourSegmentStream(t *testing.T) {
	file := readValues(t, "river_four_segments.txt")
	r := newPyRandom(42)
	var stream []float64
	for range 2 {
		stream = append(stream, r.choices([]float64{0, 1}, 1000)...)
		stream = append(stream, r.choices(pyRange(4, 8), 1000)...)
	}
	if len(stream) != len(file) {
		t.Fatalf("generated %d values, the file holds %d", len(stream), len(file))
	}
	for i := range stream {
		if stream[i] != file[i] {
			t.Fatalf("value %d: generated %v, the file holds %v", i, stream[i], file[i])
		}
	}
}
