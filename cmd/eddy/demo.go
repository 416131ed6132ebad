package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/drift"
	"github.com/eddyhq/eddy/learner"
)

const demoUsage = `demo [flags]

Runs the whole service on the embedded broker (like "eddy serve" without
--brokers) and feeds it a built-in drifting stream: SEA concepts (Street & Kim
2001), whose concept changes abruptly every --drift-every events (0: never).
Prints a one-line summary every few seconds. Stop it with Ctrl-C; it also
stops, cleaning up, when its output is closed (eddy demo | head).

The model is "sea": standard scaling then logistic regression, with ADWIN
watching the served model's error: on a detection a fresh challenger learns
the new concept and replaces the champion once it is better (watch "drifts
detected" and the served version). The demo's presets differ from serve's
defaults: --model-name sea, --model-drift adwin, ADWIN's delta 0.02 (River's
0.002 misses the mildest SEA drift; another --model-drift-param delta wins,
and other detectors keep their own defaults) and --promote-interval 1s.
Presets are defaults: flags and EDDY_* variables override them. Unless
--data-dir (or EDDY_DATA_DIR) is given, state lives in a temporary directory
removed on exit.
`

// demoOptions are the demo's settings: the service's and the producer's.
type demoOptions struct {
	serve        serveOptions
	rate         int
	driftEvery   int
	noise        float64
	limit        int
	summaryEvery time.Duration
	tempDir      bool // no --data-dir: state in a temporary directory
}

// demoPresets are the demo's defaults for serve's flags.
var demoPresets = map[string]string{"model-name": "sea", "model-drift": drift.KindADWIN, "promote-interval": "1s"}

// demoADWINDelta is ADWIN's delta in the demo: 0.02 catches all three SEA
// drifts; River's default 0.002 misses the mildest one (see BENCHMARKS.md).
const demoADWINDelta = 0.02

func parseDemoFlags(env *environment, args []string) (demoOptions, error) {
	var o demoOptions
	fs := newFlagSet(env, "demo", demoUsage)
	o.serve.register(fs)
	fs.IntVar(&o.rate, "rate", 2000, "events per second produced (0: as fast as possible)")
	fs.IntVar(&o.driftEvery, "drift-every", 25000, "events between concept changes (0: no drift)")
	fs.Float64Var(&o.noise, "noise", 0.1, "fraction of labels flipped, in [0, 1]")
	fs.IntVar(&o.limit, "events", 0, "stop producing after this many events (0: never)")
	fs.DurationVar(&o.summaryEvery, "summary-every", 3*time.Second, "how often to print the summary line")
	for name, value := range demoPresets {
		// Through the flag's Value, not fs.Set: a preset is a default, and a
		// flag set with fs.Set counts as given, which hides EDDY_* variables.
		f := fs.Lookup(name)
		if err := f.Value.Set(value); err != nil {
			panic(fmt.Sprintf("demo preset --%s=%s: %v", name, value, err)) // a constant that does not parse
		}
		f.DefValue = value
	}
	fs.Lookup("data-dir").DefValue = "" // a temporary directory, which --help cannot name
	if err := parseFlags(fs, env, args); err != nil {
		return o, err
	}
	// The delta preset belongs to ADWIN alone: Page-Hinkley's delta means
	// something else, and the other detectors have none.
	if d := &o.serve.model.Drift; d.Detector == drift.KindADWIN {
		if _, given := d.Params["delta"]; !given {
			if d.Params == nil {
				d.Params = map[string]float64{}
			}
			d.Params["delta"] = demoADWINDelta
		}
	}
	o.tempDir = !flagGiven(fs, "data-dir") && env.getenv("EDDY_DATA_DIR") == ""
	return o, o.validate()
}

func (o *demoOptions) validate() error {
	switch {
	case o.driftEvery < 0:
		return fmt.Errorf("demo: --drift-every %d: want a number of events, or 0 for no drift", o.driftEvery)
	case o.noise < 0 || o.noise > 1 || math.IsNaN(o.noise):
		return fmt.Errorf("demo: --noise %g: want a fraction in [0, 1]", o.noise)
	case o.limit < 0:
		return fmt.Errorf("demo: --events %d: want a number of events, or 0 for no limit", o.limit)
	case o.summaryEvery <= 0:
		return fmt.Errorf("demo: --summary-every %v: want a positive duration", o.summaryEvery)
	}
	return nil
}

