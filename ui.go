package eddy

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/serving/chart"
)

// The live page (/ui on the metrics listener) samples the service once
// a second and keeps the newest uiHistory samples of each model: 15
// minutes. Rates and latency percentiles are over the newest uiRateWindow.
const (
	uiSampleInterval = time.Second
	uiHistory        = 900
	uiRateWindow     = 30 * time.Second
	uiSnapshotsShown = 10
)

// uiSample is one model's figures at one moment.
type uiSample struct {
	at                          time.Time
	rolling, cumulative, served float64 // NaN: none yet
	learnedHere, version        uint64
	detections, driftPromotions uint64
	predictCounts               []uint64 // cumulative, per bucket of predictBounds
	predictTotal                uint64
	pinned, learning            bool
}

// uiModel is the history of one model.
type uiModel struct {
	name    string
	task    learner.Task
	samples []uiSample
	// detected and promoted are when the counters moved: the marks.
	detected, promoted []time.Time
	bounds             []float64 // upper bounds of the Predict latency buckets
	svg                []byte    // the chart of the newest sample, drawn once
	svgAt              time.Time
	drawFailed         bool // logged once
}

// liveUI is the live page's state: the samples, and the handlers.
type liveUI struct {
	s      *Service
	mu     sync.Mutex
	models []*uiModel
	snaps  map[string]snapshotList // by model
	status struct {
		brokerUp   bool
		lag        float64
		consumed   []consumedAt
		deadLetter uint64
	}
}

// snapshotList is a model's newest snapshots as last read from the store.
type snapshotList struct {
	at    time.Time
	infos []engine.SnapshotInfo
}

type consumedAt struct {
	at time.Time
	n  uint64
}

func newLiveUI(s *Service) *liveUI {
	u := &liveUI{s: s, snaps: make(map[string]snapshotList)}
	for _, m := range s.cfg.Learner.Models {
		task := m.Task
		if task == "" {
			task = learner.Binary
		}
		u.models = append(u.models, &uiModel{name: m.Name, task: task})
	}
	return u
}

// register adds the page's handlers to mux.
func (u *liveUI) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui", http.StatusFound) })
	mux.HandleFunc("GET /ui", u.page)
	mux.HandleFunc("GET /ui/panel", u.panel)
	mux.HandleFunc("GET /ui/data.json", u.data)
	mux.HandleFunc("POST /ui/action", u.action)
}

// run samples the service every uiSampleInterval until ctx ends.
func (u *liveUI) run(ctx context.Context) {
	u.sample(time.Now())
	t := time.NewTicker(uiSampleInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			u.sample(now)
		}
	}
}

// sample records the service's figures at now.
func (u *liveUI) sample(now time.Time) {
	st := u.s.Stats()
	lag, promotions, predict := u.gathered()
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status.brokerUp, u.status.lag, u.status.deadLetter = st.BrokerUp, lag, st.Consumer.DeadLettered
	u.status.consumed = appendBounded(u.status.consumed, consumedAt{now, st.Consumer.Consumed})
	for _, m := range u.models {
		ms, _ := st.Model(m.name)
		s := uiSample{at: now, rolling: math.NaN(), cumulative: math.NaN(), served: math.NaN(),
			learnedHere: ms.LearnedHere, version: ms.ServedVersion, detections: ms.Detections,
			driftPromotions: promotions[m.name], pinned: ms.Pinned, learning: ms.Learning}
		if ms.Metrics.N > 0 {
			s.rolling, s.cumulative = ms.Metrics.Rolling, ms.Metrics.Accuracy
			if m.task == learner.Regression {
				s.cumulative = ms.Metrics.MAE
			}
		}
		if ms.ChampionMetrics.N > 0 {
			s.served = ms.ChampionMetrics.Rolling
		}
		if h := predict[m.name]; h != nil {
			m.bounds = m.bounds[:0]
			for _, b := range h.GetBucket() {
				m.bounds = append(m.bounds, b.GetUpperBound())
				s.predictCounts = append(s.predictCounts, b.GetCumulativeCount())
			}
			s.predictTotal = h.GetSampleCount()
		}
		if n := len(m.samples); n > 0 {
			prev := m.samples[n-1]
			if s.detections > prev.detections {
				m.detected = append(m.detected, now)
			}
			if s.driftPromotions > prev.driftPromotions {
				m.promoted = append(m.promoted, now)
			}
		}
		m.samples = appendBounded(m.samples, s)
		oldest := m.samples[0].at
		m.detected = dropBefore(m.detected, oldest)
		m.promoted = dropBefore(m.promoted, oldest)
	}
}

func appendBounded[T any](s []T, v T) []T {
	if len(s) >= uiHistory {
		s = append(s[:0], s[len(s)-uiHistory+1:]...)
	}
	return append(s, v)
}

