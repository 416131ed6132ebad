package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err = run(context.Background(), args, func(k string) string { return env[k] }, &out, &errOut)
	return out.String(), errOut.String(), err
}

func TestEveryCommandExplainsItselfWithHelp(t *testing.T) {
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			out, _, err := runCLI(t, nil, c.name, "--help")
			if err != nil {
				t.Fatalf("--help failed: %v", err)
			}
			if !strings.Contains(out, "Usage: eddy "+c.name) || !strings.Contains(out, "Flags") {
				t.Fatalf("--help of %s lacks usage or flags:\n%s", c.name, out)
			}
		})
	}
	out, _, err := runCLI(t, nil, "help")
	if err != nil || !strings.Contains(out, "demo") || !strings.Contains(out, "EDDY_") {
		t.Fatalf("eddy help: %v\n%s", err, out)
	}
}

func TestUnknownCommandIsAnError(t *testing.T) {
	if _, _, err := runCLI(t, nil, "frobnicate"); err == nil || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("err = %v, want one naming the command", err)
	}
}

func TestProduceNamesTheBadLine(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, file, content, want string
		args                      []string
	}{
		{"csv with a short row", "a.csv", "x,y,label\n1,2,0\n3,4\n", "line 3", []string{"--target", "label"}},
		{"csv with a bad label", "b.csv", "x,label\n1,0\n2,maybe\n", "line 3", []string{"--target", "label"}},
		{"csv without the target column", "c.csv", "x,y\n1,2\n", `no column "label"`, []string{"--target", "label"}},
		{"json lines with invalid JSON", "d.jsonl", "{\"id\":\"1\",\"features\":{}}\n\n{oops\n", "line 3", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.file)
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			broker := startBroker(t)
			args := append([]string{"produce", "--file", path, "--brokers", broker, "--topic", "t"}, tc.args...)
			_, _, err := runCLI(t, nil, args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestConfigFileErrorsAreClear(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, yaml, want string }{
		{"unknown key", "models:\n  - name: a\n    learning_rate: 0.1\n", "learning_rate"},
		{"no models", "promote_interval: 5s\n", "no models"},
		{"bad task", "models:\n  - name: a\n    task: ranking\n", "ranking"},
		{"bad name", "models:\n  - name: a/b\n", "a/b"},
		{"duplicate model", "models:\n  - name: a\n  - name: a\n", "twice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			o := serveOptions{configFile: path}
			if _, err := o.engineConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestShippedModelConfigIsValid(t *testing.T) {
	o := serveOptions{configFile: filepath.Join("..", "..", ".deploy", "models.yaml")}
	cfg, err := o.engineConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Models[0].Name != "sea" {
		t.Fatalf("models = %+v", cfg.Models)
	}
}

func TestFlagsFallBackToTheEnvironment(t *testing.T) {
	var o serveOptions
	env := &environment{getenv: func(k string) string { return map[string]string{"EDDY_DATA_DIR": "/from/env", "EDDY_GROUP": "g"}[k] }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
	fs := newFlagSet(env, "serve", serveUsage)
	o.register(fs)
	if err := parseFlags(fs, env, []string{"--group", "from-flag"}); err != nil {
		t.Fatal(err)
	}
	if o.dataDir != "/from/env" || o.group != "from-flag" {
		t.Fatalf("data dir %q (want from env), group %q (want the flag's)", o.dataDir, o.group)
	}
}

func TestServeRefusesADataDirThatIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "not-a-dir")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	broker := startBroker(t)
	_, _, err := runCLI(t, nil, "serve", "--brokers", broker, "--data-dir", file, "--grpc-addr", "127.0.0.1:0", "--metrics-addr", "")
	if err == nil || !strings.Contains(err.Error(), "not-a-dir") {
		t.Fatalf("err = %v, want a clear error naming the data dir", err)
	}
}

// TestBenchEntitiesHoldsTheBound runs eddy bench-entities small: 20,000
// users through a bound of 5,000 histories, on a real Pebble store. Every
// run line holds at most the bound in memory after its last checkpoint,
// the hot set (2,500 users, within the bound) is mostly hits, the restart
// learns its first event holding one history, and the load-everything
// restart it is compared with holds all 20,000.
func TestBenchEntitiesHoldsTheBound(t *testing.T) {
	var out, errOut bytes.Buffer
	args := []string{"bench-entities", "--entities", "20000", "--bound", "5000", "--events", "20000", "--load-all", "20000"}
	if err := run(context.Background(), args, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("eddy bench-entities: %v\n%s%s", err, out.String(), errOut.String())
	}
	t.Logf("\n%s", out.String())
	line := regexp.MustCompile(`(?m)^(fill|hot|uniform) +\d+ events +\d+ events/s  in memory +(\d+)  hit ratio ([0-9.]+)  store reads \d+  peak RSS \d+ MiB  Go runtime \d+ MiB$`)
	runs := line.FindAllStringSubmatch(out.String(), -1)
	if len(runs) != 3 {
		t.Fatalf("%d run lines, want fill, hot and uniform:\n%s", len(runs), out.String())
	}
	for _, r := range runs {
		if n, _ := strconv.Atoi(r[2]); n > 5000 {
			t.Errorf("%s: %d histories in memory, bound 5000", r[1], n)
		}
		if ratio, _ := strconv.ParseFloat(r[3], 64); r[1] == "hot" && ratio < 0.8 {
			t.Errorf("hot run: hit ratio %v, want most events in memory", ratio)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`restart  20000 users stored: store and engine open in \S+, first event learned after \S+ \(histories in memory then: 1\)`),
		regexp.MustCompile(`load-all 20000 histories read into memory before the first event .*: \S+, about \d+ MiB of histories, 20000 in memory`),
	} {
		if !want.MatchString(out.String()) {
			t.Errorf("no line matching %s:\n%s", want, out.String())
		}
	}
}

// TestBenchMeasuresWhatItSays runs eddy bench small: every measurement
// finishes and prints a rate, the serving one with the Predict rate it
// achieved and no refused Predict (the model was served before the load).
func TestBenchMeasuresWhatItSays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"bench", "--events", "5000", "--predict-rate", "500"}, func(string) string { return "" }, &out, &errOut); err != nil {
		t.Fatalf("eddy bench: %v\n%s%s", err, out.String(), errOut.String())
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`state export every 1s vs off: \d+ vs \d+ events/s, ratio \d`),
		regexp.MustCompile(`500 Predict/s offered +\d+ events/s  \(Predict: \d+/s answered, 0 refused, p99 `),
		regexp.MustCompile(`learning while serving \d+ Predict/s vs none: \d+ vs \d+ events/s, ratio \d`),
	} {
		if !want.MatchString(out.String()) {
			t.Errorf("eddy bench printed no line matching %s:\n%s", want, out.String())
		}
	}
}
