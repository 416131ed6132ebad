package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/serving/chart"
)

// Events of a learning curve, besides its regular points.
const (
	curveDetected = "drift_detected" // the drift detector fired on the served model's error
	curvePromoted = "drift_promoted" // a post-drift challenger became the served model
)

// curvePoint is one row of a learning curve (--curve): the metrics after
// Rows data rows, as --json prints them at the end, with the served model's
// and the no-change baseline's beside them. Event is empty for the points
// every --every rows and names the event of the others.
type curvePoint struct {
	Run      string   `json:"run,omitempty"`
	Rows     int      `json:"rows"`
	Event    string   `json:"event,omitempty"`
	N        uint64   `json:"n"`
	Accuracy *float64 `json:"accuracy,omitempty"`
	LogLoss  *float64 `json:"log_loss,omitempty"`
	MAE      *float64 `json:"mae,omitempty"`
	RMSE     *float64 `json:"rmse,omitempty"`
	Rolling  float64  `json:"rolling"`
	// Baseline is the rolling accuracy of the no-change classifier
	// (classifiers only).
	Baseline *float64 `json:"baseline_rolling,omitempty"`
	// ServedVersion is the served snapshot's version (0: none yet), and
	// Served its metrics: cumulative (accuracy or MAE) and rolling.
	ServedVersion    uint64   `json:"served_version"`
	Served           *float64 `json:"served,omitempty"`
	ServedRolling    *float64 `json:"served_rolling,omitempty"`
	Detections       uint64   `json:"detections"`
	DriftPromotions  int      `json:"drift_promotions"`
	ServedPromotions int      `json:"promotions"`
}

// curveColumns are the CSV columns of a curve, in the JSON names.
var curveColumns = []string{"run", "rows", "event", "n", "accuracy", "log_loss", "mae", "rmse", "rolling",
	"baseline_rolling", "served_version", "served", "served_rolling", "detections", "drift_promotions", "promotions"}

func (p curvePoint) csvRecord() []string {
	opt := func(v *float64) string {
		if v == nil {
			return ""
		}
		return strconv.FormatFloat(*v, 'g', -1, 64)
	}
	return []string{p.Run, strconv.Itoa(p.Rows), p.Event, strconv.FormatUint(p.N, 10), opt(p.Accuracy), opt(p.LogLoss),
		opt(p.MAE), opt(p.RMSE), strconv.FormatFloat(p.Rolling, 'g', -1, 64), opt(p.Baseline),
		strconv.FormatUint(p.ServedVersion, 10), opt(p.Served), opt(p.ServedRolling), strconv.FormatUint(p.Detections, 10),
		strconv.Itoa(p.DriftPromotions), strconv.Itoa(p.ServedPromotions)}
}

// curveFormat is the format of a --curve file, from its extension.
func curveFormat(path string) (string, error) {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return "csv", nil
	case ".jsonl", ".json":
		return "jsonl", nil
	}
	return "", fmt.Errorf("evaluate: --curve %s: name a .csv or .jsonl file", path)
}

// plotFormat is the image format of a --plot file, from its extension.
func plotFormat(path string) (string, error) {
	ext := strings.TrimPrefix(strings.ToLower(filepath.Ext(path)), ".")
	for _, f := range chart.Formats {
		if ext == f {
			return f, nil
		}
	}
	return "", fmt.Errorf("evaluate: --plot %s: name a .svg or .png file", path)
}

// servedReplay does, over a file, what serve does around a model: it
// serves snapshots and scores them on every row before it is learned,
// with serve's promotion policy checked every promoteEvery rows, as serve
// checks it at each checkpoint (--checkpoint-every, the promote interval
// elapsed): the first snapshot, then periodic ones without a drift
// detector; with one, the live model once it beats the served one, and a
// post-drift challenger once it beats both. A drift detection at row r
// here is the detection serve makes at offset r-1 of a partition holding
// the file in order.
type servedReplay struct {
	model        *learner.Model
	mon          *learner.Monitor
	promoteEvery int
	promotion    string // reason of the promotion due at the next check ("": none)
	snapped      uint64 // examples learned at the last snapshot
	promotions   int
	// detections and drift promotions, by row
	detections, driftPromotions []int
}

func newServedReplay(model *learner.Model, rollingWindow, promoteEvery int) (*servedReplay, error) {
	mon, err := learner.NewMonitor(model.Config(), rollingWindow)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	return &servedReplay{model: model, mon: mon, promoteEvery: promoteEvery}, nil
}

