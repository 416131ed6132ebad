package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/stream"
)

const evaluateUsage = `evaluate --file FILE --target COLUMN [flags]

Runs a CSV file through a model prequentially and offline, without Kafka:
each row is predicted, the prediction scored, then learned (the same feature
and learner code as serve). It prints the metrics every --every rows and a
summary at the end, or with --json one JSON object and nothing else on
stdout. A progress bar goes to stderr.

The first row names the columns. --target names the label column: a number,
or true/false for 1/0; rows with an empty label are skipped and counted. Every
other column not listed in --ignore is a feature, read as produce reads it:
numbers as numbers, true/false as booleans, anything else as a category
(columns listed in --categorical always as categories: ids, zip codes);
empty cells are left out, and so are columns without a name (such as a
pandas index). The model comes from the flags below (unset ones
take the learner's defaults) or from --config, the YAML file of serve (its
first model, or the one named by --model). A malformed row stops the command
with an error naming the line; rows the model rejects (a label of 2 for a
binary model, say) are counted, and the first few are reported on stderr.

--explain-row N explains the prediction made for data row N (1: the row
after the header) before it is learned, as Predict --explain does (see eddy
predict --help): a served snapshot that learned the same N-1 rows gives the
same explanation, so a served one can be reproduced offline.

--curve FILE.csv|FILE.jsonl writes the learning curve: every --every rows
(default 1,000 with --curve or --plot, printing stays at every 10,000 unless
--every is given), the metrics --json prints, the no-change baseline's
rolling accuracy (classifiers: the accuracy of predicting the previous
label), and the served model's: evaluate serves snapshots as serve does,
checking serve's promotion policy every --promote-every rows as serve checks
it at each checkpoint, and scores the served one on every row before it is
learned. With a drift detector in the model (drift: in --config), its
detections and the promotions of post-drift challengers are rows of their
own (event drift_detected, drift_promoted). The last row is the final
result, equal to --json's. --plot FILE.svg|FILE.png draws the curve: rolling
and cumulative metric, the served model, the baseline, and drift detections
and promotions as vertical marks. --compare CONFIG[#MODEL],... runs the same
file through more models (every model of CONFIG, or the one named) and draws
and writes them all, so pipelines can be compared:

  eddy evaluate --file sea.csv --target label --config adwin.yaml \
    --compare periodic.yaml --plot sea.svg --curve sea.csv.curve.csv

A model with a drift detector always learns as serve's does, curve or not:
its live model adopts the post-drift challengers that win, and --json adds
the served snapshots' metrics (served, served_rolling), detections and
drift_promotions.

--model-file FILE (written by eddy export) scores the rows with that
snapshot instead, without learning: the metrics are those of the served
model as it was, over the file (multiclass: accuracy only). Models whose
features come from entity histories cannot be scored this way.
`

// modelFlagNames are the flags that describe the model; --config replaces
// all of them.
var modelFlagNames = []string{"task", "loss", "optimizer", "lr", "intercept-lr", "l1", "l2", "scaler", "hash-bits", "schedule", "power-t"}

