package drift

import (
	"slices"
	"testing"
)

func TestDetectorsReproduceRiversDocumentedDetections(t *testing.T) {
	cases := []struct {
		name string
		file string
		new  func() (Detector, error)
		want []int // all detections; nil with first set: only the first is documented
		// first is the documented first detection, when only that is.
		first int
	}{
		{"ADWIN on the docstring stream", "river_docstring.txt",
			func() (Detector, error) { return NewADWIN(ADWINConfig{}) }, []int{1023}, 0},
		{"ADWIN on the four-segment stream", "river_four_segments.txt",
			func() (Detector, error) { return NewADWIN(ADWINConfig{}) }, []int{1023, 2015, 3007}, 0},
		{"Page-Hinkley on the docstring stream", "river_docstring.txt",
			func() (Detector, error) { return NewPageHinkley(PageHinkleyConfig{}) }, nil, 1006},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			values := readValues(t, tc.file)
			d, err := tc.new()
			if err != nil {
				t.Fatal(err)
			}
			got := detections(d, values)
			t.Logf("detections at %v", got)
			if tc.want != nil {
				if !slices.Equal(got, tc.want) {
					t.Fatalf("detections at %v, River's at %v", got, tc.want)
				}
				return
			}
			if len(got) == 0 || got[0] != tc.first {
				t.Fatalf("detections at %v, River's first at %d", got, tc.first)
			}
		})
	}
}

// riverDDMStream is the stream of River's DDM and EDDM docstrings:
// random.Random(42), 1000 of choices([0, 1]) then 1000 of choices([0, 1],
// weights=[0.3, 0.7]).
func riverDDMStream() []float64 {
	r := newPyRandom(42)
	stream := r.choices([]float64{0, 1}, 1000)
	return append(stream, r.weightedChoices([]float64{0, 1}, []float64{0.3, 0.7}, 1000)...)
}

// warningDetector is a detector with a warning zone.
type warningDetector interface {
	Detector
	Warning() bool
}

// docstringEvents runs River's docstring loop: it prints the first warning
// after the start and after every detection, and every detection.
func docstringEvents(d warningDetector, values []float64) (warnings, drifts []int) {
	printWarning := true
	for i, v := range values {
		d.Update(v)
		if d.Warning() && printWarning {
			warnings = append(warnings, i)
			printWarning = false
		}
		if d.Drift() {
			drifts = append(drifts, i)
			printWarning = true
		}
	}
	return warnings, drifts
}

func TestBinaryDetectorsReproduceRiversDocstrings(t *testing.T) {
	cases := []struct {
		name                 string
		new                  func() (warningDetector, error)
		wantWarns, wantDrift []int
	}{
		{"DDM with River's defaults", func() (warningDetector, error) { return NewDDM(DDMConfig{}) },
			[]int{1084, 1492}, []int{1334}},
		{"EDDM with alpha 0.8 and beta 0.75", func() (warningDetector, error) { return NewEDDM(EDDMConfig{Alpha: 0.8, Beta: 0.75}) },
			[]int{1059}, []int{1278}},
	}
	stream := riverDDMStream()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := tc.new()
			if err != nil {
				t.Fatal(err)
			}
			warns, drifts := docstringEvents(d, stream)
			t.Logf("warnings at %v, drift at %v", warns, drifts)
			if !slices.Equal(warns, tc.wantWarns) || !slices.Equal(drifts, tc.wantDrift) {
				t.Fatalf("warnings at %v and drift at %v, River's docstring has %v and %v", warns, drifts, tc.wantWarns, tc.wantDrift)
			}
		})
	}
}
