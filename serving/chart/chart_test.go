package chart_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image/png"
	"io"
	"math"
	"strings"
	"testing"

	"github.com/eddyhq/eddy/serving/chart"
)

func sample() chart.Chart {
	var cv chart.Curve
	for i := 1; i <= 100; i++ {
		cv.X = append(cv.X, float64(i*100))
		cv.Rolling = append(cv.Rolling, 0.8+0.1*math.Sin(float64(i)/10))
		cv.Cumulative = append(cv.Cumulative, 0.85)
		served := math.NaN()
		if i > 10 {
			served = 0.82
		}
		cv.Served = append(cv.Served, served)
		cv.Baseline = append(cv.Baseline, 0.6)
	}
	cv.Detections = []float64{2500, 5000, 7500}
	cv.Promotions = []float64{3000, 5500}
	return chart.Chart{Title: "sea.csv", Metric: "accuracy", Curves: []chart.Curve{cv}}
}

// svgSummary parses an SVG: its texts, and how many lines are drawn in each
// stroke colour.
func svgSummary(t *testing.T, data []byte) (texts []string, strokes map[string]int) {
	t.Helper()
	strokes = make(map[string]int)
	dec := xml.NewDecoder(bytes.NewReader(data))
	inText := false
	sawSVG := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not valid XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			sawSVG = sawSVG || el.Name.Local == "svg"
			inText = el.Name.Local == "text"
			if el.Name.Local == "path" {
				for _, a := range el.Attr {
					if a.Name.Local == "style" {
						for _, decl := range strings.Split(a.Value, ";") {
							if v, ok := strings.CutPrefix(strings.TrimSpace(decl), "stroke:"); ok {
								strokes[v]++
							}
						}
					}
				}
			}
		case xml.CharData:
			if inText {
				texts = append(texts, strings.TrimSpace(string(el)))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if !sawSVG {
		t.Fatal("no <svg> element")
	}
	return texts, strokes
}

func hex(c interface{ RGBA() (r, g, b, a uint32) }) string {
	r, g, b, _ := c.RGBA()
	return fmt.Sprintf("#%02X%02X%02X", r>>8, g>>8, b>>8)
}

func TestAnSVGHasItsSeriesMarksAndLabels(t *testing.T) {
	var buf bytes.Buffer
	if err := chart.Render(&buf, sample(), "svg"); err != nil {
		t.Fatal(err)
	}
	texts, strokes := svgSummary(t, buf.Bytes())
	joined := strings.Join(texts, "|")
	for _, want := range []string{"sea.csv", "rows", "accuracy", chart.LegendRolling + " accuracy", chart.LegendCumulative + " accuracy",
		chart.LegendServed, chart.LegendBaseline, chart.LegendDetection, chart.LegendPromotion} {
		if !strings.Contains(joined, want) {
			t.Errorf("no text %q in the SVG (texts: %s)", want, joined)
		}
	}
	// One line per mark, and one more for its legend entry.
	if n := strokes[hex(chart.DetectionColor)]; n != 3+1 {
		t.Errorf("%d lines in the detection colour, want 3 marks + 1 legend entry (strokes %v)", n, strokes)
	}
	if n := strokes[hex(chart.PromotionColor)]; n != 2+1 {
		t.Errorf("%d lines in the promotion colour, want 2 marks + 1 legend entry", n)
	}
}

func TestAPNGIsAnImageOfTheSize(t *testing.T) {
	var buf bytes.Buffer
	c := sample()
	c.Width, c.Height = 400, 200
	if err := chart.Render(&buf, c, "png"); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("not a PNG: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 400 || b.Dy() < 200 {
		t.Errorf("image is %dx%d, want at least 400x200 (points)", b.Dx(), b.Dy())
	}
	marked := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if r, g, bl, _ := img.At(x, y).RGBA(); hex(rgb{r, g, bl}) == hex(chart.DetectionColor) {
				marked++
			}
		}
	}
	if marked < 50 {
		t.Errorf("%d pixels in the detection colour: the marks are not drawn", marked)
	}
}

type rgb struct{ r, g, b uint32 }

func (c rgb) RGBA() (r, g, b, a uint32) { return c.r, c.g, c.b, 0xffff }

func TestRenderRefusesWhatItCannotDraw(t *testing.T) {
	if err := chart.Render(io.Discard, sample(), "gif"); err == nil || !strings.Contains(err.Error(), "svg or png") {
		t.Errorf("gif: %v, want an error naming the formats", err)
	}
	if err := chart.Render(io.Discard, chart.Chart{Metric: "accuracy", Curves: []chart.Curve{{}}}, "svg"); err == nil {
		t.Error("an empty chart was drawn")
	}
	c := sample()
	c.Curves[0].Rolling = c.Curves[0].Rolling[:3]
	if err := chart.Render(io.Discard, c, "svg"); err == nil || !strings.Contains(err.Error(), "100 X and 3 values") {
		t.Errorf("mismatched series: %v", err)
	}
}