// registerModelFlags binds the model flags to cfg. Their zero values leave
// the fields zero, which NewModel fills with the learner's defaults, so the
// defaults are stated in the help text rather than repeated in the flags.
func registerModelFlags(fs *flag.FlagSet, cfg *learner.ModelConfig) {
	fs.StringVar((*string)(&cfg.Task), "task", "", "binary, regression or multiclass (default binary)")
	fs.StringVar((*string)(&cfg.Loss), "loss", "", "log or hinge (binary); squared, absolute, huber or epsilon_insensitive (regression); softmax (multiclass) (default: the task's first)")
	fs.StringVar((*string)(&cfg.Optimizer.Kind), "optimizer", "", "sgd, adagrad, adam or ftrl (default sgd)")
	fs.Float64Var(&cfg.Optimizer.LR, "lr", 0, fmt.Sprintf("learning rate of the weights (default %g for sgd, 0.1 for adagrad and adam, 0.05 for ftrl)", learner.DefaultLR))
	fs.Float64Var(&cfg.Optimizer.InterceptLR, "intercept-lr", 0, fmt.Sprintf("learning rate of the intercept (default %g)", learner.DefaultLR))
	fs.Float64Var(&cfg.Optimizer.L1, "l1", 0, "L1 regularisation strength")
	fs.Float64Var(&cfg.Optimizer.L2, "l2", 0, "L2 regularisation strength")
	fs.StringVar((*string)(&cfg.Features.Scaler), "scaler", "", "standard or none (default standard)")
	fs.IntVar(&cfg.Features.HashBits, "hash-bits", 0, fmt.Sprintf("hashed categorical space: 2^bits (default %d)", features.DefaultHashBits))
	fs.StringVar((*string)(&cfg.Optimizer.Schedule), "schedule", "", "SGD learning-rate schedule: constant or invscaling (default constant)")
	fs.Float64Var(&cfg.Optimizer.PowerT, "power-t", 0, "exponent of the invscaling schedule (default 0.5)")
}

