package drift

import (
	"bytes"
	"errors"
	"slices"
	"testing"
)

// stateCases are detectors, some with non-default settings, whose state the
// tests encode and restore.
func stateCases(t testing.TB) []struct {
	name string
	new  func() Detector
} {
	t.Helper()
	newOf := func(kind string, p Params) func() Detector {
		return func() Detector {
			d, err := New(kind, p)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	return []struct {
		name string
		new  func() Detector
	}{
		{"ADWIN", newOf(KindADWIN, Params{})},
		{"ADWIN with clock 1 and 3 buckets", newOf(KindADWIN, Params{Numbers: map[string]float64{"clock": 1, "max_buckets": 3, "delta": 0.05}})},
		{"Page-Hinkley", newOf(KindPageHinkley, Params{Numbers: map[string]float64{"threshold": 10}})},
		{"Page-Hinkley down", newOf(KindPageHinkley, Params{Numbers: map[string]float64{"threshold": 10}, Mode: "down"})},
		{"DDM", newOf(KindDDM, Params{})},
		{"EDDM", newOf(KindEDDM, Params{})},
		{"KSWIN", newOf(KindKSWIN, Params{Numbers: map[string]float64{"seed": 3}})},
		{"KSWIN with a small window", newOf(KindKSWIN, Params{Numbers: map[string]float64{"window_size": 40, "stat_size": 10, "alpha": 0.01, "seed": 1 << 40}})},
	}
}

// stateStream is an error stream with several changes of rate.
func stateStream() []float64 {
	r := newRand(30)
	return segments(bernoulli(r, 1000, 0.2), bernoulli(r, 1200, 0.7), bernoulli(r, 1000, 0.2), bernoulli(r, 800, 0.8))
}

// Every detector of the package is a Detector, AppendState included.
var (
	_ Detector = (*ADWIN)(nil)
	_ Detector = (*PageHinkley)(nil)
	_ Detector = (*DDM)(nil)
	_ Detector = (*EDDM)(nil)
	_ Detector = (*KSWIN)(nil)
)

// outcome is what a detector reports after one value.
type outcome struct{ drift, warning bool }

func outcomeOf(d Detector) outcome {
	o := outcome{drift: d.Drift()}
	if w, ok := d.(interface{ Warning() bool }); ok {
		o.warning = w.Warning()
	}
	return o
}

func TestARestoredDetectorContinuesExactlyAsTheOriginal(t *testing.T) {
	values := stateStream()
	for _, tc := range stateCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			all := detections(tc.new(), values)
			// Split after 1500 values, and right at the first detection, where
			// the restored detector must still reset on its next value.
			splits := []int{1500}
			if len(all) > 0 {
				splits = append(splits, all[0]+1)
			}
			t.Logf("detections at %v", all)
			for _, split := range splits {
				original := tc.new()
				detections(original, values[:split])
				encoded := original.AppendState([]byte("prefix"))
				restored, rest, err := Decode(encoded[len("prefix"):])
				if err != nil {
					t.Fatalf("split %d: Decode: %v", split, err)
				}
				if len(rest) != 0 {
					t.Fatalf("split %d: Decode left %d bytes", split, len(rest))
				}
				if again := restored.AppendState(nil); !bytes.Equal(again, encoded[len("prefix"):]) {
					t.Fatalf("split %d: re-encoding the restored detector differs from the encoding", split)
				}
				if outcomeOf(restored) != outcomeOf(original) {
					t.Fatalf("split %d: restored reports %+v, original %+v", split, outcomeOf(restored), outcomeOf(original))
				}
				for i, v := range values[split:] {
					restored.Update(v)
					original.Update(v)
					if got, want := outcomeOf(restored), outcomeOf(original); got != want {
						t.Fatalf("split %d: value %d: restored reports %+v, original %+v", split, split+i, got, want)
					}
				}
				var rerun []int
				for _, at := range all {
					if at >= split {
						rerun = append(rerun, at)
					}
				}
				if got := detections(restoredFrom(t, tc.new, values[:split]), values[split:]); !slices.Equal(shift(got, split), rerun) {
					t.Fatalf("split %d: restored detections at %v, uninterrupted at %v", split, shift(got, split), rerun)
				}
			}
		})
	}
}

// restoredFrom runs a new detector on values, then encodes and decodes it.
func restoredFrom(t *testing.T, newDetector func() Detector, values []float64) Detector {
	t.Helper()
	d := newDetector()
	detections(d, values)
	restored, _, err := Decode(d.AppendState(nil))
	if err != nil {
		t.Fatal(err)
	}
	return restored
}