// learn learns one labeled row as the engine does (schema check, the
// entity's history, the model, then the monitor on the derived fields).
func (s *servedReplay) learn(fields []features.Field, y float64, row int) error {
	m := s.model
	fields, _, err := m.Check(fields)
	if err != nil {
		return err
	}
	all := fields
	var entity []byte
	if h := m.History(); h != nil {
		entity = m.EntityKey(nil, fields)
		if all, err = m.Derive(entity, time.Time{}, fields); err != nil {
			return err
		}
	}
	if _, err := m.LearnOne(all, y); err != nil {
		return err
	}
	if s.mon.Observe(m, all, y) {
		s.detections = append(s.detections, row)
	}
	if s.promotion == "" && s.mon.ChallengerWins() {
		s.mon.AdoptChallenger(m)
		s.promotion = learner.ReasonDrift
	}
	if h := m.History(); h != nil {
		return h.Observe(entity, time.Time{}, fields, y, true)
	}
	return nil
}

// check is serve's checkpoint after row: it serves a snapshot if the
// policy promotes one.
func (s *servedReplay) check(row int) {
	if row%s.promoteEvery != 0 {
		return
	}
	m, mon := s.model, s.mon
	reason := ""
	switch learned := m.Learned(); {
	case s.promotion != "":
		reason = s.promotion
	case learned == 0 || learned == s.snapped && mon.Champion() != nil:
	case mon.Champion() == nil:
		reason = learner.ReasonInitial
	case !mon.Challengers():
		reason = learner.ReasonPeriodic
	case mon.LiveWins():
		reason = learner.ReasonChallenger
	}
	if reason == "" {
		return
	}
	s.promotion = ""
	snap := m.Snapshot(m.Version()+1, time.Time{}, reason)
	m.SetVersion(snap.Version())
	s.snapped = m.Learned()
	if reason == learner.ReasonDrift {
		mon.SetLastDetection(time.Time{})
		s.driftPromotions = append(s.driftPromotions, row)
	}
	mon.SetChampion(snap, reason == learner.ReasonChallenger || reason == learner.ReasonPeriodic)
	s.promotions++
}

// noChange is the rolling accuracy of the classifier that predicts the
// previous row's label.
type noChange struct {
	prev    float64
	started bool
	window  []float64 // 1 for a right guess, 0 for a wrong one
	next    int
	sum     float64
}

func (b *noChange) observe(y float64, window int) {
	if !b.started {
		b.prev, b.started = y, true
		return
	}
	r := 0.0
	if y == b.prev {
		r = 1
	}
	b.prev = y
	if len(b.window) < window {
		b.window = append(b.window, r)
	} else {
		b.sum -= b.window[b.next]
		b.window[b.next] = r
		b.next = (b.next + 1) % window
	}
	b.sum += r
}

func (b *noChange) rolling() (float64, bool) {
	if len(b.window) == 0 {
		return 0, false
	}
	return b.sum / float64(len(b.window)), true
}

// curve collects the learning curve of one run.
type curve struct {
	run      string
	every    int
	window   int
	task     learner.Task
	replay   *servedReplay
	baseline noChange
	points   []curvePoint
	seen     struct{ detections, promotions int }
}

func newCurve(run string, task learner.Task, every, window int, replay *servedReplay) *curve {
	if window == 0 {
		window = learner.DefaultRollingWindow
	}
	return &curve{run: run, every: every, window: window, task: task, replay: replay}
}

// observeLabel feeds the no-change baseline with a labeled row's label.
func (c *curve) observeLabel(y float64) {
	if c.task != learner.Regression {
		c.baseline.observe(y, c.window)
	}
}

// after records what happened at row: the events, and a point every
// c.every rows.
func (c *curve) after(row int) {
	r := c.replay
	for ; c.seen.detections < len(r.detections); c.seen.detections++ {
		c.points = append(c.points, c.point(r.detections[c.seen.detections], curveDetected))
	}
	for ; c.seen.promotions < len(r.driftPromotions); c.seen.promotions++ {
		c.points = append(c.points, c.point(r.driftPromotions[c.seen.promotions], curvePromoted))
	}
	if row%c.every == 0 {
		c.points = append(c.points, c.point(row, ""))
	}
}

// finish adds the point of the last row, unless it is there already.
func (c *curve) finish(rows int) {
	if n := len(c.points); n == 0 || c.points[n-1].Rows != rows || c.points[n-1].Event != "" {
		c.points = append(c.points, c.point(rows, ""))
	}
}