func runEvaluate(ctx context.Context, env *environment, args []string) error {
	var (
		o                     evaluateOptions
		configFile, modelName string
		ignore, categorical   string
		asJSON                bool
		curvePath, plotPath   string
		compare               string
	)
	fs := newFlagSet(env, "evaluate", evaluateUsage)
	fs.StringVar(&o.file, "file", "", "CSV file to evaluate on (required)")
	fs.StringVar(&o.target, "target", "", "column holding the label (required)")
	registerModelFlags(fs, &o.model)
	fs.StringVar(&configFile, "config", "", "model configuration file (YAML, as for serve) instead of the model flags")
	fs.StringVar(&modelName, "model", "", "model of --config to evaluate (default: its first)")
	fs.StringVar(&ignore, "ignore", "", "comma-separated columns not used as features")
	fs.StringVar(&categorical, "categorical", "", "comma-separated columns read as categories whatever they look like (ids, zip codes)")
	fs.IntVar(&o.every, "every", 10000, "print the metrics every this many rows (0: only at the end)")
	fs.BoolVar(&asJSON, "json", false, "print one JSON object at the end and nothing else on stdout")
	fs.IntVar(&o.rollingWindow, "rolling-window", learner.DefaultRollingWindow, "rows covered by the rolling metric")
	fs.IntVar(&o.explainRow, "explain-row", 0, "explain the prediction for data row N (1: the first after the header) before learning it")
	fs.StringVar(&o.modelFile, "model-file", "", "score with this exported snapshot (eddy export), without learning, instead of training a model")
	fs.IntVar(&o.explainTop, "top-k", 0, "with --explain-row: show the K terms of largest |contribution| (0: all)")
	fs.StringVar(&curvePath, "curve", "", "write the learning curve to this .csv or .jsonl file")
	fs.StringVar(&plotPath, "plot", "", "draw the learning curve to this .svg or .png file")
	fs.StringVar(&compare, "compare", "", "also evaluate these models, drawn and written beside the first: CONFIG[#MODEL],...")
	fs.IntVar(&o.promoteEvery, "promote-every", 1000, "with --curve or --plot: rows between promotion checks (serve's --checkpoint-every)")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	if o.file == "" || o.target == "" {
		fs.Usage()
		return errors.New("evaluate: --file and --target are required")
	}
	if o.every < 0 || o.rollingWindow < 0 || o.explainRow < 0 || o.explainTop < 0 {
		return errors.New("evaluate: --every, --rolling-window, --explain-row and --top-k must not be negative")
	}
	if o.promoteEvery <= 0 {
		return errors.New("evaluate: --promote-every must be positive")
	}
	if ignore != "" {
		o.ignore = strings.Split(ignore, ",")
	}
	if categorical != "" {
		o.categorical = strings.Split(categorical, ",")
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	if err := o.useConfigFile(configFile, modelName, given); err != nil {
		return err
	}
	if o.modelFile != "" && (configFile != "" || o.explainRow > 0) {
		return errors.New("evaluate: --model-file scores with an exported model: it cannot be combined with --config or --explain-row")
	}
	if o.modelFile != "" && (curvePath != "" || plotPath != "" || compare != "") {
		return errors.New("evaluate: --model-file scores with an exported model: --curve, --plot and --compare draw models that learn; leave it out")
	}
	runs := []evaluateOptions{o}
	if curvePath != "" || plotPath != "" || compare != "" {
		if err := checkOutputs(curvePath, plotPath); err != nil {
			return err
		}
		o.curveEvery = 1000
		if given["every"] && o.every > 0 {
			o.curveEvery = o.every
		}
		runs[0] = o
		if compare != "" {
			more, err := parseCompare(compare)
			if err != nil {
				return err
			}
			runs[0].runName = runName(o.model, configFile)
			for _, r := range more {
				ro := o
				ro.model, ro.rollingWindow, ro.runName, ro.explainRow = r.model, r.rollingWindow, r.name, 0
				runs = append(runs, ro)
			}
			uniqueRunNames(runs)
		}
	}
	if asJSON {
		for i := range runs {
			runs[i].every = 0 // stdout holds the JSON only
		}
	}
	var evs []evaluation
	for i := range runs {
		r := &runs[i]
		r.report = func(task learner.Task, rows int, m learner.Metrics) {
			line := metricsLine(task, rows, m)
			if r.runName != "" {
				line = r.runName + ": " + line
			}
			fmt.Fprintln(env.stdout, line)
		}
		ev, err := evaluateFile(ctx, *r, env.stderr)
		if err != nil {
			return err
		}
		if len(evs) > 0 && ev.task != evs[0].task {
			return fmt.Errorf("evaluate: --compare: model %s is %s, %s is %s: compare models of one task", r.runName, ev.task, runs[0].runName, evs[0].task)
		}
		evs = append(evs, ev)
	}
	if err := writePictures(curvePath, plotPath, o.file, evs); err != nil {
		return err
	}
	if asJSON {
		if len(evs) == 1 {
			return json.NewEncoder(env.stdout).Encode(evs[0].summary())
		}
		all := make([]evaluationSummary, len(evs))
		for i, ev := range evs {
			all[i] = ev.summary()
		}
		return json.NewEncoder(env.stdout).Encode(all)
	}
	for i, ev := range evs {
		if i > 0 {
			fmt.Fprintln(env.stdout)
		}
		if ev.run != "" {
			fmt.Fprintf(env.stdout, "%s:\n", ev.run)
		}
		ev.writeText(env.stdout, o.file)
	}
	for _, path := range []string{curvePath, plotPath} {
		if path != "" {
			fmt.Fprintf(env.stdout, "wrote %s\n", path)
		}
	}
	return nil
}

// checkOutputs refuses --curve and --plot files of an unknown format before
// any work is done.
func checkOutputs(curvePath, plotPath string) error {
	if curvePath != "" {
		if _, err := curveFormat(curvePath); err != nil {
			return err
		}
	}
	if plotPath != "" {
		if _, err := plotFormat(plotPath); err != nil {
			return err
		}
	}
	return nil
}

// writePictures writes the curves of evs to the --curve and --plot files.
func writePictures(curvePath, plotPath, file string, evs []evaluation) error {
	var curves []*curve
	for _, ev := range evs {
		if ev.curve != nil {
			curves = append(curves, ev.curve)
		}
	}
	if len(curves) == 0 {
		return nil
	}
	if curvePath != "" {
		if err := writeCurves(curvePath, curves); err != nil {
			return err
		}
	}
	if plotPath != "" {
		return plotCurves(plotPath, filepath.Base(file), evs[0].task, curves)
	}
	return nil
}

// runName names the first run of a --compare: its model's name in the
// config file, or "flags" for a model from the flags.
func runName(m learner.ModelConfig, configFile string) string {
	if configFile != "" && m.Name != "" {
		return m.Name
	}
	return "flags"
}

// uniqueRunNames numbers runs that share a name (name, name#2, ...).
func uniqueRunNames(runs []evaluateOptions) {
	seen := make(map[string]int)
	for i := range runs {
		n := runs[i].runName
		seen[n]++
		if seen[n] > 1 {
			runs[i].runName = fmt.Sprintf("%s#%d", n, seen[n])
		}
	}
}

// useConfigFile replaces the model from the flags with one from the YAML
// file, if there is one, refusing model flags beside it.
func (o *evaluateOptions) useConfigFile(path, modelName string, given map[string]bool) error {
	if path == "" {
		if modelName != "" {
			return errors.New("evaluate: --model names a model of --config; pass --config too")
		}
		return nil
	}
	var conflicting []string
	for _, name := range modelFlagNames {
		if given[name] {
			conflicting = append(conflicting, "--"+name)
		}
	}
	if len(conflicting) > 0 {
		return fmt.Errorf("evaluate: %s cannot be combined with --config: the model comes from the config file", strings.Join(conflicting, ", "))
	}
	fc, err := loadConfigFile(path)
	if err != nil {
		return fmt.Errorf("evaluate: %w", err)
	}
	i := 0
	if modelName != "" {
		i = slices.IndexFunc(fc.Models, func(m learner.ModelConfig) bool { return m.Name == modelName })
		if i < 0 {
			names := make([]string, len(fc.Models))
			for j, m := range fc.Models {
				names[j] = m.Name
			}
			return fmt.Errorf("evaluate: config %s has no model %q (models: %s)", path, modelName, strings.Join(names, ", "))
		}
	}
	o.model = fc.Models[i]
	if !given["rolling-window"] {
		o.rollingWindow = fc.RollingWindow
	}
	return nil
}

// evaluateOptions configure one offline evaluation.
type evaluateOptions struct {
	file, target string
	// ignore lists columns that are not features; categorical those read
	// as categories whatever they look like.
	ignore, categorical []string
	// model is the model to evaluate; zero fields mean the learner's defaults.
	model learner.ModelConfig
	// rollingWindow is the number of rows the rolling metric covers (0: the
	// learner's default).
	rollingWindow int
	// every is how many rows apart report is called (0: never).
	every  int
	report func(task learner.Task, rows int, m learner.Metrics)
	// explainRow is the data row (from 1) whose prediction is explained
	// before it is learned (0: none), keeping its explainTop terms of
	// largest |contribution| (0: all).
	explainRow, explainTop int
	// modelFile, when set, is an export file whose snapshot scores the
	// rows without learning.
	modelFile string
	// curveEvery, when positive, records a learning curve with a point
	// every curveEvery rows, serving snapshots with a promotion check
	// every promoteEvery rows; runName names the run in it ("": one run).
	curveEvery, promoteEvery int
	runName                  string
}

// evaluation is the outcome of running a file through a model.
type evaluation struct {
	task      learner.Task
	metrics   learner.Metrics
	intercept float64
	rows      int // data rows read
	skipped   int // rows without a label
	rejected  int // rows the model refused
	elapsed   time.Duration
	explained *explainedRow // --explain-row
	fixed     bool          // scored by an exported snapshot (--model-file): no learning
	noLogLoss bool          // multiclass --model-file: the true class's probability is not known
	run       string        // the run's name (--compare)
	replay    *servedReplay // snapshots served as serve serves them (--curve, a drift detector)
	curve     *curve        // --curve, --plot: the learning curve
}

// explainedRow is the explanation of one row's prediction.
type explainedRow struct {
	row, line int
	label     float64
	hasLabel  bool
	score     float64
	exp       *eddyv1.Explanation
}

// maxShownRejections bounds the rejections reported one by one.
const maxShownRejections = 5

// evaluateFile runs the CSV file of o through a new model prequentially. The
// progress bar and the first rejections go to progressOut. On cancellation
// it returns ctx.Err() within 1000 rows.
func evaluateFile(ctx context.Context, o evaluateOptions, progressOut io.Writer) (evaluation, error) {
	if o.modelFile != "" {
		return scoreFile(ctx, o, progressOut)
	}
	start := time.Now()
	cfg := o.model
	if cfg.Name == "" {
		cfg.Name = "evaluate" // the name only appears in messages
	}
	cfg.EnsureDefaults()
	ev := evaluation{task: cfg.Task, run: o.runName}
	model, err := learner.NewModel(cfg, o.rollingWindow)
	if err != nil {
		return ev, fmt.Errorf("evaluate: %w", err)
	}
	// A model with a drift detector learns as serve's does: its live model
	// adopts the post-drift challengers that win.
	if o.curveEvery > 0 || cfg.Drift.Detector != "" {
		if o.promoteEvery <= 0 {
			o.promoteEvery = 1000
		}
		if ev.replay, err = newServedReplay(model, o.rollingWindow, o.promoteEvery); err != nil {
			return ev, err
		}
	}
	if o.curveEvery > 0 {
		ev.curve = newCurve(o.runName, cfg.Task, o.curveEvery, o.rollingWindow, ev.replay)
	}
	f, err := os.Open(o.file)
	if err != nil {
		return ev, fmt.Errorf("evaluate: %w", err)
	}
	defer f.Close()
	size := int64(0)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	in := &countingReader{r: f}
	src, err := newCSVExamples(bufio.NewReaderSize(in, 1<<16), o.file, stream.CSVConfig{Target: o.target, Ignore: o.ignore, Categorical: o.categorical})
	if err != nil {
		return ev, err
	}
	for _, i := range src.rows.Unnamed() {
		fmt.Fprintf(progressOut, "evaluate: %s: column %d has no name (a pandas index?): left out\n", o.file, i+1)
	}
	bar := newProgress(progressOut, "evaluating "+filepath.Base(o.file), int(size))
	bar.read = func() int64 { return in.n }
	err = learnRows(ctx, o, src, model, bar, &ev)
	if ev.curve != nil {
		ev.curve.finish(ev.rows)
	}
	bar.update(ev.rows)
	bar.finish()
	if err == nil && o.explainRow > ev.rows {
		err = fmt.Errorf("evaluate: --explain-row %d: %s has %d data rows", o.explainRow, o.file, ev.rows)
	}
	if ev.rejected > maxShownRejections {
		fmt.Fprintf(progressOut, "evaluate: %d rows rejected in all; the first %d are shown above\n", ev.rejected, maxShownRejections)
	}
	ev.metrics = model.Metrics()
	ev.intercept = model.Intercept()
	ev.elapsed = time.Since(start)
	return ev, err
}

// learnRows is the prequential loop: every labeled row is predicted, scored
// and learned by LearnEvent (one entity: the whole file). It counts into ev
// as it goes.
func learnRows(ctx context.Context, o evaluateOptions, src *csvExamples, model *learner.Model, bar *progress, ev *evaluation) error {
	// A bar that redraws in place must end its line before a message, or the
	// message lands in the middle of it; the bar redraws below.
	var endedAt time.Time
	endBarLine := func() {
		if bar.tty && bar.last != endedAt {
			bar.finish()
			endedAt = bar.last
		}
	}
	for {
		fields, label, hasLabel, err := src.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ev.rows++
		if ev.rows == o.explainRow {
			e := model.ExplainEvent(nil, time.Time{}, fields, learner.ExplainOptions{TopK: o.explainTop})
			ev.explained = &explainedRow{row: ev.rows, line: src.line(), label: label, hasLabel: hasLabel, score: e.Score, exp: eddy.ExplanationProto(e)}
		}
		if !hasLabel {
			ev.skipped++
		} else if err := learnRow(model, ev, fields, label); err != nil {
			if !errors.Is(err, learner.ErrInvalidExample) {
				return fmt.Errorf("evaluate: %s line %d: %w", o.file, src.line(), err)
			}
			ev.rejected++
			if ev.rejected <= maxShownRejections {
				endBarLine()
				fmt.Fprintf(bar.w, "evaluate: %s line %d: rejected: %v\n", o.file, src.line(), err)
			}
		}
		if ev.replay != nil { // serve's checkpoint counts every event, labeled or not
			ev.replay.check(ev.rows)
		}
		if ev.curve != nil {
			ev.curve.after(ev.rows)
		}
		if ev.rows%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
			bar.update(ev.rows)
		}
		if o.every > 0 && ev.rows%o.every == 0 && o.report != nil {
			endBarLine()
			o.report(ev.task, ev.rows, model.Metrics())
		}
	}
}

