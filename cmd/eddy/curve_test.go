package main

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/eddyhq/eddy/serving/chart"
)

const adwinConfig = "models:\n  - name: adwin\n    drift:\n      detector: adwin\n      params: {delta: 0.02}\n"

// readCurveJSONL reads a --curve .jsonl file.
func readCurveJSONL(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []map[string]any
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("%s: line %d is not JSON: %v", path, len(rows)+1, err)
		}
		rows = append(rows, row)
	}
	return rows
}

// TestTheCurveOfSEAShowsItsDriftsAndEndsAtTheResult evaluates sea.csv
// (abrupt drifts at rows 12,500, 25,000 and 37,500) with ADWIN, as the
// service's drift test streams it: the curve's last row is the --json
// result, every drift is detected within 1,500 rows at the rows the
// service detects them (its offsets 12999, 25183, 37655, plus one), and the
// plot draws the series and one mark per detection and drift promotion.
func TestTheCurveOfSEAShowsItsDriftsAndEndsAtTheResult(t *testing.T) {
	dir := t.TempDir()
	config := writeTemp(t, "adwin.yaml", adwinConfig)
	curvePath, svgPath := filepath.Join(dir, "sea.jsonl"), filepath.Join(dir, "sea.svg")
	result := evaluateJSON(t, "--file", datasetPath(t, "sea.csv"), "--target", "label", "--config", config,
		"--curve", curvePath, "--plot", svgPath, "--every", "500")
	rows := readCurveJSONL(t, curvePath)
	last := rows[len(rows)-1]
	for _, k := range []string{"n", "accuracy", "log_loss", "rolling", "served", "served_rolling", "detections", "drift_promotions"} {
		if last[k] != result[k] {
			t.Errorf("curve's last row has %s %v, --json %v", k, last[k], result[k])
		}
	}
	if last["rows"] != 50000.0 || last["event"] != nil {
		t.Errorf("last row: %v, want the point after row 50000", last)
	}
	var detected, promoted []int
	points := 0
	for _, r := range rows {
		switch r["event"] {
		case "drift_detected":
			detected = append(detected, int(r["rows"].(float64)))
		case "drift_promoted":
			promoted = append(promoted, int(r["rows"].(float64)))
		case nil:
			points++
			if _, ok := r["baseline_rolling"]; !ok && r["rows"].(float64) > 1 {
				t.Errorf("point %v has no baseline", r)
			}
		}
	}
	if points != 100 {
		t.Errorf("%d points, want one every 500 rows: 100", points)
	}
	t.Logf("detections at rows %v, post-drift models served at rows %v", detected, promoted)
	for _, drift := range []int{12500, 25000, 37500} {
		i := slices.IndexFunc(detected, func(r int) bool { return r > drift })
		if i < 0 || detected[i]-drift > 1500 {
			t.Errorf("drift at row %d: detections at %v, none within 1,500 rows", drift, detected)
		}
	}
	for _, want := range []int{13000, 25184, 37656} { // the service's, from TestDriftIsDetectedAndAChallengerServedThroughKafka
		if !slices.Contains(detected, want) {
			t.Errorf("no detection at row %d, where the service detects one (detections %v)", want, detected)
		}
	}
	if len(promoted) < 3 || last["drift_promotions"] != float64(len(promoted)) {
		t.Errorf("post-drift models served at %v (last row says %v), want one per drift", promoted, last["drift_promotions"])
	}

	data, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	texts, strokes := parseSVG(t, data)
	for _, want := range []string{"sea.csv", "rows", "accuracy", "rolling accuracy", "cumulative accuracy",
		chart.LegendServed, chart.LegendBaseline, chart.LegendDetection, chart.LegendPromotion} {
		if !slices.Contains(texts, want) {
			t.Errorf("the plot has no text %q (texts %q)", want, texts)
		}
	}
	if n := strokes[colorHex(chart.DetectionColor)]; n != len(detected)+1 {
		t.Errorf("%d lines in the detection colour, want %d marks and a legend entry", n, len(detected))
	}
	if n := strokes[colorHex(chart.PromotionColor)]; n != len(promoted)+1 {
		t.Errorf("%d lines in the promotion colour, want %d marks and a legend entry", n, len(promoted))
	}
}

