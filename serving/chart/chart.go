package chart

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Curve is one run's (or one model's) learning curve. X holds the rows
// seen (or, for a Chart with Time set, Unix seconds), and each series
// holds one value per X; a nil series is not drawn, and a NaN value (no
// value yet) is left out of its line.
type Curve struct {
	// Name tells the runs of one chart apart in its legend ("" for a chart
	// of one run).
	Name string
	X    []float64
	// Rolling is the metric over the newest rows (the live model's), and
	// Cumulative over all rows so far.
	Rolling, Cumulative []float64
	// Served is the rolling metric of the served (champion) snapshots.
	Served []float64
	// Baseline is the rolling accuracy of the no-change classifier, which
	// predicts the previous label: what a model must beat to be useful.
	Baseline []float64
	// Detections and Promotions are the X of drift detections and of the
	// promotions that served a post-drift challenger.
	Detections, Promotions []float64
}

// Chart is a picture of one or more curves of the same metric.
type Chart struct {
	Title string
	// Metric names the Y axis and the legend entries: "accuracy", "MAE".
	Metric string
	// XLabel names the X axis (default "rows").
	XLabel string
	// Time draws X as clock times (X are Unix seconds).
	Time   bool
	Curves []Curve
	// Width and Height in points (default 900 × 400), the legend included:
	// it stands right of the plot, never over the data.
	Width, Height float64
}

// Legend names of the series and marks, as they appear in a picture.
const (
	LegendRolling    = "rolling"
	LegendCumulative = "cumulative"
	LegendServed     = "served model, rolling"
	LegendBaseline   = "no-change baseline, rolling"
	LegendDetection  = "drift detected"
	LegendPromotion  = "post-drift model served"
)

// Mark colours for a chart of one run; with several runs, marks take their
// run's colour and differ by dash pattern.
var (
	DetectionColor = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	PromotionColor = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	baselineColor  = color.RGBA{R: 0x99, G: 0x99, B: 0x99, A: 0xff}
)