func dropBefore(ts []time.Time, oldest time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(oldest) {
		i++
	}
	return ts[i:]
}

// gathered reads from the registry what Stats does not hold: consumer lag
// (summed over partitions), drift promotions and the Predict latency
// histogram, by model.
func (u *liveUI) gathered() (lag float64, driftPromotions map[string]uint64, predict map[string]*dto.Histogram) {
	driftPromotions, predict = make(map[string]uint64), make(map[string]*dto.Histogram)
	if u.s.gatherer == nil {
		return 0, driftPromotions, predict
	}
	families, err := u.s.gatherer.Gather()
	if err != nil && len(families) == 0 {
		return 0, driftPromotions, predict
	}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for _, f := range families {
		switch f.GetName() {
		case "eddy_consumer_lag":
			for _, m := range f.GetMetric() {
				lag += m.GetGauge().GetValue()
			}
		case "eddy_snapshots_promoted_total":
			for _, m := range f.GetMetric() {
				if label(m, "reason") == learner.ReasonDrift {
					driftPromotions[label(m, "model")] += uint64(m.GetCounter().GetValue())
				}
			}
		case "eddy_predict_duration_seconds":
			for _, m := range f.GetMetric() {
				predict[label(m, "model")] = m.GetHistogram()
			}
		}
	}
	return lag, driftPromotions, predict
}

// uiModelView is what the page shows of a model, and what data.json holds.
type uiModelView struct {
	Name            string        `json:"name"`
	Task            string        `json:"task"`
	Metric          string        `json:"metric"`
	Learning        bool          `json:"learning_here"`
	ServedVersion   uint64        `json:"served_version"`
	Pinned          bool          `json:"pinned"`
	Rolling         *float64      `json:"rolling,omitempty"`
	Served          *float64      `json:"served_rolling,omitempty"`
	EventsPerSecond float64       `json:"events_per_second"`
	PredictP50      *float64      `json:"predict_p50_seconds,omitempty"`
	PredictP99      *float64      `json:"predict_p99_seconds,omitempty"`
	PredictPerSec   float64       `json:"predict_per_second"`
	Detections      uint64        `json:"detections"`
	Points          int           `json:"points"`
	Times           []int64       `json:"times_unix_ms"`
	RollingSeries   []float64     `json:"rolling_series"`
	ServedSeries    []float64     `json:"served_series"`
	DetectedAt      []int64       `json:"detected_unix_ms"`
	PromotedAt      []int64       `json:"drift_promoted_unix_ms"`
	Snapshots       []uiSnap      `json:"snapshots"`
	SnapshotsNote   string        `json:"snapshots_note,omitempty"`
	SVG             template.HTML `json:"-"`
}

type uiSnap struct {
	Version uint64    `json:"version"`
	Created time.Time `json:"created"`
	Reason  string    `json:"reason"`
	Learned uint64    `json:"learned"`
	Rolling float64   `json:"rolling"`
	Serving bool      `json:"serving"`
	Pinned  bool      `json:"pinned"`
}

type uiView struct {
	BrokerUp        bool          `json:"broker_up"`
	Lag             float64       `json:"consumer_lag"`
	EventsPerSecond float64       `json:"consumed_per_second"`
	DeadLettered    uint64        `json:"dead_lettered"`
	ActionsEnabled  bool          `json:"actions_enabled"`
	Models          []uiModelView `json:"models"`
	Updated         time.Time     `json:"updated"`
}

