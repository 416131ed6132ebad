package drift

import (
	"bufio"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// readValues reads one of the drift streams shipped in testdata (one number
// per line; see testdata/README.md).
func readValues(t testing.TB, name string) []float64 {
	t.Helper()
	path := filepath.Join("testdata", name)
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("drift stream %s: %v (it ships in drift/testdata; see its README)", name, err)
	}
	defer f.Close()
	var values []float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		v, err := strconv.ParseFloat(line, 64)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		values = append(values, v)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return values
}

// detections feeds values to d and returns the 0-based indices of the
// detections.
func detections(d Detector, values []float64) []int {
	var at []int
	for i, v := range values {
		if d.Update(v) {
			at = append(at, i)
		}
	}
	return at
}

// bernoulli returns n values that are 1 with probability p, else 0.
func bernoulli(rng *rand.Rand, n int, p float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		if rng.Float64() < p {
			out[i] = 1
		}
	}
	return out
}

// gaussian returns n normal values of the given mean and standard deviation.
func gaussian(rng *rand.Rand, n int, mean, sd float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = mean + sd*rng.NormFloat64()
	}
	return out
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0xd1f7)) }