// learnRow learns the labeled row ev.rows: through the served replay when
// there is one, else as LearnEvent does.
func learnRow(model *learner.Model, ev *evaluation, fields []features.Field, label float64) error {
	if ev.curve != nil {
		ev.curve.observeLabel(label)
	}
	if ev.replay == nil {
		_, err := model.LearnEvent(nil, time.Time{}, fields, label)
		return err
	}
	return ev.replay.learn(fields, label, ev.rows)
}

// csvExamples reads the rows of a CSV file as examples, the events
// stream.CSVReader makes of them. It reuses its buffers: what next returns
// is valid until the following call.
type csvExamples struct {
	file   string
	rows   *stream.CSVReader
	ev     stream.Event
	fields []features.Field
}

func newCSVExamples(r io.Reader, file string, cfg stream.CSVConfig) (*csvExamples, error) {
	rows, err := stream.NewCSVReader(r, cfg)
	if err != nil {
		return nil, csvHeaderError("evaluate", file, err)
	}
	return &csvExamples{file: file, rows: rows}, nil
}

// line returns the line of the row last read.
func (s *csvExamples) line() int { return s.rows.Line() }

// next reads the next row: its features, and its label unless the target
// cell is empty (then hasLabel is false and fields is nil). It returns io.EOF
// after the last row, and an error naming the line for a malformed one.
func (s *csvExamples) next() (fields []features.Field, label float64, hasLabel bool, err error) {
	if err := s.rows.Read(&s.ev); err != nil {
		return nil, 0, false, s.readError(err)
	}
	if !s.ev.HasLabel {
		return nil, 0, false, nil
	}
	s.fields = slices.Grow(s.fields[:0], len(s.ev.Fields))[:len(s.ev.Fields)]
	for i := range s.ev.Fields {
		f := &s.ev.Fields[i]
		d := &s.fields[i] // member by member, as stream.CSVReader fills them
		d.Name, d.Kind, d.Num, d.Str = f.Name, featureKind(f.Kind), f.Num, f.Str
	}
	return s.fields, s.ev.Label, true, nil
}