func (c *curve) point(row int, event string) curvePoint {
	m := c.replay.model.Metrics()
	p := curvePoint{Run: c.run, Rows: row, Event: event, N: m.N, Rolling: m.Rolling,
		Detections: c.replay.mon.Detections(), DriftPromotions: len(c.replay.driftPromotions), ServedPromotions: c.replay.promotions}
	if c.task == learner.Regression {
		p.MAE, p.RMSE = ptr(m.MAE), ptr(m.RMSE)
	} else {
		p.Accuracy, p.LogLoss = ptr(m.Accuracy), ptr(m.LogLoss)
		if b, ok := c.baseline.rolling(); ok {
			p.Baseline = &b
		}
	}
	if champ := c.replay.mon.Champion(); champ != nil {
		p.ServedVersion = champ.Version()
		if cm := c.replay.mon.ChampionMetrics(); cm.N > 0 {
			p.ServedRolling = ptr(cm.Rolling)
			if c.task == learner.Regression {
				p.Served = ptr(cm.MAE)
			} else {
				p.Served = ptr(cm.Accuracy)
			}
		}
	}
	return p
}

func ptr(v float64) *float64 { return &v }

// chartCurve is the picture of c: its regular points, and its events as
// marks.
func (c *curve) chartCurve() chart.Curve {
	cv := chart.Curve{Name: c.run}
	value := func(v *float64) float64 {
		if v == nil {
			return math.NaN()
		}
		return *v
	}
	for _, p := range c.points {
		switch p.Event {
		case curveDetected:
			cv.Detections = append(cv.Detections, float64(p.Rows))
			continue
		case curvePromoted:
			cv.Promotions = append(cv.Promotions, float64(p.Rows))
			continue
		}
		cv.X = append(cv.X, float64(p.Rows))
		cv.Rolling = append(cv.Rolling, p.Rolling)
		cumulative := p.Accuracy
		if c.task == learner.Regression {
			cumulative = p.MAE
		}
		cv.Cumulative = append(cv.Cumulative, value(cumulative))
		cv.Served = append(cv.Served, value(p.ServedRolling))
		if c.task != learner.Regression {
			cv.Baseline = append(cv.Baseline, value(p.Baseline))
		}
	}
	return cv
}

// writeCurves writes the curves' points to path, as CSV or JSON lines by
// its extension.
func writeCurves(path string, curves []*curve) (err error) {
	format, err := curveFormat(path)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("evaluate: --curve: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("evaluate: --curve: %w", cerr)
		}
	}()
	w := bufio.NewWriter(f)
	if format == "csv" {
		w.WriteString(strings.Join(curveColumns, ",") + "\n")
	}
	enc := json.NewEncoder(w)
	for _, c := range curves {
		for _, p := range c.points {
			if format == "csv" {
				w.WriteString(csvLine(p.csvRecord()))
				continue
			}
			if err := enc.Encode(p); err != nil {
				return fmt.Errorf("evaluate: --curve: %w", err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("evaluate: --curve: %w", err)
	}
	return nil
}

// csvLine is one CSV record: a cell with a comma, quote or newline is
// quoted (only run names can hold one).
func csvLine(cells []string) string {
	for i, c := range cells {
		if strings.ContainsAny(c, ",\"\n\r") {
			cells[i] = `"` + strings.ReplaceAll(c, `"`, `""`) + `"`
		}
	}
	return strings.Join(cells, ",") + "\n"
}

// plotCurves draws the curves to path (svg or png by its extension).
func plotCurves(path, title string, task learner.Task, curves []*curve) (err error) {
	format, err := plotFormat(path)
	if err != nil {
		return err
	}
	c := chart.Chart{Title: title, Metric: "accuracy"}
	if task == learner.Regression {
		c.Metric = "MAE"
	}
	for _, cv := range curves {
		c.Curves = append(c.Curves, cv.chartCurve())
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("evaluate: --plot: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("evaluate: --plot: %w", cerr)
		}
	}()
	if err := chart.Render(f, c, format); err != nil {
		return fmt.Errorf("evaluate: --plot: %w", err)
	}
	return nil
}

// compareRun is a model of --compare: a config file's model.
type compareRun struct {
	name          string
	model         learner.ModelConfig
	rollingWindow int
}

// parseCompare reads --compare: comma-separated FILE (every model of the
// config file) or FILE#MODEL (that one).
func parseCompare(spec string) ([]compareRun, error) {
	var runs []compareRun
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		path, name, _ := strings.Cut(item, "#")
		fc, err := loadConfigFile(path)
		if err != nil {
			return nil, fmt.Errorf("evaluate: --compare: %w", err)
		}
		found := false
		for _, m := range fc.Models {
			if name == "" || m.Name == name {
				runs = append(runs, compareRun{name: m.Name, model: m, rollingWindow: fc.RollingWindow})
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("evaluate: --compare: config %s has no model %q", path, name)
		}
	}
	if len(runs) == 0 {
		return nil, errors.New("evaluate: --compare names no config file")
	}
	return runs, nil
}
