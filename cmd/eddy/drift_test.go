package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

// runDriftOn runs eddy drift with args on the given stdin.
func runDriftOn(t *testing.T, stdin io.Reader, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := &environment{getenv: func(k string) string { return env[k] }, stdin: stdin, stdout: &out, stderr: &errOut}
	err = runDrift(context.Background(), e, args)
	return out.String(), errOut.String(), err
}

func openDriftStream(t *testing.T, name string) io.Reader {
	t.Helper()
	f, err := os.Open(datasetPath(t, "drift/"+name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestDriftPrintsRiversDetectionIndices(t *testing.T) {
	cases := []struct {
		name      string
		file      string
		args      []string
		want      string // all of stdout
		wantFirst string // or only its first line
	}{
		{name: "ADWIN on the docstring stream", file: "river_docstring.txt", args: []string{"--detector", "adwin"}, want: "1023\n"},
		{name: "ADWIN is the default", file: "river_docstring.txt", want: "1023\n"},
		{name: "ADWIN on four segments", file: "river_four_segments.txt", args: []string{"--detector", "adwin"}, want: "1023\n2015\n3007\n"},
		{name: "ADWIN with River's defaults spelled out", file: "river_four_segments.txt",
			args: []string{"--detector", "adwin", "--delta", "0.002", "--clock", "32", "--max-buckets", "5", "--min-window-length", "5", "--grace-period", "10"},
			want: "1023\n2015\n3007\n"},
		{name: "Page-Hinkley on the docstring stream", file: "river_docstring.txt", args: []string{"--detector", "page-hinkley"}, wantFirst: "1006"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, err := runDriftOn(t, openDriftStream(t, tc.file), nil, tc.args...)
			if err != nil {
				t.Fatalf("eddy drift %v: %v\nstderr:\n%s", tc.args, err, stderr)
			}
			if tc.want != "" && stdout != tc.want {
				t.Fatalf("stdout %q, want %q", stdout, tc.want)
			}
			if first, _, _ := strings.Cut(stdout, "\n"); tc.wantFirst != "" && first != tc.wantFirst {
				t.Fatalf("first line %q, want %q (stdout %q)", first, tc.wantFirst, stdout)
			}
			t.Logf("stdout: %q", stdout)
		})
	}
}

func TestDriftCountsValuesNotLines(t *testing.T) {
	// A step from 0 to 10 with blank lines and spaces around the values:
	// Page-Hinkley detects at the same value index as without them.
	var plain, padded strings.Builder
	for i := range 200 {
		v := "0"
		if i >= 100 {
			v = "10"
		}
		plain.WriteString(v + "\n")
		padded.WriteString("\n  " + v + " \n")
	}
	want, _, err := runDriftOn(t, strings.NewReader(plain.String()), nil, "--detector", "page-hinkley")
	if err != nil || want == "" {
		t.Fatalf("plain input: %q, %v", want, err)
	}
	got, _, err := runDriftOn(t, strings.NewReader(padded.String()), nil, "--detector", "page-hinkley")
	if err != nil || got != want {
		t.Fatalf("with blank lines: %q, %v; without: %q", got, err, want)
	}
}

func TestDriftRejectsBadInputAndFlags(t *testing.T) {
	cases := []struct {
		name      string
		stdin     string
		args      []string
		env       map[string]string
		wantError string
	}{
		{name: "a line that is not a number", stdin: "0\n1\n\nabc\n1\n", wantError: `drift: line 4: "abc" is not a number`},
		{name: "a flag of another detector", args: []string{"--detector", "page-hinkley", "--clock", "16"}, wantError: "--clock does not apply to the page-hinkley detector"},
		{name: "a mode for ADWIN", args: []string{"--mode", "up"}, wantError: "--mode does not apply to the adwin detector"},
		{name: "a flag of another detector from the environment", env: map[string]string{"EDDY_BETA": "0.5"}, wantError: "--beta does not apply to the adwin detector"},
		{name: "an unknown detector", args: []string{"--detector", "cusum"}, wantError: `unknown --detector "cusum"`},
		{name: "an invalid value", args: []string{"--detector", "adwin", "--delta", "2"}, wantError: "delta must be in (0, 1)"},
		{name: "an unknown mode", args: []string{"--detector", "page-hinkley", "--mode", "sideways"}, wantError: "mode must be up, down or both"},
		{name: "a fractional integer parameter", args: []string{"--detector", "kswin", "--window-size", "99.5"}, wantError: "window_size must be a whole number"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stdout, _, err := runDriftOn(t, strings.NewReader(tc.stdin), tc.env, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.wantError) {
				t.Fatalf("error %v, want one containing %q", err, tc.wantError)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestDriftPrintsDetectionsBeforeAnInputError(t *testing.T) {
	var in strings.Builder
	for i := range 300 {
		if i < 100 {
			in.WriteString("0\n")
		} else {
			in.WriteString("10\n")
		}
	}
	in.WriteString("x\n")
	stdout, _, err := runDriftOn(t, strings.NewReader(in.String()), nil, "--detector", "page-hinkley")
	if err == nil || !strings.Contains(err.Error(), "line 301") {
		t.Fatalf("error %v, want one naming line 301", err)
	}
	if stdout == "" {
		t.Fatal("the detections before the bad line were not printed")
	}
}

func TestDriftHelpListsEveryDetectorWithItsDefaults(t *testing.T) {
	stdout, _, err := runCLI(t, nil, "drift", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Usage: eddy drift", "adwin", "--delta 0.002 --clock 32 --max-buckets 5 --min-window-length 5 --grace-period 10",
		"page-hinkley", "--min-instances 30 --delta 0.005 --threshold 50 --alpha 0.9999 --mode both",
		"--warm-start 30 --warning-threshold 2 --drift-threshold 3", "--warm-start 30 --alpha 0.95 --beta 0.9",
		"--alpha 0.005 --window-size 100 --stat-size 30 --seed 0", "-max-buckets"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q:\n%s", want, stdout)
		}
	}
}

func TestDriftStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	e := &environment{getenv: func(string) string { return "" }, stdin: strings.NewReader(strings.Repeat("0\n", 10000)), stdout: &out, stderr: io.Discard}
	if err := runDrift(ctx, e, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}
