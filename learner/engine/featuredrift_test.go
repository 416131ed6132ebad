package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// driftLog collects the feature-drift detections an engine logs.
type driftLog struct {
	mu sync.Mutex
	at map[string][]int64 // feature → offsets
}

func (d *driftLog) Enabled(context.Context, slog.Level) bool { return true }
func (d *driftLog) Handle(_ context.Context, r slog.Record) error {
	var feature string
	var offset int64 = -1
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "feature":
			feature = a.Value.String()
		case "offset":
			offset = a.Value.Int64()
		}
		return true
	})
	if feature != "" && offset >= 0 {
		d.mu.Lock()
		d.at[feature] = append(d.at[feature], offset)
		d.mu.Unlock()
	}
	return nil
}
func (d *driftLog) WithAttrs([]slog.Attr) slog.Handler { return d }
func (d *driftLog) WithGroup(string) slog.Handler      { return d }

// elec2Watched are elec2's features feature drift watches here: all but
// date, a time index that grows with every row (any windowed comparison
// of it drifts by construction).
var elec2Watched = []string{"day", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer"}

// runElec2 runs elec2.csv through an engine with feature drift on the
// watched features, nswprice multiplied by scale from row 20,000, under a
// schema that bounds nswprice to [0, 1] with policy onViolation, and
// returns the detections by feature and the model's accuracy.
func runElec2(t *testing.T, scale float64, onViolation string, rows int) (map[string][]int64, float64, uint64) {
	t.Helper()
	data := readCSV(t, "elec2.csv", "up")
	if rows > 0 {
		data = data[:rows]
	}
	zero, one := 0.0, 1.0
	mc := learner.ModelConfig{Name: "m", Topic: "events", Task: learner.Binary, Optimizer: learner.OptimizerConfig{LR: 0.005},
		Schema: &features.Schema{OnViolation: onViolation, Features: map[string]features.FeatureSpec{
			"nswprice": {Kind: features.KindNumber, Min: &zero, Max: &one}}},
		FeatureDrift: &learner.FeatureDriftConfig{Features: elec2Watched}}
	store, _ := openTestStore(t, t.TempDir())
	e, reg := newTestEngine(t, store, Config{Models: []learner.ModelConfig{mc}, PromoteInterval: time.Hour}, nil)
	log := &driftLog{at: make(map[string][]int64)}
	e.log = slog.New(log)
	for i, ex := range data {
		fields := ex.Fields
		if i >= 20000 && scale != 1 {
			fields = append([]features.Field(nil), ex.Fields...)
			for j := range fields {
				if string(fields[j].Name) == "nswprice" {
					fields[j].Num *= scale
				}
			}
		}
		err := e.Process("events", &Example{Offset: int64(i), Fields: fields, Label: ex.Y, HasLabel: true})
		var rej *learner.RejectError
		if err != nil && !errors.As(err, &rej) {
			t.Fatalf("row %d: %v", i, err)
		}
		if i%100 == 99 {
			checkpoint(t, e, Offset{TopicPartition{"events", 0}, int64(i + 1)})
		}
	}
	total := 0.0
	for _, f := range elec2Watched {
		total += metricValue(t, reg, "eddy_feature_drift_detections_total", map[string]string{"model": "m", "feature": f})
	}
	n := 0
	for _, at := range log.at {
		n += len(at)
	}
	if int(total) != n {
		t.Fatalf("the metric counts %v detections, the log %d", total, n)
	}
	return log.at, e.models[0].Metrics().Accuracy, e.models[0].Learned()
}

// TestFeatureDriftFindsAChangeOfUnitOnElec2 runs elec2 unchanged and with
// nswprice multiplied by 1,000 from row 20,000 (a unit change upstream):
// the change is detected on nswprice within 500 rows; the unchanged
// features alarm only where elec2 itself changes (its Victoria columns are
// a constant placeholder until about row 17,760, then real data); and with
// dead_letter on nswprice's range the model, which never learns the
// corrupted values, scores within a point of the unchanged stream over as
// many rows. (It logs what accept and ignore_feature do after the change.)
func TestFeatureDriftFindsAChangeOfUnitOnElec2(t *testing.T) {
	plain, plainAcc, plainN := runElec2(t, 1, features.PolicyDeadLetter, 0)
	scaled, scaledAcc, learned := runElec2(t, 1000, features.PolicyDeadLetter, 0)
	_, sameRowsAcc, _ := runElec2(t, 1, features.PolicyDeadLetter, int(learned))
	_, beforeAcc, beforeN := runElec2(t, 1, features.PolicyDeadLetter, 20000)
	_, acceptAcc, acceptN := runElec2(t, 1000, features.PolicyAccept, 0)
	_, ignoreAcc, ignoreN := runElec2(t, 1000, features.PolicyIgnoreFeature, 0)
	after := func(acc float64, n uint64) float64 {
		return (acc*float64(n) - beforeAcc*float64(beforeN)) / float64(n-beforeN)
	}
	t.Logf("unchanged stream: detections %v, accuracy %.4f; rows 20,000 on: %.4f", plain, plainAcc, after(plainAcc, plainN))
	t.Logf("nswprice x1000 from row 20,000: detections %v", scaled)
	t.Logf("  dead_letter: %d rows learned, accuracy %.4f (unchanged stream over as many rows: %.4f)", learned, scaledAcc, sameRowsAcc)
	t.Logf("  accept (no protection): accuracy on rows 20,000 on %.4f; ignore_feature: %.4f", after(acceptAcc, acceptN), after(ignoreAcc, ignoreN))
	hit := false
	for _, at := range scaled["nswprice"] {
		hit = hit || at >= 20000 && at < 20500
	}
	if !hit {
		t.Errorf("no detection on nswprice within 500 rows of the change: %v", scaled["nswprice"])
	}
	for _, f := range []string{"day", "period", "nswdemand"} {
		if len(plain[f]) != 0 {
			t.Errorf("false alarms on %s over the unchanged stream: %v", f, plain[f])
		}
	}
	for _, f := range []string{"vicprice", "vicdemand", "transfer"} {
		if len(plain[f]) != 1 || plain[f][0] < 17760 || plain[f][0] > 18300 {
			t.Errorf("%s: detections %v, want one where elec2's Victoria data begins (rows 17,760-18,300)", f, plain[f])
		}
	}
	if math.Abs(scaledAcc-sameRowsAcc) > 0.01 {
		t.Errorf("with dead_letter on the range, accuracy %.4f against %.4f unchanged over as many rows: more than a point apart", scaledAcc, sameRowsAcc)
	}
}

// TestFeatureDriftSurvivesARestart checkpoints a model's feature watch
// mid-reference and mid-window, restarts the engine on the same store, and
// checks that the restored detectors continue where they stood: the same
// detection at the same event as an engine that never stopped.
func TestFeatureDriftSurvivesARestart(t *testing.T) {
	mc := learner.ModelConfig{Name: "m", Topic: "events", FeatureDrift: &learner.FeatureDriftConfig{Features: []string{"x"}, Reference: 200, Window: 100}}
	cfg := Config{Models: []learner.ModelConfig{mc}, PromoteInterval: time.Hour}
	value := func(i int) float64 {
		x := float64(i%17) / 17
		if i >= 700 {
			x *= 1000
		}
		return x
	}
	run := func(e *Engine, log *driftLog, from, to int) {
		for i := from; i < to; i++ {
			if err := e.Process("events", &Example{Offset: int64(i), Fields: []features.Field{{Name: []byte("x"), Kind: features.Number, Num: value(i)}}, Label: float64(i % 2), HasLabel: true}); err != nil {
				t.Fatal(err)
			}
		}
		checkpoint(t, e, Offset{TopicPartition{"events", 0}, int64(to)})
	}
	refStore, _ := openTestStore(t, t.TempDir())
	ref, _ := newTestEngine(t, refStore, cfg, nil)
	refLog := &driftLog{at: make(map[string][]int64)}
	ref.log = slog.New(refLog)
	run(ref, refLog, 0, 1000)

	dir := t.TempDir()
	for _, cut := range []int{150, 650} {
		s, closeStore := openTestStore(t, dir)
		e, _ := newTestEngine(t, s, cfg, nil)
		log := &driftLog{at: make(map[string][]int64)}
		e.log = slog.New(log)
		if cut == 150 {
			run(e, log, 0, 150)
			closeStore()
			continue
		}
		run(e, log, 150, 650)
		closeStore()
		s, _ = openTestStore(t, dir)
		e, _ = newTestEngine(t, s, cfg, nil)
		log = &driftLog{at: make(map[string][]int64)}
		e.log = slog.New(log)
		run(e, log, 650, 1000)
		if len(refLog.at["x"]) != 1 || len(log.at["x"]) != 1 || log.at["x"][0] != refLog.at["x"][0] {
			t.Fatalf("after restarts detections at %v, without at %v", log.at["x"], refLog.at["x"])
		}
	}
}

// TestFeatureDriftStaysQuietOnSEAWhileConceptDriftIsDetected runs sea.csv,
// whose features never change distribution (only the concept does), with
// feature drift on f1-f3 beside ADWIN on the champion's error: no feature
// alarm, and the concept drifts are detected as without feature drift.
func TestFeatureDriftStaysQuietOnSEAWhileConceptDriftIsDetected(t *testing.T) {
	mc := seaDriftConfig
	mc.FeatureDrift = &learner.FeatureDriftConfig{Features: []string{"f1", "f2", "f3"}}
	var log *driftLog
	e, _, detections := runEngineOnCSVWith(t, "sea.csv", "label", mc, func(e *Engine) {
		log = &driftLog{at: make(map[string][]int64)}
		e.log = slog.New(log)
	})
	_, _, without := runEngineOnCSV(t, "sea.csv", "label", seaDriftConfig)
	t.Logf("feature-drift detections %v; concept drift detections %v (without feature drift %v)", log.at, detections, without)
	if len(log.at) != 0 {
		t.Errorf("feature-drift alarms on SEA, whose features never change: %v", log.at)
	}
	if !slices.Equal(detections, without) {
		t.Errorf("concept drift detections %v, without feature drift %v", detections, without)
	}
	for _, s := range e.states[0].fwatch.shifts {
		if !s.Ready() {
			t.Fatal("a feature detector never compared anything")
		}
	}
}

// BenchmarkFeatureDrift is the engine's per-event cost (Process: check,
// derive, learn, watch) with feature drift off and on for all 8 numeric
// features, in one run.
func BenchmarkFeatureDrift(b *testing.B) {
	data := wideEvents(5, 1024, 8, 0)
	var names []string
	for j := range 8 {
		names = append(names, fmt.Sprintf("n%d", j))
	}
	for _, mode := range []struct {
		name string
		fd   *learner.FeatureDriftConfig
	}{{"off", nil}, {"on", &learner.FeatureDriftConfig{Features: names}}} {
		b.Run("feature drift "+mode.name, func(b *testing.B) {
			s, _ := openTestStore(b, b.TempDir())
			e, _ := newTestEngine(b, s, Config{Models: []learner.ModelConfig{{Name: "m", Topic: "events", FeatureDrift: mode.fd}}, PromoteInterval: time.Hour}, nil)
			for i := range 3000 { // past the reference and the first window
				ex := &data[i%len(data)]
				if err := e.Process("events", &Example{Offset: int64(i), Fields: ex.Fields, Label: ex.Y, HasLabel: true}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				ex := &data[i%len(data)]
				i++
				if err := e.Process("events", &Example{Offset: int64(i), Fields: ex.Fields, Label: ex.Y, HasLabel: true}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestASchemaInferenceSurvivesARestart infers a schema from 50 events, 30
// of them before a restart: the restarted engine freezes it at the 50th
// event overall, and a restart after that keeps the frozen schema.
func TestASchemaInferenceSurvivesARestart(t *testing.T) {
	mc := learner.ModelConfig{Name: "m", Topic: "events", Schema: &features.Schema{Infer: 50, NewFeatures: features.PolicyDeadLetter}}
	cfg := Config{Models: []learner.ModelConfig{mc}, PromoteInterval: time.Hour}
	dir := t.TempDir()
	feed := func(e *Engine, from, to int) {
		for i := from; i < to; i++ {
			if err := e.Process("events", &Example{Offset: int64(i), Fields: []features.Field{{Name: []byte("x"), Kind: features.Number, Num: float64(i)}}, Label: float64(i % 2), HasLabel: true}); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		checkpoint(t, e, Offset{TopicPartition{"events", 0}, int64(to)})
	}
	s, closeStore := openTestStore(t, dir)
	e, _ := newTestEngine(t, s, cfg, nil)
	feed(e, 0, 30)
	closeStore()
	s, closeStore = openTestStore(t, dir)
	e, _ = newTestEngine(t, s, cfg, nil)
	feed(e, 30, 49)
	if e.models[0].Schema().Declared() {
		t.Fatal("the schema froze before its 50th event")
	}
	feed(e, 49, 50)
	if got := e.models[0].Schema(); got.Features["x"].Kind != features.KindNumber {
		t.Fatalf("after 50 events over a restart the schema is %+v", got)
	}
	closeStore()
	s, _ = openTestStore(t, dir)
	e, _ = newTestEngine(t, s, cfg, nil)
	err := e.Process("events", &Example{Offset: 50, Fields: []features.Field{{Name: []byte("y"), Kind: features.Number, Num: 1}}, Label: 1, HasLabel: true})
	var rej *learner.RejectError
	if !errors.As(err, &rej) || rej.Reason != learner.ReasonSchemaViolation {
		t.Fatalf("after a restart an undeclared feature gave %v, want a schema violation", err)
	}
}

// TestAFeatureDriftCanStartAChallenger changes the unit of the only
// feature (x 1,000, the concept unchanged in the new unit) after 4,000
// events: with challenger on, the feature-drift detection starts a fresh
// challenger, which learns the new unit with a fresh scaler and is served
// (reason drift); the served models then score better after the change
// than without it.
func TestAFeatureDriftCanStartAChallenger(t *testing.T) {
	run := func(challenger bool) (drift int, after float64) {
		mc := learner.ModelConfig{Name: "m", Topic: "events", Task: learner.Binary,
			Drift:        learner.DriftConfig{Detector: "adwin"},
			FeatureDrift: &learner.FeatureDriftConfig{Features: []string{"x"}, Challenger: challenger}}
		s, _ := openTestStore(t, t.TempDir())
		rec := &snapshotRecorder{}
		e, _ := newTestEngine(t, s, Config{Models: []learner.ModelConfig{mc}, PromoteInterval: time.Second}, rec)
		clock := time.Unix(0, 0)
		e.now = func() time.Time { return clock }
		e.promoted = clock
		r := rand.New(rand.NewPCG(4, 2))
		var before float64
		var beforeN uint64
		for i := range 8000 {
			clock = clock.Add(time.Millisecond)
			x := r.Float64()
			y := 0.0
			if x > 0.5 {
				y = 1
			}
			if i >= 4000 {
				x *= 1000
			}
			if err := e.Process("events", &Example{Offset: int64(i), Fields: []features.Field{{Name: []byte("x"), Kind: features.Number, Num: x}}, Label: y, HasLabel: true}); err != nil {
				t.Fatal(err)
			}
			if i%100 == 99 {
				checkpoint(t, e, Offset{TopicPartition{"events", 0}, int64(i + 1)})
			}
			if i == 3999 {
				m := e.states[0].mon.ChampionMetrics()
				before, beforeN = m.Accuracy, m.N
			}
		}
		for _, snap := range rec.published {
			if snap.Reason() == learner.ReasonDrift && snap.Learned() > 4000 {
				drift++
			}
		}
		m := e.states[0].mon.ChampionMetrics()
		return drift, (m.Accuracy*float64(m.N) - before*float64(beforeN)) / float64(m.N-beforeN)
	}
	withDrift, withAcc := run(true)
	withoutDrift, withoutAcc := run(false)
	t.Logf("after the change of unit: served accuracy %.4f with a challenger on feature drift (%d drift promotions), %.4f without (%d)", withAcc, withDrift, withoutAcc, withoutDrift)
	if withDrift == 0 || withAcc <= withoutAcc {
		t.Fatalf("with the challenger: %d drift promotions, accuracy %.4f against %.4f without", withDrift, withAcc, withoutAcc)
	}
}

// TestACategoricalFeatureDriftIsDetectedAcrossARestart sends a stable
// categorical feature (Zipf over 50 shops), then a broken join's
// placeholder, to an engine restarted midway: one detection, within 500
// events of the change, logged and counted; and the schema's declared
// category that comes as a number (zip) is watched as a category.
func TestACategoricalFeatureDriftIsDetectedAcrossARestart(t *testing.T) {
	mc := learner.ModelConfig{Name: "m", Topic: "events",
		Schema:       &features.Schema{Features: map[string]features.FeatureSpec{"shop": {Kind: features.KindCategory}, "zip": {Kind: features.KindCategory}}},
		FeatureDrift: &learner.FeatureDriftConfig{}}
	cfg := Config{Models: []learner.ModelConfig{mc}, PromoteInterval: time.Hour}
	r := rand.New(rand.NewPCG(8, 8))
	z := rand.NewZipf(r, 1.2, 1, 49)
	dir := t.TempDir()
	log := &driftLog{at: make(map[string][]int64)}
	feed := func(e *Engine, from, to int) {
		for i := from; i < to; i++ {
			shop := "shop-" + fmt.Sprint(z.Uint64())
			if i >= 6000 {
				shop = "UNKNOWN"
			}
			fields := []features.Field{{Name: []byte("shop"), Kind: features.String, Str: []byte(shop)}, {Name: []byte("zip"), Kind: features.Number, Num: float64(2000 + i%7)}}
			if err := e.Process("events", &Example{Offset: int64(i), Fields: fields, Label: float64(i % 2), HasLabel: true}); err != nil {
				t.Fatal(err)
			}
			if i%100 == 99 {
				checkpoint(t, e, Offset{TopicPartition{"events", 0}, int64(i + 1)})
			}
		}
	}
	s, closeStore := openTestStore(t, dir)
	e, _ := newTestEngine(t, s, cfg, nil)
	e.log = slog.New(log)
	feed(e, 0, 3000)
	closeStore()
	s, _ = openTestStore(t, dir)
	e, reg := newTestEngine(t, s, cfg, nil)
	e.log = slog.New(log)
	feed(e, 3000, 9000)
	t.Logf("detections %v", log.at)
	if at := log.at["shop"]; len(at) != 1 || at[0] < 6000 || at[0] >= 6500 || len(log.at["zip"]) != 0 {
		t.Fatalf("detections %v: want one on shop within 500 events of 6000, none on zip", log.at)
	}
	if got := metricValue(t, reg, "eddy_feature_drift_detections_total", map[string]string{"model": "m", "feature": "shop"}); got != 1 {
		t.Fatalf("counted %v detections on shop", got)
	}
	report, err := e.Schema("m")
	if err != nil || len(report.Drift) != 2 {
		t.Fatalf("report %+v, %v: want shop and zip", report, err)
	}
}