func shift(indices []int, by int) []int {
	out := make([]int, len(indices))
	for i, v := range indices {
		out[i] = v + by
	}
	return out
}

func TestDecodeReadsDetectorsOneAfterAnother(t *testing.T) {
	var buf []byte
	var want []Detector
	for _, tc := range stateCases(t) {
		d := tc.new()
		detections(d, stateStream()[:700])
		buf = d.AppendState(buf)
		want = append(want, d)
	}
	for i, w := range want {
		d, rest, err := Decode(buf)
		if err != nil {
			t.Fatalf("detector %d: %v", i, err)
		}
		if !bytes.Equal(d.AppendState(nil), w.AppendState(nil)) {
			t.Fatalf("detector %d decoded differently", i)
		}
		buf = rest
	}
	if len(buf) != 0 {
		t.Fatalf("%d bytes left over", len(buf))
	}
}

func TestDecodeRejectsEveryTruncationWithoutPanicking(t *testing.T) {
	for _, tc := range stateCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.new()
			detections(d, stateStream()[:1500])
			encoded := d.AppendState(nil)
			for n := range len(encoded) {
				got, _, err := Decode(encoded[:n])
				if !errors.Is(err, ErrCorruptState) || got != nil {
					t.Fatalf("Decode of the first %d of %d bytes = %v, %v; want ErrCorruptState", n, len(encoded), got, err)
				}
			}
		})
	}
}

func TestDecodeSurvivesCorruptBytes(t *testing.T) {
	rng := newRand(31)
	values := stateStream()
	for _, tc := range stateCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.new()
			detections(d, values[:1500])
			encoded := d.AppendState(nil)
			rejected := 0
			for range 2000 {
				corrupt := slices.Clone(encoded)
				for range 1 + rng.IntN(3) {
					corrupt[rng.IntN(len(corrupt))] ^= byte(1 + rng.IntN(255))
				}
				restored, _, err := Decode(corrupt)
				if err != nil {
					if !errors.Is(err, ErrCorruptState) {
						t.Fatalf("error %v does not wrap ErrCorruptState", err)
					}
					rejected++
					continue
				}
				// A corruption Decode cannot tell from a valid state (a changed
				// bit of a float, say) must still give a working detector.
				for _, v := range values[1500:2000] {
					restored.Update(v)
				}
			}
			t.Logf("%d of 2000 corruptions rejected", rejected)
		})
	}
}

func TestDecodeRejectsUnknownVersionsAndKinds(t *testing.T) {
	d, err := NewADWIN(ADWINConfig{})
	if err != nil {
		t.Fatal(err)
	}
	encoded := d.AppendState(nil)
	for _, first := range []byte{codeADWIN<<4 | 2, codeADWIN << 4, 9<<4 | formatVersion, 0} {
		corrupt := append([]byte{first}, encoded[1:]...)
		if _, _, err := Decode(corrupt); !errors.Is(err, ErrCorruptState) {
			t.Errorf("Decode with header byte %#x = %v, want ErrCorruptState", first, err)
		}
	}
	if _, _, err := Decode(nil); !errors.Is(err, ErrCorruptState) {
		t.Errorf("Decode(nil) = %v, want ErrCorruptState", err)
	}
}

func TestUpdateAllocatesNothing(t *testing.T) {
	values := stateStream()
	for _, tc := range stateCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.new()
			detections(d, values) // grow ADWIN's rows and pass detections
			i := 0
			allocs := testing.AllocsPerRun(10000, func() {
				d.Update(values[i%len(values)])
				i++
			})
			if allocs != 0 {
				t.Fatalf("Update allocates %v times per call", allocs)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	values := stateStream()
	for _, tc := range stateCases(f) {
		d := tc.new()
		detections(d, values[:1500])
		f.Add(d.AppendState(nil))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, rest, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrCorruptState) {
				t.Fatalf("error %v does not wrap ErrCorruptState", err)
			}
			return
		}
		_ = rest
		// The input may hold non-canonical varints or zero settings (which
		// mean defaults), so only re-encoding must be stable.
		encoded := d.AppendState(nil)
		again, rest, err := Decode(encoded)
		if err != nil || len(rest) != 0 {
			t.Fatalf("decoding a re-encoded state: %v, %d bytes left", err, len(rest))
		}
		if !bytes.Equal(again.AppendState(nil), encoded) {
			t.Fatalf("re-encoding a decoded state is not stable")
		}
		for _, v := range values[:300] {
			d.Update(v)
		}
	})
}