// TestCompareDrawsEveryRunAndWritesACSVCurve compares the flags' model with
// two of a config file on one PNG and one CSV curve.
func TestCompareDrawsEveryRunAndWritesACSVCurve(t *testing.T) {
	dir := t.TempDir()
	config := writeTemp(t, "two.yaml", adwinConfig+"  - name: fast\n    optimizer: {kind: sgd, lr: 0.1}\n")
	curvePath, pngPath := filepath.Join(dir, "c.csv"), filepath.Join(dir, "c.png")
	stdout, stderr, err := runCLI(t, nil, "evaluate", "--file", datasetPath(t, "sea.csv"), "--target", "label",
		"--compare", config, "--curve", curvePath, "--plot", pngPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"flags:\n", "adwin:\n", "fast:\n", "wrote " + curvePath, "wrote " + pngPath} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout has no %q:\n%s", want, stdout)
		}
	}
	f, err := os.Open(curvePath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("the curve is not CSV: %v", err)
	}
	if !slices.Equal(records[0], curveColumns) {
		t.Fatalf("header %v", records[0])
	}
	lastRows := make(map[string]string)
	for _, r := range records[1:] {
		lastRows[r[0]] = r[1]
	}
	if len(lastRows) != 3 || lastRows["flags"] != "50000" || lastRows["adwin"] != "50000" || lastRows["fast"] != "50000" {
		t.Errorf("runs and their last rows: %v, want flags, adwin and fast to 50000", lastRows)
	}
	data, err := os.ReadFile(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("--plot .png is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 900 || b.Dy() < 400 {
		t.Errorf("PNG is %dx%d", b.Dx(), b.Dy())
	}
}

func TestCurveAndPlotRefuseWhatTheyCannotWrite(t *testing.T) {
	file := datasetPath(t, "sea.csv")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--curve", "out.txt"}, ".csv or .jsonl"},
		{[]string{"--plot", "out.gif"}, ".svg or .png"},
		{[]string{"--compare", "/nonexistent.yaml"}, "--compare"},
		{[]string{"--plot", "x.svg", "--promote-every", "0"}, "--promote-every"},
		{[]string{"--plot", "x.svg", "--model-file", "m.eddy"}, "--model-file"},
	} {
		_, _, err := runCLI(t, nil, append([]string{"evaluate", "--file", file, "--target", "label"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %q", tc.args, err, tc.want)
		}
	}
}

// parseSVG returns an SVG's texts and how many paths are stroked in each
// colour, failing unless it is well-formed XML with an <svg> root.
func parseSVG(t *testing.T, data []byte) (texts []string, strokes map[string]int) {
	t.Helper()
	strokes = make(map[string]int)
	dec := xml.NewDecoder(bytes.NewReader(data))
	inText, root := false, ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v", err)
		}
		switch el := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = el.Name.Local
			}
			inText = el.Name.Local == "text"
			for _, a := range el.Attr {
				if el.Name.Local == "path" && a.Name.Local == "style" {
					for _, decl := range strings.Split(a.Value, ";") {
						if v, ok := strings.CutPrefix(strings.TrimSpace(decl), "stroke:"); ok {
							strokes[strings.ToUpper(v)]++
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
	if root != "svg" {
		t.Fatalf("root element %q, want svg", root)
	}
	return texts, strokes
}

func colorHex(c interface{ RGBA() (r, g, b, a uint32) }) string {
	r, g, b, _ := c.RGBA()
	return "#" + strings.ToUpper(strconv.FormatUint(uint64(r>>8)<<16|uint64(g>>8)<<8|uint64(b>>8)|1<<24, 16)[1:])
}
