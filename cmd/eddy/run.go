package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"strings"
)

// errUsage means the usage was already printed; main only sets the exit code.
var errUsage = errors.New("usage")

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what every subcommand gets from main.
type environment struct {
	getenv         func(string) string
	stdin          io.Reader
	stdout, stderr io.Writer
}

func commands() []command {
	return []command{
		{"serve", "run the service: consume events, learn, serve predictions and metrics", runServe},
		{"demo", "run the service on the embedded broker and feed it a drifting SEA stream", runDemo},
		{"produce", "send a CSV or JSON-lines file as events to a Kafka topic", runProduce},
		{"predict", "ask a running service for a prediction", runPredict},
		{"snapshots", "list a model's stored snapshots: which serves, which is pinned", runSnapshots},
		{"promote", "serve a stored snapshot version and pin it until released", runPromote},
		{"rollback", "serve the snapshot before the serving one and pin it", runRollback},
		{"release", "end a pin: serve the newest snapshot, resume automatic promotion", runRelease},
		{"schema", "show a model's schema (declared or inferred) and its feature-drift detectors", runSchema},
		{"inspect", "show what a model has learned: metrics, feature statistics, its largest weights by name", runInspect},
		{"export", "write a stored snapshot to a checksummed file that evaluate --model-file scores with", runExport},
		{"import", "seed a model with an export file (from this eddy or another): it serves and learns on from it", runImport},
		{"replay", "re-learn a stored snapshot from Kafka over the offsets its lineage names and check it is reproduced", runReplay},
		{"audit", "list the operator actions on a model: who promoted, rolled back, released or reset it, and when", runAudit},
		{"evaluate", "run a CSV file through a model prequentially, offline (no Kafka)", runEvaluate},
		{"drift", "detect concept drift in a stream of numbers read from stdin", runDrift},
		{"bench", "measure end-to-end ingest throughput against the raw Kafka consumer", runBench},
		{"bench-entities", "measure millions of entity histories beyond memory: throughput, peak RSS, restart time", runBenchEntities},
		{"broker", "run the embedded development broker on its own", runBroker},
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := &environment{getenv: getenv, stdin: os.Stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		if len(args) > 1 {
			return run(ctx, []string{args[1], "--help"}, getenv, stdout, stderr)
		}
		printUsage(stdout)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, env, args[1:])
		}
	}
	printUsage(stderr)
	return fmt.Errorf("unknown command %q", args[0])
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `eddy learns models from a live Kafka event stream and serves their predictions.

Usage:
  eddy <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run "eddy <command> --help" for a command's flags. Every flag can also be set
through the environment as EDDY_<FLAG>, e.g. EDDY_DATA_DIR=/var/lib/eddy.

Quick start:
  eddy demo                                  # service + built-in drifting stream
  eddy predict --model sea --feature f1=3.2 --feature f2=5.1 --feature f3=0.4
  eddy snapshots --model sea                 # versions, metrics, which serves
`)
}

// newFlagSet returns a flag set whose --help prints a description and the
// flags, and which reads unset flags from EDDY_* environment variables.
func newFlagSet(env *environment, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.stdout, "Usage: eddy %s\nFlags (-flag and --flag both work):\n", usage)
		fs.SetOutput(env.stdout)
		fs.PrintDefaults()
		fs.SetOutput(env.stderr)
	}
	return fs
}

// parseFlags parses args, filling flags not given on the command line from
// the environment (EDDY_DATA_DIR for --data-dir).
func parseFlags(fs *flag.FlagSet, env *environment, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.stderr, "eddy %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return errUsage
	}
	given := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if given[f.Name] || err != nil {
			return
		}
		key := "EDDY_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := env.getenv(key); v != "" {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", key, v, serr)
			}
		}
	})
	return err
}

// errHelp means --help was printed: the command succeeds without running.
var errHelp = errors.New("help requested")

func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

var _ = os.Stderr

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