func (s *csvExamples) readError(err error) error {
	var bad *stream.CSVRowError
	switch {
	case errors.Is(err, io.EOF):
		return io.EOF
	case errors.As(err, &bad):
		return fmt.Errorf("evaluate: %s line %d: %s", s.file, bad.Line, bad.Reason)
	}
	return fmt.Errorf("evaluate: %s: %w", s.file, err)
}

// featureKind is the features.Kind of an event field's kind.
func featureKind(k stream.FieldKind) features.Kind {
	switch k {
	case stream.KindNumber:
		return features.Number
	case stream.KindBool:
		return features.Bool
	}
	return features.String
}

// metricsLine is the one-line form of the metrics after rows rows.
func metricsLine(task learner.Task, rows int, m learner.Metrics) string {
	if task == learner.Regression {
		return fmt.Sprintf("rows %d  mae %.6g  rmse %.6g  rolling %.6g", rows, m.MAE, m.RMSE, m.Rolling)
	}
	return fmt.Sprintf("rows %d  accuracy %.4f  log_loss %.4f  rolling %.4f", rows, m.Accuracy, m.LogLoss, m.Rolling)
}

func (e evaluation) rowsPerSecond() float64 {
	return float64(e.rows) / max(e.elapsed.Seconds(), 1e-9)
}

