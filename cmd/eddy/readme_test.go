package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// offlineCommands are the subcommands whose README examples run without a
// service: they are run by TestTheREADMEsOfflineExamplesRunAsShown.
var offlineCommands = []string{"evaluate", "drift"}

// readmeExample is one command of a sh block of README.md.
type readmeExample struct {
	line    int      // 1-based line number in README.md
	command string   // the line as written
	output  []string // the "# " lines right below it: what it prints
}

// readmeExamples returns the lines of README.md's ```sh blocks, each with
// the comment lines that follow it.
func readmeExamples(t *testing.T, readme []byte) []readmeExample {
	t.Helper()
	var examples []readmeExample
	inSh := false
	sc := bufio.NewScanner(bytes.NewReader(readme))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case !inSh && strings.TrimSpace(line) == "```sh":
			inSh = true
		case inSh && strings.TrimSpace(line) == "```":
			inSh = false
		case inSh && strings.HasPrefix(line, "#") && len(examples) > 0 && examples[len(examples)-1].line+len(examples[len(examples)-1].output) == n-1:
			examples[len(examples)-1].output = append(examples[len(examples)-1].output, strings.TrimPrefix(strings.TrimPrefix(line, "#"), " "))
		case inSh && strings.TrimSpace(line) != "" && !strings.HasPrefix(line, "#"):
			examples = append(examples, readmeExample{line: n, command: line})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return examples
}

// TestTheREADMEsOfflineExamplesRunAsShown runs every example of README.md
// that needs no running service (`go run ./cmd/eddy evaluate ...` and
// `... drift ...`, and the `gunzip -c FILE > COPY` lines that prepare their
// input) through the CLI's commands, from the repository root as a reader
// would, and compares what they print with the "# " lines below them: equal
// after trimming, or, where a line holds "...", the text between the "..."
// in order. /tmp paths of the README become a temporary directory.
func TestTheREADMEsOfflineExamplesRunAsShown(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join("..", ".."))
	tmp := t.TempDir()
	path := func(p string) string {
		if rest, ok := strings.CutPrefix(p, "/tmp/"); ok {
			return filepath.Join(tmp, rest)
		}
		return p
	}
	ran := map[string]int{}
	for _, ex := range readmeExamples(t, readme) {
		words := strings.Fields(ex.command)
		if i := indexOf(words, "#"); i >= 0 {
			words = words[:i] // a trailing comment
		}
		switch {
		case len(words) == 5 && words[0] == "gunzip" && words[1] == "-c" && words[3] == ">":
			gunzip(t, ex, words[2], path(words[4]))
		case len(words) >= 4 && words[0] == "go" && words[1] == "run" && words[2] == "./cmd/eddy" && slices.Contains(offlineCommands, words[3]):
			t.Run(strings.Join(words[3:], " "), func(t *testing.T) {
				runReadmeExample(t, ex, words[3:], path)
			})
			ran[words[3]]++
		default:
			for _, c := range offlineCommands {
				if strings.Contains(ex.command, "./cmd/eddy "+c) {
					t.Errorf("README.md line %d: %q: write an example of eddy %s as one command, `go run ./cmd/eddy %s ... [< FILE]`, so that this test runs it", ex.line, ex.command, c, c)
				}
			}
		}
	}
	for _, c := range offlineCommands {
		if ran[c] == 0 {
			t.Errorf("README.md has no example of eddy %s in a sh block (go run ./cmd/eddy %s ...)", c, c)
		}
	}
}

