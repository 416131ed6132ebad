package main

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyhq/eddy/drift"
)

// lockedBuffer is a bytes.Buffer that a running command writes while the
// test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// demoAddrs keep a test's demo off the default ports.
var demoAddrs = []string{"--embedded-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--metrics-addr", ""}

func TestDemoWithoutDriftAndWithDDMRunsUnderTheEnvironmentsModelName(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr lockedBuffer
	env := map[string]string{"EDDY_MODEL_NAME": "from-env", "EDDY_PROMOTE_INTERVAL": "200ms"}
	args := append([]string{"demo", "--drift-every", "0", "--model-drift", "ddm", "--rate", "0", "--events", "3000", "--summary-every", "100ms"}, demoAddrs...)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(k string) string { return env[k] }, &stdout, &stderr) }()
	waitFor(t, 60*time.Second, "a summary line serving a promoted from-env", func() bool {
		select {
		case err := <-done:
			t.Fatalf("demo stopped: %v\n%s", err, stderr.String())
		default:
		}
		// Early lines may say v0 (nothing promoted yet); one with a
		// promoted version must follow.
		return regexp.MustCompile(`serving from-env v[1-9]`).MatchString(stdout.String())
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("demo: %v", err)
	}
	if strings.Contains(stdout.String(), "SEA concept changes") {
		t.Errorf("--drift-every 0 changed the concept:\n%s", stdout.String())
	}
}

func TestSEAWithoutDriftKeepsItsFirstConcept(t *testing.T) {
	gen := newSEA(1, 0, 0)
	for range 100000 {
		if gen.concept() != 0 || gen.changed() {
			t.Fatalf("concept %d (changed %v) after %d events with driftEvery 0", gen.concept(), gen.changed(), gen.n)
		}
		gen.next(nil, "x")
	}
}

func TestDemoRefusesSettingsItCannotRun(t *testing.T) {
	for _, tc := range []struct{ flag, value string }{
		{"--drift-every", "-1"}, {"--noise", "1.5"}, {"--events", "-3"}, {"--summary-every", "0s"},
	} {
		t.Run(tc.flag+" "+tc.value, func(t *testing.T) {
			_, err := parseDemoFlags(&environment{getenv: func(string) string { return "" }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}, []string{tc.flag, tc.value})
			if err == nil || !strings.Contains(err.Error(), tc.flag) {
				t.Fatalf("err = %v, want one naming %s", err, tc.flag)
			}
		})
	}
}

func TestDemoPresetsAreDefaultsThatFlagsAndTheEnvironmentOverride(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		args      []string
		wantName  string
		wantDrift string
		wantParam map[string]float64
		wantEvery time.Duration
	}{
		{"the presets", nil, nil, "sea", drift.KindADWIN, map[string]float64{"delta": 0.02}, time.Second},
		{"the environment's model and promotion interval", map[string]string{"EDDY_MODEL_NAME": "m", "EDDY_PROMOTE_INTERVAL": "7s"}, nil,
			"m", drift.KindADWIN, map[string]float64{"delta": 0.02}, 7 * time.Second},
		{"flags over the environment", map[string]string{"EDDY_MODEL_NAME": "m"}, []string{"--model-name", "f", "--promote-interval", "3s"},
			"f", drift.KindADWIN, map[string]float64{"delta": 0.02}, 3 * time.Second},
		{"ddm without ADWIN's delta", nil, []string{"--model-drift", "ddm"}, "sea", drift.KindDDM, nil, time.Second},
		{"page-hinkley from the environment without ADWIN's delta", map[string]string{"EDDY_MODEL_DRIFT": "page-hinkley"}, nil,
			"sea", drift.KindPageHinkley, nil, time.Second},
		{"a delta of the user's", nil, []string{"--model-drift-param", "delta=0.05"}, "sea", drift.KindADWIN, map[string]float64{"delta": 0.05}, time.Second},
		{"another ADWIN parameter beside the preset delta", map[string]string{"EDDY_MODEL_DRIFT_PARAM": "clock=16"}, nil,
			"sea", drift.KindADWIN, map[string]float64{"delta": 0.02, "clock": 16}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := &environment{getenv: func(k string) string { return tt.env[k] }, stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}}
			o, err := parseDemoFlags(env, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			m := o.serve.model
			if m.Name != tt.wantName || m.Drift.Detector != tt.wantDrift || o.serve.promoteInterval != tt.wantEvery || !sameParams(m.Drift.Params, tt.wantParam) {
				t.Fatalf("model %q, detector %q, params %v, promote every %v; want %q, %q, %v, %v",
					m.Name, m.Drift.Detector, m.Drift.Params, o.serve.promoteInterval, tt.wantName, tt.wantDrift, tt.wantParam, tt.wantEvery)
			}
			if _, err := o.serve.engineConfig(); err != nil {
				t.Fatalf("the demo's model does not validate: %v", err)
			}
		})
	}
}

func sameParams(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// buildEddy builds the eddy binary into a temporary directory.
func buildEddy(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "eddy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func TestDemoRemovesItsTempDirWhenItsOutputIsClosed(t *testing.T) {
	bin := buildEddy(t)
	tmp := t.TempDir()
	cmd := exec.Command(bin, append([]string{"demo", "--summary-every", "100ms", "--rate", "500"}, demoAddrs...)...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	// As `eddy demo | head -n 8` does: read some lines, then close the pipe.
	lines := bufio.NewScanner(stdout)
	for range 8 {
		if !lines.Scan() {
			t.Fatalf("demo output ended early: %v\nstderr:\n%s", lines.Err(), stderr.String())
		}
	}
	if dirs, _ := filepath.Glob(filepath.Join(tmp, "eddy-demo-*")); len(dirs) != 1 {
		t.Fatalf("temp dirs while the demo runs: %v, want one", dirs)
	}
	stdout.(interface{ Close() error }).Close()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("demo exited with %v after its output closed, want a clean stop\nstderr:\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("demo still running 30s after its output closed")
	}
	if dirs, _ := filepath.Glob(filepath.Join(tmp, "eddy-demo-*")); len(dirs) != 0 {
		t.Fatalf("the demo left %v behind", dirs)
	}
}
