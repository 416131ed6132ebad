package main

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/eddyhq/eddy/stream"
)

// TestSEAWritesTheEventsItAlwaysHas pins the generator's output, written by
// stream.AppendEvent since issue 10, to the bytes of its hand-built JSON
// before: the same seed gives the same events, features to 6 significant
// digits (events of about 110 bytes, as the benchmarks were measured).
func TestSEAWritesTheEventsItAlwaysHas(t *testing.T) {
	gen := newSEA(1, 1000, 0.1)
	first := []string{
		`{"id":"sea-0","features":{"f1":2.84179,"f2":9.31559,"f3":2.42034},"label":0}`,
		`{"id":"sea-1","features":{"f1":6.62681,"f2":0.774477,"f3":7.97357},"label":0}`,
		`{"id":"sea-2","features":{"f1":3.64644,"f2":5.44876,"f3":0.160035},"label":0}`,
	}
	h := sha256.New()
	dec := stream.NewDecoder(stream.DecoderConfig{})
	var ev stream.Event
	for i := range 100000 {
		b := gen.next(nil, "sea-")
		if i < len(first) && string(b) != first[i] {
			t.Fatalf("event %d is\n%s\nwant\n%s", i, b, first[i])
		}
		if err := dec.Decode(b, &ev); err != nil {
			t.Fatalf("event %d %s does not decode: %v", i, b, err)
		}
		h.Write(b)
		h.Write([]byte{'\n'})
	}
	const want = "eb286c1482eb3085ac23282f73f229a3a5202c1c47b20825cd4e870f5649faad" // the hand-built JSON's
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("100,000 events hash to %s, want %s: the stream changed", got, want)
	}
}

func TestSEANextAppendsWithoutAllocatingWhenDstHasRoom(t *testing.T) {
	gen := newSEA(1, 0, 0)
	dst := make([]byte, 0, 256)
	allocs := testing.AllocsPerRun(1000, func() { dst = gen.next(dst[:0], "x-") })
	if allocs != 0 || !strings.HasPrefix(string(dst), `{"id":"x-`) {
		t.Fatalf("%v allocations per event (%s), want 0", allocs, dst)
	}
}

func BenchmarkSEANext(b *testing.B) {
	gen := newSEA(1, 25000, 0.1)
	dst := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		dst = gen.next(dst[:0], "b-")
	}
}

func TestSixDigitsRoundsAsStrconv(t *testing.T) {
	strconvSix := func(x float64) float64 {
		y, _ := strconv.ParseFloat(strconv.FormatFloat(x, 'g', 6, 64), 64)
		return y
	}
	edges := []float64{0, 1, 10 - 1e-15, 0.1, math.Nextafter(0.1, 0), 0.01, math.Nextafter(0.01, 0), 9.999995, 9.9999949999,
		1.015625, 1.0156250000000002, 65.0 / 64 / 10, 1e-5, 1.234565e-5, 5e-324, 1e-300, 9.99999e-16, 1e-15}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 2_000_000 {
		x := rng.Float64() * 10
		if i < len(edges) {
			x = edges[i]
		}
		if got, want := sixDigits(x), strconvSix(x); math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("sixDigits(%v) = %v, strconv rounds it to %v", x, got, want)
		}
	}
}