// writeText writes the final summary of an evaluation of file.
func (e evaluation) writeText(w io.Writer, file string) {
	if x := e.explained; x != nil {
		label := "no label"
		if x.hasLabel {
			label = "label " + strconv.FormatFloat(x.label, 'g', -1, 64)
		}
		fmt.Fprintf(w, "row %d (line %d, %s), predicted before it was learned:\n", x.row, x.line, label)
		printExplanation(w, x.score, x.exp)
		fmt.Fprintln(w)
	}
	m := e.metrics
	fmt.Fprintf(w, "evaluated %s: %d rows in %.3fs (%.0f rows/s)\n", filepath.Base(file), e.rows, e.elapsed.Seconds(), e.rowsPerSecond())
	line := func(name string, value any) { fmt.Fprintf(w, "  %-10s %v\n", name, value) }
	line("task", e.task)
	line("n", m.N)
	line("skipped", e.skipped)
	line("rejected", e.rejected)
	if e.task == learner.Regression {
		line("mae", fmt.Sprintf("%.6g", m.MAE))
		line("rmse", fmt.Sprintf("%.6g", m.RMSE))
		line("rolling", fmt.Sprintf("%.6g", m.Rolling))
		line("intercept", fmt.Sprintf("%.6f", e.intercept))
		return
	}
	line("accuracy", fmt.Sprintf("%.4f", m.Accuracy))
	if !e.noLogLoss {
		line("log_loss", fmt.Sprintf("%.4f", m.LogLoss))
	}
	line("rolling", fmt.Sprintf("%.4f", m.Rolling))
}

