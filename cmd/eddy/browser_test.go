//go:build browsertests

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Browser tests run a real Chromium, headless (Debian's chromium package,
// which .ci/run installs): go test -tags browsertests ./cmd/eddy -run Browser.
// EDDY_SCREENSHOT=FILE keeps the screenshot (the README's picture, see
// .ci/pictures) and EDDY_PAGE_POINTS=N waits for N points of the curve.

// chromium returns the browser's path, failing (not skipping) without one.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: install Debian's chromium package (apt-get install chromium), as .ci/run does")
	return ""
}

// headless runs the browser on url with args and returns its stdout.
func headless(t *testing.T, browser, url string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, browser, append(append(base, args...), url)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", browser, args, err, stderr.String())
	}
	return out
}

// TestTheLivePageDrawsInABrowser starts eddy demo, waits for a served
// model and a few samples, then loads the page in headless Chromium: the
// DOM it built (after its script refreshed the panel) names the served
// version, which the service reports too, and holds a curve with points,
// drawn; the screenshot is an image with the curve's colour in it.
func TestTheLivePageDrawsInABrowser(t *testing.T) {
	browser := chromium(t)
	bin := buildEddy(t)
	cmd := exec.Command(bin, "demo", "--embedded-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0",
		"--summary-every", "1s", "--drift-every", "20000")
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	pageURL := ""
	lines := bufio.NewScanner(stdout)
	for pageURL == "" && lines.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(lines.Text()), "page:"); ok {
			pageURL = strings.Fields(rest)[0]
		}
	}
	if pageURL == "" {
		t.Fatalf("demo printed no page address\nstderr:\n%s", stderr.String())
	}
	go func() {
		for lines.Scan() { // keep the demo's output flowing
		}
	}()
	t.Logf("page at %s", pageURL)

	type data struct {
		Models []struct {
			ServedVersion uint64 `json:"served_version"`
			Points        int    `json:"points"`
		} `json:"models"`
	}
	served := func() (uint64, int) {
		resp, err := http.Get(strings.TrimSuffix(pageURL, "/ui") + "/ui/data.json")
		if err != nil {
			return 0, 0
		}
		defer resp.Body.Close()
		var d data
		if json.NewDecoder(resp.Body).Decode(&d) != nil || len(d.Models) == 0 {
			return 0, 0
		}
		return d.Models[0].ServedVersion, d.Models[0].Points
	}
	want := 5 // points of the curve before the browser loads the page (EDDY_PAGE_POINTS: more, for a picture)
	if n, err := strconv.Atoi(os.Getenv("EDDY_PAGE_POINTS")); err == nil && n > want {
		want = n
	}
	deadline := time.Now().Add(time.Duration(want)*2*time.Second + 60*time.Second)
	for {
		if v, points := served(); v > 0 && points >= want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no served model with %d points on the page in time\nstderr:\n%s", want, stderr.String())
		}
		time.Sleep(200 * time.Millisecond)
	}

	before, _ := served()
	// --virtual-time-budget lets the page's script run (its refresh every
	// 2 s) before the DOM is dumped.
	dom := string(headless(t, browser, pageURL, "--virtual-time-budget=5000", "--dump-dom"))
	after, _ := served()
	if r := regexp.MustCompile(`id="panel" data-refreshed="(\d+)"`).FindStringSubmatch(dom); r == nil {
		t.Error("the page's script never refreshed the panel")
	}
	m := regexp.MustCompile(`class="served-version" data-version="(\d+)">v(\d+)<`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the page shows no served version; DOM:\n%.3000s", dom)
	}
	shown, _ := strconv.ParseUint(m[1], 10, 64)
	if m[1] != m[2] || shown < before || shown > after {
		t.Errorf("the page shows v%s (attribute %s); the service served v%d before and v%d after", m[2], m[1], before, after)
	}
	pts := regexp.MustCompile(`class="curve" data-points="(\d+)"><svg`).FindStringSubmatch(dom)
	if pts == nil {
		t.Fatalf("the page has no drawn curve; DOM:\n%.3000s", dom)
	}
	if n, _ := strconv.Atoi(pts[1]); n < 5 {
		t.Errorf("the curve has %d points, want at least 5", n)
	}
	curve := dom[strings.Index(dom, `class="curve"`):]
	curve = curve[:strings.Index(curve, "</svg>")]
	if strings.Count(curve, "<path") < 10 || !strings.Contains(curve, "rolling accuracy") {
		t.Errorf("the curve's SVG has %d paths and no legend: not drawn", strings.Count(curve, "<path"))
	}
	t.Logf("the browser's DOM: serving v%d (service: v%d..v%d), curve of %s points", shown, before, after, pts[1])

	shot := os.Getenv("EDDY_SCREENSHOT")
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "live.png")
	} else if shot, err = filepath.Abs(shot); err != nil {
		t.Fatal(err)
	}
	headless(t, browser, pageURL, "--virtual-time-budget=3000", "--window-size=1200,900", "--hide-scrollbars", "--screenshot="+shot)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	b := img.Bounds()
	blue := 0 // the live model's rolling line (chart's first run colour, #1f77b4)
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if r>>8 < 0x40 && g>>8 > 0x60 && g>>8 < 0x90 && bl>>8 > 0xa0 && bl>>8 < 0xc8 {
				blue++
			}
		}
	}
	if b.Dx() != 1200 || b.Dy() != 900 || blue < 200 {
		t.Errorf("screenshot %dx%d with %d pixels of the curve's colour, want 1200x900 with the curve drawn", b.Dx(), b.Dy(), blue)
	}
	t.Logf("screenshot %s: %dx%d, %d pixels of the curve", shot, b.Dx(), b.Dy(), blue)
}