// view builds the page's content from the samples; with drawing, each
// model's chart too.
func (u *liveUI) view(drawing bool) uiView {
	u.mu.Lock()
	defer u.mu.Unlock()
	v := uiView{BrokerUp: u.status.brokerUp, Lag: u.status.lag, DeadLettered: u.status.deadLetter,
		ActionsEnabled: u.s.server.HasCredentials(), Updated: time.Now().UTC()}
	if c := u.status.consumed; len(c) > 1 {
		first, last := c[windowStart(len(c), func(i int) time.Time { return c[i].at })], c[len(c)-1]
		v.EventsPerSecond = rate(first.n, last.n, last.at.Sub(first.at))
	}
	for _, m := range u.models {
		mv := uiModelView{Name: m.name, Task: string(m.task), Metric: "accuracy"}
		if m.task == learner.Regression {
			mv.Metric = "MAE"
		}
		if n := len(m.samples); n > 0 {
			last := m.samples[n-1]
			first := m.samples[windowStart(n, func(i int) time.Time { return m.samples[i].at })]
			mv.Learning, mv.ServedVersion, mv.Pinned, mv.Detections = last.learning, last.version, last.pinned, last.detections
			if !math.IsNaN(last.rolling) {
				mv.Rolling = ptrTo(last.rolling)
			}
			if !math.IsNaN(last.served) {
				mv.Served = ptrTo(last.served)
			}
			mv.EventsPerSecond = rate(first.learnedHere, last.learnedHere, last.at.Sub(first.at))
			if last.predictTotal > first.predictTotal && len(last.predictCounts) == len(first.predictCounts) {
				mv.PredictPerSec = rate(first.predictTotal, last.predictTotal, last.at.Sub(first.at))
				mv.PredictP50 = ptrTo(bucketQuantile(0.5, m.bounds, first.predictCounts, last.predictCounts))
				mv.PredictP99 = ptrTo(bucketQuantile(0.99, m.bounds, first.predictCounts, last.predictCounts))
			}
			for _, s := range m.samples {
				if math.IsNaN(s.rolling) && math.IsNaN(s.served) {
					continue
				}
				mv.Times = append(mv.Times, s.at.UnixMilli())
				mv.RollingSeries = append(mv.RollingSeries, jsonNumber(s.rolling))
				mv.ServedSeries = append(mv.ServedSeries, jsonNumber(s.served))
			}
			mv.Points = len(mv.Times)
		}
		for _, t := range m.detected {
			mv.DetectedAt = append(mv.DetectedAt, t.UnixMilli())
		}
		for _, t := range m.promoted {
			mv.PromotedAt = append(mv.PromotedAt, t.UnixMilli())
		}
		if drawing {
			mv.SVG = u.chartOf(m)
		}
		v.Models = append(v.Models, mv)
	}
	return v
}

// jsonNumber is v, or -1 for none (JSON has no NaN).
func jsonNumber(v float64) float64 {
	if math.IsNaN(v) {
		return -1
	}
	return v
}

func ptrTo(v float64) *float64 { return &v }

// windowStart is the index of the oldest of n samples within uiRateWindow
// of the newest.
func windowStart(n int, at func(int) time.Time) int {
	i := n - 1
	for i > 0 && at(n-1).Sub(at(i-1)) <= uiRateWindow {
		i--
	}
	return i
}

func rate(from, to uint64, d time.Duration) float64 {
	if d <= 0 || to < from {
		return 0
	}
	return float64(to-from) / d.Seconds()
}

// bucketQuantile estimates the q-quantile of the observations between two
// cumulative histograms of the same buckets, interpolating within a
// bucket as Prometheus's histogram_quantile does.
func bucketQuantile(q float64, bounds []float64, before, after []uint64) float64 {
	total := after[len(after)-1] - before[len(before)-1]
	if len(bounds) == 0 || total == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	lower, prev := 0.0, uint64(0)
	for i, ub := range bounds {
		c := after[i] - before[i]
		if float64(c) >= rank {
			if math.IsInf(ub, 1) {
				return lower
			}
			inBucket := float64(c - prev)
			if inBucket == 0 {
				return ub
			}
			return lower + (ub-lower)*(rank-float64(prev))/inBucket
		}
		lower, prev = ub, c
	}
	return bounds[len(bounds)-1]
}

// chartOf draws m's curve over the samples (nil before there is one),
// once per sample.
func (u *liveUI) chartOf(m *uiModel) template.HTML {
	n := len(m.samples)
	if n == 0 {
		return ""
	}
	if last := m.samples[n-1].at; !m.svgAt.Equal(last) {
		m.svg, m.svgAt = u.draw(m), last
	}
	return template.HTML(m.svg) // drawn here from numbers: no user text inside
}

func (u *liveUI) draw(m *uiModel) []byte {
	cv := chart.Curve{}
	for _, s := range m.samples {
		if math.IsNaN(s.rolling) && math.IsNaN(s.served) {
			continue
		}
		cv.X = append(cv.X, float64(s.at.UnixMilli())/1000)
		cv.Rolling = append(cv.Rolling, s.rolling)
		cv.Cumulative = append(cv.Cumulative, s.cumulative)
		cv.Served = append(cv.Served, s.served)
	}
	if len(cv.X) < 2 {
		return nil
	}
	for _, t := range m.detected {
		cv.Detections = append(cv.Detections, float64(t.UnixMilli())/1000)
	}
	for _, t := range m.promoted {
		cv.Promotions = append(cv.Promotions, float64(t.UnixMilli())/1000)
	}
	metric := "accuracy"
	if m.task == learner.Regression {
		metric = "MAE"
	}
	var buf bytes.Buffer
	c := chart.Chart{Metric: metric, XLabel: "time (UTC)", Time: true, Curves: []chart.Curve{cv}, Width: 760, Height: 300}
	if err := chart.Render(&buf, c, "svg"); err != nil {
		if !m.drawFailed { // once per model: it would fail again every second
			u.s.log.Warn("live page: cannot draw the curve; the page shows the figures without it", "model", m.name, "err", err)
			m.drawFailed = true
		}
		return nil
	}
	m.drawFailed = false
	b := buf.Bytes()
	if i := bytes.Index(b, []byte("<svg")); i > 0 {
		b = b[i:] // inline in HTML: no XML prolog
	}
	return b
}

