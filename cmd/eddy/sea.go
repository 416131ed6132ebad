package main

import (
	"math"
	"math/rand/v2"
	"strconv"

	"github.com/eddyhq/eddy/stream"
)

// seaGenerator produces the SEA concepts stream (Street & Kim 2001): three
// features uniform in [0, 10), of which only f1 and f2 matter; the label is 1
// when f1 + f2 <= θ, with θ cycling through 8, 9, 7, 9.5 every driftEvery
// events (abrupt drift; driftEvery 0: θ stays 8), and a fraction noise of
// labels flipped.
type seaGenerator struct {
	rng        *rand.Rand
	driftEvery int
	noise      float64
	n          int

	ev stream.Event // the next event, its buffers reused
	id []byte
}

var seaThresholds = [...]float64{8, 9, 7, 9.5}

func newSEA(seed uint64, driftEvery int, noise float64) *seaGenerator {
	g := &seaGenerator{rng: rand.New(rand.NewPCG(seed, seed^0x5ea)), driftEvery: driftEvery, noise: noise}
	g.ev.Fields = []stream.Field{
		{Name: []byte("f1"), Kind: stream.KindNumber},
		{Name: []byte("f2"), Kind: stream.KindNumber},
		{Name: []byte("f3"), Kind: stream.KindNumber},
	}
	g.ev.HasLabel = true
	return g
}

// concept returns the index of the concept in force for the next event.
func (g *seaGenerator) concept() int {
	if g.driftEvery <= 0 {
		return 0
	}
	return (g.n / g.driftEvery) % len(seaThresholds)
}

// changed reports whether the concept changes at the next event.
func (g *seaGenerator) changed() bool {
	return g.driftEvery > 0 && g.n > 0 && g.n%g.driftEvery == 0
}

// next appends the next event as JSON to dst.
func (g *seaGenerator) next(dst []byte, idPrefix string) []byte {
	f1, f2, f3 := g.rng.Float64()*10, g.rng.Float64()*10, g.rng.Float64()*10
	label := 0.0
	if f1+f2 <= seaThresholds[g.concept()] {
		label = 1
	}
	if g.rng.Float64() < g.noise {
		label = 1 - label
	}
	g.id = strconv.AppendInt(append(g.id[:0], idPrefix...), int64(g.n), 10)
	g.ev.ID = g.id
	g.ev.Fields[0].Num, g.ev.Fields[1].Num, g.ev.Fields[2].Num = sixDigits(f1), sixDigits(f2), sixDigits(f3)
	g.ev.Label = label
	g.n++
	out, err := stream.AppendEvent(dst, &g.ev)
	if err != nil {
		panic("sea: " + err.Error()) // unreachable: a non-empty id, finite features and label
	}
	return out
}

// sixDigits rounds x in [0, 10) to 6 significant digits, as the generator
// has always written its features: events of about 110 bytes, the size the
// benchmarks were measured with. (The label is computed before rounding.)
// It is strconv's rounding (nearest, ties to even) done in float64 so as to
// cost nanoseconds: k/10^p for the nearest integer k to x*10^p, a division
// IEEE 754 rounds to the float64 nearest k/10^p, the number strconv reads
// the 6 digits as. TestSixDigitsRoundsAsStrconv checks the two agree.
func sixDigits(x float64) float64 {
	for i, decade := range seaDecades {
		if x >= decade {
			return math.RoundToEven(x*seaScales[i]) / seaScales[i]
		}
	}
	var buf [32]byte // below 1e-15 (never drawn in practice): strconv itself
	y, _ := strconv.ParseFloat(string(strconv.AppendFloat(buf[:0], x, 'g', 6, 64)), 64)
	return y
}

// seaDecades are the decades of [1e-15, 10), largest first, and seaScales
// the powers of ten that bring 6 significant digits of a number in them
// before the point.
var (
	seaDecades = [...]float64{1, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14, 1e-15}
	seaScales  = [...]float64{1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20}
)