// evaluationSummary is the --json output. The metrics of the task are
// always present (pointers, so that 0 is printed); the others are omitted.
type evaluationSummary struct {
	Run           string   `json:"run,omitempty"`
	N             uint64   `json:"n"`
	Skipped       int      `json:"skipped"`
	Rejected      int      `json:"rejected"`
	Task          string   `json:"task"`
	Accuracy      *float64 `json:"accuracy,omitempty"`
	LogLoss       *float64 `json:"log_loss,omitempty"`
	MAE           *float64 `json:"mae,omitempty"`
	RMSE          *float64 `json:"rmse,omitempty"`
	Rolling       float64  `json:"rolling"`
	Intercept     *float64 `json:"intercept,omitempty"`
	Seconds       float64  `json:"seconds"`
	RowsPerSecond float64  `json:"rows_per_second"`
	// Explanation (--explain-row) is the row's explanation as Predict
	// answers it (protojson), with its row and score.
	// Served, ServedRolling, Detections and DriftPromotions are the served
	// snapshots' metrics (accuracy or MAE) and the drift detector's work,
	// when evaluate serves snapshots as serve does (a drift detector, or
	// --curve/--plot).
	Served          *float64        `json:"served,omitempty"`
	ServedRolling   *float64        `json:"served_rolling,omitempty"`
	Detections      *uint64         `json:"detections,omitempty"`
	DriftPromotions *int            `json:"drift_promotions,omitempty"`
	ExplainedRow    *int            `json:"explained_row,omitempty"`
	Score           *float64        `json:"score,omitempty"`
	Explanation     json.RawMessage `json:"explanation,omitempty"`
}

func (e evaluation) summary() evaluationSummary {
	m := e.metrics
	s := evaluationSummary{
		Run: e.run, N: m.N, Skipped: e.skipped, Rejected: e.rejected, Task: string(e.task), Rolling: m.Rolling,
		Seconds: e.elapsed.Seconds(), RowsPerSecond: e.rowsPerSecond(),
	}
	if e.task == learner.Regression {
		s.MAE, s.RMSE, s.Intercept = &m.MAE, &m.RMSE, &e.intercept
	} else {
		s.Accuracy, s.LogLoss = &m.Accuracy, &m.LogLoss
		if e.noLogLoss {
			s.LogLoss = nil
		}
	}
	if r := e.replay; r != nil {
		d, p := r.mon.Detections(), len(r.driftPromotions)
		s.Detections, s.DriftPromotions = &d, &p
		if c := r.mon.ChampionMetrics(); c.N > 0 {
			served := c.Accuracy
			if e.task == learner.Regression {
				served = c.MAE
			}
			s.Served, s.ServedRolling = &served, &c.Rolling
		}
	}
	if x := e.explained; x != nil {
		s.ExplainedRow, s.Score = &x.row, &x.score
		s.Explanation, _ = protojson.Marshal(x.exp)
	}
	return s
}