// runColors are the colours of the runs, in order: the live model's
// series of run i are drawn in runColors[i%len].
var runColors = []color.RGBA{
	{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	{R: 0x17, G: 0xbe, B: 0xcf, A: 0xff},
	{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
}

// Formats Render writes.
var Formats = []string{"svg", "png"}

// Render writes c as an image of format "svg" or "png".
func Render(w io.Writer, c Chart, format string) error {
	if format != "svg" && format != "png" {
		return fmt.Errorf("chart: format %q: want svg or png", format)
	}
	p, leg, err := c.plot()
	if err != nil {
		return err
	}
	width, height := vg.Length(c.Width), vg.Length(c.Height)
	if width <= 0 || height <= 0 {
		width, height = 900, 400
	}
	var cv vg.CanvasWriterTo
	if format == "svg" {
		cv = vgsvg.New(width, height)
	} else {
		cv = vgimg.PngCanvas{Canvas: vgimg.New(width, height)}
	}
	dc := draw.New(cv)
	// The legend's column: its widest entry, its thumbnail and a margin.
	legendWidth := leg.ThumbnailWidth + vg.Points(16)
	for _, name := range leg.names {
		legendWidth = max(legendWidth, leg.TextStyle.Width(name)+leg.ThumbnailWidth+vg.Points(16))
	}
	legendWidth = min(legendWidth, width/2)
	p.Draw(draw.Crop(dc, 0, -legendWidth, 0, 0))
	right := draw.Crop(dc, width-legendWidth+vg.Points(8), 0, 0, -vg.Points(24))
	leg.Draw(right)
	if _, err := cv.WriteTo(w); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// legend is a plot.Legend that remembers its entries' names, to size its
// column.
type legend struct {
	plot.Legend
	names []string
}

func (l *legend) Add(name string, thumbs ...plot.Thumbnailer) {
	l.Legend.Add(name, thumbs...)
	l.names = append(l.names, name)
}

func (c Chart) plot() (*plot.Plot, *legend, error) {
	p := plot.New()
	leg := &legend{Legend: plot.NewLegend()}
	leg.Top, leg.Left = true, true
	p.Title.Text = c.Title
	p.X.Label.Text = c.XLabel
	if p.X.Label.Text == "" {
		p.X.Label.Text = "rows"
	}
	if c.Time {
		p.X.Tick.Marker = plot.TimeTicks{Format: "15:04:05", Time: func(t float64) time.Time { return time.Unix(int64(t), 0).UTC() }}
	}
	p.Y.Label.Text = c.Metric
	p.Add(plotter.NewGrid())

	lo, hi, ok := c.yRange()
	if !ok {
		return nil, nil, errors.New("chart: no points to draw")
	}
	p.Y.Min, p.Y.Max = lo, hi
	one := len(c.Curves) == 1
	for i, cv := range c.Curves {
		col := runColors[i%len(runColors)]
		prefix := ""
		if cv.Name != "" && !one {
			prefix = cv.Name + ": "
		}
		series := []struct {
			ys     []float64
			legend string
			color  color.Color
			width  vg.Length
			dashes []vg.Length
		}{
			{baseline(i, cv), LegendBaseline, baselineColor, 1, []vg.Length{vg.Points(4), vg.Points(3)}},
			{cv.Cumulative, LegendCumulative + " " + c.Metric, col, 1, []vg.Length{vg.Points(6), vg.Points(3)}},
			{cv.Served, LegendServed, darker(col), 1.5, []vg.Length{vg.Points(2), vg.Points(2)}},
			{cv.Rolling, LegendRolling + " " + c.Metric, col, 2, nil},
		}
		for _, s := range series {
			if s.ys == nil {
				continue
			}
			if len(s.ys) != len(cv.X) {
				return nil, nil, fmt.Errorf("chart: curve %q: %d X and %d values of %s", cv.Name, len(cv.X), len(s.ys), s.legend)
			}
			pts := xys(cv.X, s.ys)
			if len(pts) == 0 {
				continue
			}
			l, err := plotter.NewLine(pts)
			if err != nil {
				return nil, nil, fmt.Errorf("chart: curve %q: %w", cv.Name, err)
			}
			l.Color, l.Width, l.Dashes = s.color, vg.Points(float64(s.width)), s.dashes
			p.Add(l)
			name := prefix + s.legend
			if s.legend == LegendBaseline {
				name = s.legend // the same for every run: drawn once
			}
			leg.Add(name, l)
		}
		detect, promote := color.Color(DetectionColor), color.Color(PromotionColor)
		if !one {
			detect, promote = col, col
		}
		if err := marks(p, leg, cv.Detections, lo, hi, detect, []vg.Length{vg.Points(3), vg.Points(2)}, prefix+LegendDetection); err != nil {
			return nil, nil, err
		}
		if err := marks(p, leg, cv.Promotions, lo, hi, promote, []vg.Length{vg.Points(8), vg.Points(2), vg.Points(2), vg.Points(2)}, prefix+LegendPromotion); err != nil {
			return nil, nil, err
		}
	}
	return p, leg, nil
}

// baseline is the baseline series of the i-th curve: the first curve's
// only, since the no-change classifier does not depend on the model.
func baseline(i int, cv Curve) []float64 {
	if i > 0 {
		return nil
	}
	return cv.Baseline
}

// marks draws a vertical line from lo to hi at each x, with one legend
// entry for all of them.
func marks(p *plot.Plot, leg *legend, at []float64, lo, hi float64, col color.Color, dashes []vg.Length, legend string) error {
	for i, x := range at {
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: lo}, {X: x, Y: hi}})
		if err != nil {
			return fmt.Errorf("chart: mark at %g: %w", x, err)
		}
		l.Color, l.Width, l.Dashes = col, vg.Points(1.25), dashes
		p.Add(l)
		if i == 0 {
			leg.Add(legend, l)
		}
	}
	return nil
}

// yRange is the span of the values, padded, with [0, 1] kept whole for an
// accuracy that fills most of it.
func (c Chart) yRange() (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, cv := range c.Curves {
		for _, ys := range [][]float64{cv.Rolling, cv.Cumulative, cv.Served, cv.Baseline} {
			for _, y := range ys {
				if !math.IsNaN(y) && !math.IsInf(y, 0) {
					lo, hi = min(lo, y), max(hi, y)
				}
			}
		}
	}
	if lo > hi {
		return 0, 0, false
	}
	pad := (hi - lo) * 0.05
	if pad == 0 {
		pad = math.Max(math.Abs(hi)*0.05, 0.01)
	}
	return lo - pad, hi + pad, true
}

// xys pairs x and y, leaving out the points whose value is NaN or ±Inf
// (no value yet: a served model before the first promotion).
func xys(x, y []float64) plotter.XYs {
	pts := make(plotter.XYs, 0, len(x))
	for i := range x {
		if !math.IsNaN(y[i]) && !math.IsInf(y[i], 0) {
			pts = append(pts, plotter.XY{X: x[i], Y: y[i]})
		}
	}
	return pts
}

func darker(c color.RGBA) color.Color {
	return color.RGBA{R: c.R / 2, G: c.G / 2, B: c.B / 2, A: c.A}
}
