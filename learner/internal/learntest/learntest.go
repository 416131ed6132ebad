// Package learntest holds what the tests of the learner packages share:
// deterministic example streams, the data sets shipped in learner/testdata,
// and bit-exact comparisons. It imports only features (never learner, so
// that learner's own tests may use it) and is imported only by tests.
package learntest

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"

	"github.com/eddyhq/eddy/features"
)

// Example is one labeled event.
type Example struct {
	Fields []features.Field
	Y      float64
}

// NumField, StrField and BoolField build fields.
func NumField(name string, x float64) features.Field {
	return features.Field{Name: []byte(name), Kind: features.Number, Num: x}
}

func StrField(name, value string) features.Field {
	return features.Field{Name: []byte(name), Kind: features.String, Str: []byte(value)}
}

func BoolField(name string, b bool) features.Field {
	f := features.Field{Name: []byte(name), Kind: features.Bool}
	if b {
		f.Num = 1
	}
	return f
}

// sigmoid is the logistic function, saturated as River's.
func sigmoid(x float64) float64 {
	switch {
	case x < -30:
		return 0
	case x > 30:
		return 1
	}
	return 1 / (1 + math.Exp(-x))
}

// PaymentEvents returns n deterministic labeled events that mix numeric,
// boolean and categorical features, with a label that depends on all three
// kinds so that every kind of weight is learned.
func PaymentEvents(seed uint64, n int) []Example {
	rng := rand.New(rand.NewPCG(seed, 7))
	countries := []string{"de", "fr", "us", "br", "in", "jp"}
	countryEffect := []float64{-0.5, -0.3, 0, 0.4, 0.8, -0.8}
	devices := []string{"ios", "android", "web"}
	out := make([]Example, n)
	for i := range out {
		amount := rng.ExpFloat64() * 50
		age := 18 + rng.Float64()*60
		isNew := rng.IntN(4) == 0
		country := rng.IntN(len(countries))
		logit := 0.03*(amount-50) - 0.02*(age-45) + countryEffect[country]
		if isNew {
			logit++
		}
		var y float64
		if rng.Float64() < sigmoid(logit) {
			y = 1
		}
		out[i] = Example{
			Fields: []features.Field{
				NumField("amount", amount),
				NumField("age", age),
				BoolField("is_new", isNew),
				StrField("country", countries[country]),
				StrField("device", devices[rng.IntN(len(devices))]),
			},
			Y: y,
		}
	}
	return out
}

// WideEvents returns n deterministic events with numeric dense features
// followed by categorical hashed ones (values from a small vocabulary), for
// the benchmarks.
func WideEvents(seed uint64, n, numeric, categorical int) []Example {
	rng := rand.New(rand.NewPCG(seed, 11))
	out := make([]Example, n)
	for i := range out {
		fields := make([]features.Field, 0, numeric+categorical)
		var logit float64
		for j := range numeric {
			x := rng.NormFloat64()
			logit += x / float64(j+1)
			fields = append(fields, NumField(fmt.Sprintf("n%d", j), x))
		}
		for j := range categorical {
			v := rng.IntN(20)
			if v < 3 {
				logit += 0.2
			}
			fields = append(fields, StrField(fmt.Sprintf("c%d", j), fmt.Sprintf("v%d", v)))
		}
		var y float64
		if rng.Float64() < sigmoid(logit) {
			y = 1
		}
		out[i] = Example{Fields: fields, Y: y}
	}
	return out
}

// testdata is learner/testdata, wherever the test runs from.
func testdata() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata")
}

// Dataset returns the contents of one of the data sets shipped gzipped in
// learner/testdata (see its README.md), e.g. "elec2.csv".
func Dataset(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join(testdata(), name+".gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("data set %s: %v (it ships in learner/testdata; see its README)", name, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

// ReadCSV returns the rows of a shipped all-numeric data set as examples
// whose label is the column target.
func ReadCSV(t testing.TB, name, target string) []Example {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(Dataset(t, name))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	header := rows[0]
	var out []Example
	for _, row := range rows[1:] {
		var ex Example
		for i, cell := range row {
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				t.Fatalf("%s: %q is not a number", name, cell)
			}
			if header[i] == target {
				ex.Y = v
				continue
			}
			ex.Fields = append(ex.Fields, features.Field{Name: []byte(header[i]), Kind: features.Number, Num: v})
		}
		out = append(out, ex)
	}
	return out
}

// SameBits reports whether a and b hold the same floats bit for bit.
func SameBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

// FirstDifference returns the first index where a and b differ.
func FirstDifference(a, b []float64) int {
	for i := range min(len(a), len(b)) {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return i
		}
	}
	return min(len(a), len(b))
}

// SameWeights compares weight vectors as functions of the index: a vector
// padded with zeros holds the same weights as the unpadded one.
func SameWeights(a, b []float64) bool {
	for i := range max(len(a), len(b)) {
		var x, y float64
		if i < len(a) {
			x = a[i]
		}
		if i < len(b) {
			y = b[i]
		}
		if math.Float64bits(x) != math.Float64bits(y) {
			return false
		}
	}
	return true
}
