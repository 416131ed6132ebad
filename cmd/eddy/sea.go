package main

import (
	"math/rand/v2"
	"strconv"
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
}

var seaThresholds = [...]float64{8, 9, 7, 9.5}

func newSEA(seed uint64, driftEvery int, noise float64) *seaGenerator {
	return &seaGenerator{rng: rand.New(rand.NewPCG(seed, seed^0x5ea)), driftEvery: driftEvery, noise: noise}
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
	label := 0
	if f1+f2 <= seaThresholds[g.concept()] {
		label = 1
	}
	if g.rng.Float64() < g.noise {
		label = 1 - label
	}
	dst = append(dst, `{"id":"`...)
	dst = append(dst, idPrefix...)
	dst = strconv.AppendInt(dst, int64(g.n), 10)
	dst = append(dst, `","features":{"f1":`...)
	dst = strconv.AppendFloat(dst, f1, 'g', 6, 64)
	dst = append(dst, `,"f2":`...)
	dst = strconv.AppendFloat(dst, f2, 'g', 6, 64)
	dst = append(dst, `,"f3":`...)
	dst = strconv.AppendFloat(dst, f3, 'g', 6, 64)
	dst = append(dst, `},"label":`...)
	dst = strconv.AppendInt(dst, int64(label), 10)
	dst = append(dst, '}')
	g.n++
	return dst
}