// scoreFile scores the CSV file of o with the exported snapshot of
// o.modelFile, without learning: each row's prediction against its label,
// in the metrics evaluate prints (rolling: over the last rollingWindow
// rows).
func scoreFile(ctx context.Context, o evaluateOptions, progressOut io.Writer) (evaluation, error) {
	start := time.Now()
	exp, err := eddy.LoadExport(o.modelFile)
	if err != nil {
		return evaluation{}, fmt.Errorf("evaluate: %w", err)
	}
	task := exp.Task()
	ev := evaluation{task: task, fixed: true, noLogLoss: task == learner.Multiclass}
	fmt.Fprintf(progressOut, "evaluate: scoring with model %s version %d (%s, learned %d), exported %s; nothing is learned\n",
		exp.Header.Model, exp.Header.Version, exp.Header.Reason, exp.Header.Learned, exp.Header.Exported.Format(time.RFC3339))
	f, err := os.Open(o.file)
	if err != nil {
		return ev, fmt.Errorf("evaluate: %w", err)
	}
	defer f.Close()
	src, err := newCSVExamples(bufio.NewReaderSize(f, 1<<16), o.file, stream.CSVConfig{Target: o.target, Ignore: o.ignore, Categorical: o.categorical})
	if err != nil {
		return ev, err
	}
	window := o.rollingWindow
	if window == 0 {
		window = learner.DefaultRollingWindow
	}
	var m learner.Metrics
	var sumLog, sumAbs, sumSq, correct float64
	recent := make([]float64, 0, window) // per row: correct (1/0), or absolute error
	next := 0
	for {
		fields, label, hasLabel, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ev, err
		}
		ev.rows++
		if ev.rows%1000 == 0 {
			if err := ctx.Err(); err != nil {
				return ev, err
			}
		}
		if !hasLabel {
			ev.skipped++
			continue
		}
		score, predicted, err := exp.Score(nil, fields)
		if err != nil {
			return ev, fmt.Errorf("evaluate: row %d: %w", ev.rows, err)
		}
		m.N++
		var r float64
		switch task {
		case learner.Regression:
			r = math.Abs(score - label)
			sumAbs += r
			sumSq += r * r
		default:
			if float64(predicted) == label {
				r = 1
				correct++
			}
			if task == learner.Binary {
				p := min(max(score, 1e-15), 1-1e-15)
				if label == 1 {
					sumLog -= math.Log(p)
				} else {
					sumLog -= math.Log(1 - p)
				}
			}
		}
		if len(recent) < window {
			recent = append(recent, r)
		} else {
			recent[next] = r
			next = (next + 1) % window
		}
	}
	n := float64(m.N)
	if n > 0 {
		m.Accuracy, m.LogLoss, m.MAE, m.RMSE = correct/n, sumLog/n, sumAbs/n, math.Sqrt(sumSq/n)
		if task == learner.Regression {
			m.Accuracy = 0
		} else {
			m.MAE, m.RMSE = 0, 0
		}
		total := 0.0
		for _, r := range recent {
			total += r
		}
		m.Rolling = total / float64(len(recent))
	}
	ev.metrics = m
	if in := exp.Inspect(1); len(in.Intercepts) > 0 {
		ev.intercept = in.Intercepts[0]
	}
	ev.elapsed = time.Since(start)
	return ev, nil
}

// countingReader counts the bytes read through it, for progress.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