// snapshots lists the newest stored snapshots of model for the page. The
// store is read at most once per sample interval, however many browsers
// poll.
func (u *liveUI) snapshots(mv *uiModelView) {
	u.mu.Lock()
	c, ok := u.snaps[mv.Name]
	if !ok || time.Since(c.at) >= uiSampleInterval {
		infos, err := u.s.engine.Snapshots(mv.Name)
		if err != nil {
			infos = nil
		}
		slices.SortFunc(infos, func(a, b engine.SnapshotInfo) int { return cmp.Compare(b.Version, a.Version) })
		c = snapshotList{at: time.Now(), infos: infos[:min(len(infos), uiSnapshotsShown)]}
		u.snaps[mv.Name] = c
	}
	u.mu.Unlock()
	if len(c.infos) == 0 {
		mv.SnapshotsNote = "no snapshots stored on this instance (the instance that learns the model lists them)"
		return
	}
	for _, in := range c.infos {
		mv.Snapshots = append(mv.Snapshots, uiSnap{Version: in.Version, Created: in.Created.UTC(), Reason: in.Reason, Learned: in.Learned,
			Rolling: in.Metrics.Rolling, Serving: in.Version == mv.ServedVersion, Pinned: in.Pinned})
	}
}

// fullView is view with each model's snapshots.
func (u *liveUI) fullView(drawing bool) uiView {
	v := u.view(drawing)
	for i := range v.Models {
		u.snapshots(&v.Models[i])
	}
	return v
}

func (u *liveUI) page(w http.ResponseWriter, r *http.Request) {
	u.render(w, "page", u.fullView(true))
}

func (u *liveUI) panel(w http.ResponseWriter, r *http.Request) {
	u.render(w, "panel", u.fullView(true))
}

func (u *liveUI) render(w http.ResponseWriter, name string, v uiView) {
	var buf bytes.Buffer
	if err := uiTemplates.ExecuteTemplate(&buf, name, v); err != nil {
		u.s.log.Error("live page: template failed", "err", err)
		http.Error(w, "the page could not be drawn; the server log has the details", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:")
	_, _ = w.Write(buf.Bytes())
}

func (u *liveUI) data(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(u.fullView(false))
}

// action runs a page action (POST /ui/action, form fields action, model and
// version; the credential as "Authorization: Bearer <token>") and answers
// JSON: the served version, or an error naming the problem.
func (u *liveUI) action(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	reply := func(code int, v any) {
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	if err := r.ParseForm(); err != nil {
		reply(http.StatusBadRequest, map[string]string{"error": "malformed form: " + err.Error()})
		return
	}
	var version uint64
	if s := r.PostForm.Get("version"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			reply(http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("version %q is not a number", s)})
			return
		}
		version = v
	}
	token := ""
	if scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "bearer") {
		token = strings.TrimSpace(t)
	}
	resp, err := u.s.server.PageAction(r.Context(), token, r.PostForm.Get("action"), r.PostForm.Get("model"), version)
	if err != nil {
		st, _ := status.FromError(err)
		reply(httpStatusOf(st.Code()), map[string]string{"error": st.Message(), "code": st.Code().String()})
		return
	}
	reply(http.StatusOK, map[string]any{"model": resp.GetModel(), "serving_version": resp.GetServingVersion(), "pinned": resp.GetPinned()})
}

func httpStatusOf(c codes.Code) int {
	switch c {
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.InvalidArgument:
		return http.StatusBadRequest
	case codes.NotFound:
		return http.StatusNotFound
	case codes.FailedPrecondition:
		return http.StatusConflict
	case codes.Unavailable, codes.DeadlineExceeded:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

var uiTemplates = template.Must(template.New("ui").Funcs(template.FuncMap{
	"pct": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatFloat(100**v, 'f', 2, 64) + "%"
	},
	"num": func(v *float64) string {
		if v == nil {
			return "–"
		}
		return strconv.FormatFloat(*v, 'g', 4, 64)
	},
	"ms": func(v *float64) string {
		if v == nil || math.IsNaN(*v) {
			return "–"
		}
		return strconv.FormatFloat(*v*1000, 'f', 2, 64) + " ms"
	},
	"rate": func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) },
	"time": func(t time.Time) string { return t.Format("15:04:05") },
	"f4":   func(v float64) string { return strconv.FormatFloat(v, 'f', 4, 64) },
}).Parse(uiHTML))