func runDemo(ctx context.Context, env *environment, args []string) error {
	o, err := parseDemoFlags(env, args)
	if err != nil {
		return helpOK(err)
	}
	if o.tempDir {
		dir, err := os.MkdirTemp("", "eddy-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.serve.dataDir, o.serve.ephemeral = dir, true
	}
	// A reader that goes away (eddy demo | head) must stop the demo through
	// its deferred cleanup, not kill it: with SIGPIPE notified, a write to a
	// closed pipe fails with EPIPE instead.
	sigpipe := make(chan os.Signal, 1)
	signal.Notify(sigpipe, syscall.SIGPIPE)
	defer signal.Stop(sigpipe)
	log, err := newLogger(env.stderr, o.serve.logLevel, o.serve.logFormat)
	if err != nil {
		return err
	}
	out := newDemoOutput(env.stdout)
	reg := newRegistry()
	svc, err := startService(ctx, o.serve, log, reg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	printDemoHelp(out, svc)
	go produceSEA(ctx, out, env.stderr, svc.Brokers(), o)
	ticker := time.NewTicker(o.summaryEvery)
	defer ticker.Stop()
	var lastEvents uint64
	last := time.Now()
	for {
		select {
		case err := <-done:
			return err
		case <-out.failed:
			cancel()
			if err := <-done; err != nil {
				return err
			}
			if errors.Is(out.err, syscall.EPIPE) {
				log.Info("output closed: demo stopped")
				return nil
			}
			return fmt.Errorf("demo: writing the output: %w", out.err)
		case now := <-ticker.C:
			st := svc.Stats()
			rateNow := float64(st.Consumer.Consumed-lastEvents) / now.Sub(last).Seconds()
			lastEvents, last = st.Consumer.Consumed, now
			fmt.Fprintln(out, demoSummary(st, o.serve.model.Name, rateNow))
		}
	}
}

// demoOutput is the demo's stdout, shared by the summary loop and the
// producer: the first failed write closes failed, and later writes are
// dropped.
type demoOutput struct {
	mu     sync.Mutex
	w      io.Writer
	err    error // the first write error; read after failed is closed
	failed chan struct{}
}

func newDemoOutput(w io.Writer) *demoOutput { return &demoOutput{w: w, failed: make(chan struct{})} }

func (d *demoOutput) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.w.Write(p)
	if err != nil {
		d.err = err
		close(d.failed)
	}
	return n, err
}

func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func printDemoHelp(out io.Writer, svc *eddy.Service) {
	fmt.Fprintf(out, `eddy demo: learning the SEA stream (model "sea")
  predict:  go run ./cmd/eddy predict --addr %[1]s --model sea --feature f1=3.2 --feature f2=5.1 --feature f3=0.4
  grpcurl:  grpcurl -plaintext -d '{"model":"sea","features":{"f1":3.2,"f2":5.1,"f3":0.4}}' %[1]s eddy.v1.Inference/Predict
`, svc.GRPCAddr())
	if addr := svc.MetricsAddr(); addr != "" {
		fmt.Fprintf(out, `  page:     http://%[1]s/ui   (live curves, drift, snapshots; open it in a browser)
  metrics:  curl -s http://%[1]s/metrics | grep ^eddy_
`, addr)
	}
	fmt.Fprintf(out, "  produce:  kcat -b %s -t events -P   (one JSON event per line)\n", svc.Brokers()[0])
}

// demoSummary formats one summary line from the service's stats.
func demoSummary(st eddy.Stats, model string, rate float64) string {
	m, _ := st.Model(model)
	pinned := ""
	if m.Pinned {
		pinned = " (pinned)"
	}
	return fmt.Sprintf("%s  %6.0f events/s  learned %d  dead-lettered %d  accuracy %.2f%% (last %d: %.2f%%, served models: %.2f%%)  drifts detected %d  serving %s v%d%s",
		time.Now().Format("15:04:05"), rate, m.Learned, st.Consumer.DeadLettered, 100*m.Metrics.Accuracy, learner.DefaultRollingWindow,
		100*m.Metrics.Rolling, 100*m.ChampionMetrics.Accuracy, m.Detections, model, m.ServedVersion, pinned)
}

// produceSEA writes SEA events to the model's topic at about o.rate
// events/s until ctx is done or o.limit events were written, announcing
// each concept change on out.
func produceSEA(ctx context.Context, out, stderr io.Writer, brokers []string, o demoOptions) {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: o.serve.model.Topic, RequiredAcks: kafka.RequireAll, BatchTimeout: 2 * time.Millisecond, Transport: &kafka.Transport{}}
	defer w.Close()
	gen := newSEA(uint64(time.Now().UnixNano()), o.driftEvery, o.noise)
	prefix := fmt.Sprintf("sea-%d-", time.Now().Unix())
	pacer := newPacer(o.rate)
	batch := make([]kafka.Message, 0, 100)
	for o.limit == 0 || gen.n < o.limit {
		batch = batch[:0]
		for len(batch) < cap(batch) && (o.limit == 0 || gen.n < o.limit) {
			concept := gen.concept()
			batch = append(batch, kafka.Message{Value: gen.next(nil, prefix)})
			if gen.changed() {
				fmt.Fprintf(out, "%s  drift: SEA concept changes from θ=%g to θ=%g after %d events\n",
					time.Now().Format("15:04:05"), seaThresholds[concept], seaThresholds[gen.concept()], gen.n)
			}
		}
		if err := w.WriteMessages(ctx, batch...); err != nil {
			if ctx.Err() == nil {
				fmt.Fprintln(stderr, "demo producer:", err)
			}
			return
		}
		if !pacer.wait(ctx, len(batch)) {
			return
		}
	}
}

// pacer spaces work to a target rate per second (0: unlimited).
type pacer struct {
	rate  int
	start time.Time
	done  int
}

func newPacer(rate int) *pacer { return &pacer{rate: rate, start: time.Now()} }

// wait records n units done and sleeps until the rate allows more. It returns
// false if ctx ended.
func (p *pacer) wait(ctx context.Context, n int) bool {
	p.done += n
	if p.rate <= 0 {
		return ctx.Err() == nil
	}
	due := p.start.Add(time.Duration(float64(p.done) / float64(p.rate) * float64(time.Second)))
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Until(due)):
		return true
	}
}