// runReadmeExample runs args (a subcommand and its arguments, with an
// optional "< FILE") and checks its output against ex.output.
func runReadmeExample(t *testing.T, ex readmeExample, args []string, path func(string) string) {
	var stdin io.Reader = strings.NewReader("")
	if i := indexOf(args, "<"); i >= 0 {
		if i != len(args)-2 {
			t.Fatalf("README.md line %d: %q: only a final `< FILE` is understood here", ex.line, ex.command)
		}
		f, err := os.Open(path(args[i+1]))
		if err != nil {
			t.Fatalf("README.md line %d: %v", ex.line, err)
		}
		defer f.Close()
		stdin, args = f, args[:i]
	}
	for i, a := range args {
		if strings.ContainsAny(a, `|;&>'"`+"`$") {
			t.Fatalf("README.md line %d: %q: %q is shell syntax this test does not run; keep offline examples to one command", ex.line, ex.command, a)
		}
		args[i] = path(a)
	}
	var stdout, stderr bytes.Buffer
	env := &environment{getenv: func(string) string { return "" }, stdin: stdin, stdout: &stdout, stderr: &stderr}
	var err error
	for _, c := range commands() {
		if c.name == args[0] {
			err = c.run(context.Background(), env, args[1:])
		}
	}
	if err != nil {
		t.Fatalf("README.md line %d: %s: %v\n%s", ex.line, ex.command, err, stderr.String())
	}
	if len(ex.output) == 0 {
		return
	}
	want := strings.Join(ex.output, "\n")
	if !matchesShownOutput(stdout.String(), want) {
		t.Errorf("README.md line %d: %s\nprints:\n%s\nREADME shows:\n%s", ex.line, ex.command, stdout.String(), want)
	}
}

// matchesShownOutput reports whether got is what the README shows: equal
// after trimming, or, when shown holds "...", the pieces between them in
// order, the first one at the start and the last at the end.
func matchesShownOutput(got, shown string) bool {
	got, shown = strings.TrimSpace(got), strings.TrimSpace(shown)
	pieces := strings.Split(shown, "...")
	if len(pieces) == 1 {
		return got == shown
	}
	if !strings.HasPrefix(got, pieces[0]) {
		return false
	}
	got = got[len(pieces[0]):]
	last := pieces[len(pieces)-1]
	for _, p := range pieces[1 : len(pieces)-1] {
		i := strings.Index(got, p)
		if i < 0 {
			return false
		}
		got = got[i+len(p):]
	}
	return strings.HasSuffix(got, last)
}

func gunzip(t *testing.T, ex readmeExample, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatalf("README.md line %d: %v", ex.line, err)
	}
	defer in.Close()
	zr, err := gzip.NewReader(in)
	if err != nil {
		t.Fatalf("README.md line %d: %s: %v", ex.line, src, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("README.md line %d: %s: %v", ex.line, src, err)
	}
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func indexOf(words []string, w string) int {
	for i, x := range words {
		if x == w {
			return i
		}
	}
	return -1
}

func TestShownOutputMatchesWithEllipses(t *testing.T) {
	for _, tc := range []struct {
		got, shown string
		want       bool
	}{
		{"1023\n2015\n", "1023\n2015", true},
		{"1023\n2015\n3007\n", "1023\n2015", false},
		{`{"n":3,"accuracy":0.5,"seconds":1}`, `{"n":3,...,"accuracy":0.5,...}`, false},
		{`{"n":3,"x":1,"accuracy":0.5,"seconds":1}`, `{"n":3,...,"accuracy":0.5,...}`, true},
		{`{"n":3,"accuracy":0.5,"seconds":1}`, `{"n":3,"accuracy":0.5,...}`, true},
		{`{"n":4,"accuracy":0.5}`, `{"n":3,...}`, false},
		{"rows 1\nsummary\n  accuracy 0.9\n  rolling 1", "rows 1\n...\n  accuracy 0.9\n...", true},
		{"rows 1\nsummary\n  accuracy 0.8\n", "rows 1\n...\n  accuracy 0.9\n...", false},
		{"a b c", "a ... c", true},
		{"a b c d", "a ... c", false},
	} {
		if got := matchesShownOutput(tc.got, tc.shown); got != tc.want {
			t.Errorf("matchesShownOutput(%q, %q) = %v, want %v", tc.got, tc.shown, got, tc.want)
		}
	}
}
