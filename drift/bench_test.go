package drift

import (
	"testing"
)

// benchValues is a long stationary stream that the benchmarks cycle through.
func benchValues(n int, p float64) []float64 { return bernoulli(newRand(7), n, p) }

// benchmarkUpdate measures Update on d after warming it up. ADWIN's cost
// grows with the logarithm of its window, and on a stationary stream the
// window keeps every value: it starts at the warm-up's size and ends at
// b.N values more (tens of millions), so the figures are pessimistic for
// windows of the warm-up's size.
func benchmarkUpdate(b *testing.B, d Detector, warmup int) {
	values := benchValues(1<<16, 0.2)
	for i := range warmup {
		d.Update(values[i%len(values)])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		d.Update(values[i&(len(values)-1)])
	}
}

func BenchmarkADWINUpdate(b *testing.B) {
	for _, tc := range []struct {
		name   string
		warmup int
	}{{"window_from=1e4", 10_000}, {"window_from=1e5", 100_000}, {"window_from=1e6", 1_000_000}} {
		b.Run(tc.name, func(b *testing.B) {
			d, err := NewADWIN(ADWINConfig{})
			if err != nil {
				b.Fatal(err)
			}
			benchmarkUpdate(b, d, tc.warmup)
			if d.Width() < tc.warmup {
				b.Logf("window shrank to %d values", d.Width())
			}
		})
	}
}

func BenchmarkPageHinkleyUpdate(b *testing.B) {
	d, err := NewPageHinkley(PageHinkleyConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkUpdate(b, d, 1000)
}

func BenchmarkDDMUpdate(b *testing.B) {
	d, err := NewDDM(DDMConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkUpdate(b, d, 1000)
}

func BenchmarkEDDMUpdate(b *testing.B) {
	d, err := NewEDDM(EDDMConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkUpdate(b, d, 1000)
}

func BenchmarkKSWINUpdate(b *testing.B) {
	d, err := NewKSWIN(KSWINConfig{})
	if err != nil {
		b.Fatal(err)
	}
	benchmarkUpdate(b, d, 1000)
}
