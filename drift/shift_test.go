package drift

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
)

// TestShiftStaysQuietOnAStationaryStream feeds 50,000 uniform values (as
// SEA's features are), with several seeds: no detection.
func TestShiftStaysQuietOnAStationaryStream(t *testing.T) {
	for seed := range uint64(5) {
		s, err := NewShift(ShiftConfig{})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(seed, 1))
		maxDist := 0.0
		for i := range 50000 {
			if s.Update(r.Float64() * 10) {
				t.Fatalf("seed %d: a detection at value %d (distance %.3f) on a stationary stream", seed, i, s.Distance())
			}
			maxDist = max(maxDist, s.Distance())
		}
		t.Logf("seed %d: largest distance %.3f", seed, maxDist)
	}
}

// TestShiftDetectsAChangeOfUnitOnce multiplies a normal stream by 1,000
// from value 20,000: one detection, within 500 values, and none after
// (the reference restarts from the new values).
func TestShiftDetectsAChangeOfUnitOnce(t *testing.T) {
	s, _ := NewShift(ShiftConfig{})
	r := rand.New(rand.NewPCG(3, 4))
	var at []int
	for i := range 40000 {
		x := 0.05 + 0.02*r.NormFloat64()
		if i >= 20000 {
			x *= 1000
		}
		if s.Update(x) {
			at = append(at, i)
		}
	}
	if len(at) != 1 || at[0] < 20000 || at[0] >= 20500 {
		t.Fatalf("detections at %v, want one within 500 values of 20000", at)
	}
	t.Logf("detected at value %d, %d after the change", at[0], at[0]-20000)
}

// TestShiftContinuesExactlyFromItsState encodes a detector in each phase
// (collecting the reference, filling the window, comparing), decodes it,
// and feeds both the same values: the same detections and distances.
func TestShiftContinuesExactlyFromItsState(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	values := make([]float64, 6000)
	for i := range values {
		values[i] = r.NormFloat64()
		if i > 3000 {
			values[i] += 3
		}
	}
	for _, cut := range []int{0, 500, 1200, 2500, 3100, 3400} {
		a, _ := NewShift(ShiftConfig{})
		for _, x := range values[:cut] {
			a.Update(x)
		}
		state := a.AppendState(nil)
		d, rest, err := Decode(state)
		if err != nil || len(rest) != 0 {
			t.Fatalf("cut %d: decode: %v (%d bytes left)", cut, err, len(rest))
		}
		b := d.(*Shift)
		if !bytes.Equal(b.AppendState(nil), state) {
			t.Fatalf("cut %d: re-encoding differs", cut)
		}
		for i, x := range values[cut:] {
			if a.Update(x) != b.Update(x) || a.Distance() != b.Distance() {
				t.Fatalf("cut %d: value %d: the decoded detector diverged", cut, cut+i)
			}
		}
	}
	// Truncated or garbled states are errors, never panics.
	a, _ := NewShift(ShiftConfig{Reference: 50, Window: 20})
	for _, x := range values[:100] {
		a.Update(x)
	}
	state := a.AppendState(nil)
	for n := range state {
		if _, _, err := Decode(state[:n]); err == nil {
			t.Fatalf("a state truncated to %d of %d bytes decoded", n, len(state))
		}
	}
}

func TestShiftAllocatesNothingPerValue(t *testing.T) {
	s, _ := NewShift(ShiftConfig{})
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		s.Update(r.Float64())
	}
	if n := testing.AllocsPerRun(1000, func() { s.Update(r.Float64()) }); n != 0 {
		t.Fatalf("%v allocations per value", n)
	}
}

// BenchmarkShiftUpdate is the per-value cost of a feature-drift detector
// once it compares (reference built, window full).
func BenchmarkShiftUpdate(b *testing.B) {
	s, _ := NewShift(ShiftConfig{})
	r := rand.New(rand.NewPCG(1, 2))
	values := make([]float64, 4096)
	for i := range values {
		values[i] = r.Float64()
	}
	for i := range 2000 {
		s.Update(values[i%len(values)])
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		s.Update(values[i%len(values)])
		i++
	}
}

// TestCategoryShiftDetectsABrokenJoinAndStaysQuietOtherwise feeds 30,000
// values of a stable categorical distribution (Zipf over 50 values), then
// a broken upstream join that sends one placeholder: one detection within
// 500 values of the change, none before; the state survives a round trip.
func TestCategoryShiftDetectsABrokenJoinAndStaysQuietOtherwise(t *testing.T) {
	s, err := NewCategoryShift(ShiftConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 5))
	z := rand.NewZipf(r, 1.2, 1, 49)
	values := make([][]byte, 40000)
	for i := range values {
		if i < 30000 {
			values[i] = []byte("shop-" + strconv.FormatUint(z.Uint64(), 10))
		} else {
			values[i] = []byte("UNKNOWN")
		}
	}
	var at []int
	var b *CategoryShift
	for i, v := range values {
		if i == 12345 { // a restart mid-stream
			state := s.AppendState(nil)
			var rest []byte
			if b, rest, err = DecodeCategoryShift(state); err != nil || len(rest) != 0 {
				t.Fatalf("decode: %v (%d left)", err, len(rest))
			}
		}
		got := s.Update(v)
		if b != nil && b.Update(v) != got {
			t.Fatalf("value %d: the decoded detector diverged", i)
		}
		if got {
			at = append(at, i)
		}
	}
	if len(at) != 1 || at[0] < 30000 || at[0] >= 30500 {
		t.Fatalf("detections at %v, want one within 500 values of 30000", at)
	}
	if s.NewValueRate() < 0 {
		t.Fatal("negative new-value rate")
	}
	t.Logf("broken join detected at value %d", at[0])
	for n := range 40 {
		state := s.AppendState(nil)
		if _, _, err := DecodeCategoryShift(state[:min(n, len(state)-1)]); err == nil {
			t.Fatalf("a state truncated to %d bytes decoded", n)
		}
	}
}
