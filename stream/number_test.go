package stream

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func checkParseFloat(t *testing.T, s string) {
	t.Helper()
	want, err := strconv.ParseFloat(s, 64)
	got, ok := parseFloat([]byte(s))
	if ok != (err == nil) || math.Float64bits(got) != math.Float64bits(want) {
		t.Fatalf("parseFloat(%q) = %v (bits %x), %v; strconv: %v (bits %x), %v", s, got, math.Float64bits(got), ok, want, math.Float64bits(want), err)
	}
}

// TestParseFloatIsStrconvToTheBit compares parseFloat with
// strconv.ParseFloat on the forms of data files (signs, fractions, leading
// and trailing zeros, up to and past 15 digits and 22 decimals) and on
// what is not a number.
func TestParseFloatIsStrconvToTheBit(t *testing.T) {
	for _, s := range []string{
		"", "+", "-", ".", "-.", "0", "-0", "+0", "0.0", "-0.0", "1.", ".5", "-.5", "007", "1e5", "1E-3", "inf", "-Inf", "NaN",
		"0x1p-2", "1_000", "1..2", "1.2.3", "12a", " 1", "0.1", "0.2", "0.3", "123456789012345", "1234567890123456",
		"9007199254740993", "1e400", "-1e400", "0.0000000000000000000001", "0.00000000000000000000001", "1.7976931348623157", "4.9406564584124654",
		"-19.3722", "344.7002", "66.1799",
		"NSW", "index", "nan", "NaN", "+nan", "-NaN", "inf", "+Inf", "-infinity", "INFINITY", "infin", "+", "in", "n",
	} {
		checkParseFloat(t, s)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const chars = "0123456789012345678901234567890123456789.-+eEinfatyINFATY_x"
	for range 200000 {
		b := make([]byte, 1+rng.IntN(24))
		for i := range b {
			b[i] = chars[rng.IntN(len(chars))]
		}
		checkParseFloat(t, string(b))
	}
	for range 200000 { // well-formed decimals of every length and scale
		s := strconv.FormatFloat(rng.NormFloat64()*math.Pow(10, float64(rng.IntN(12)-4)), 'f', rng.IntN(18), 64)
		checkParseFloat(t, s)
	}
}

func FuzzParseFloat(f *testing.F) {
	f.Add("-19.3722")
	f.Add("1e5")
	f.Fuzz(func(t *testing.T, s string) { checkParseFloat(t, s) })
}

func BenchmarkParseFloat(b *testing.B) {
	cells := [][]byte{[]byte("-0.9152"), []byte("68.7518"), []byte("-0.9100"), []byte("130.4514"), []byte("2.6807"), []byte("-1.5926"), []byte("0.3985"), []byte("-78.8822")}
	b.ReportAllocs()
	sum := 0.0
	for i := 0; b.Loop(); i++ {
		x, _ := parseFloat(cells[i%len(cells)])
		sum += x
	}
	_ = sum
}
