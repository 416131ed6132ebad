package eddy_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/eddyhq/eddy"

// TestPackagesDependOnlyInTheDesignedDirection enforces the dependency
// direction of the design: features and drift are leaves (standard library
// and gonum only, and eddy's binary codec, features/codec, itself standard
// library only; features also uses xxhash, the well-kept hash the learner
// issue asks for instead of a hand-written one); learner, the models, may
// add features and drift but nothing with I/O (no Pebble, no Prometheus);
// learner/store wraps Pebble and no eddy package; learner/engine adds the
// store and Prometheus; stream uses kafka-go and no domain package; serving
// uses proto and features (for the raw field type) but never learner or
// stream; serving/chart, the pictures, uses gonum's plotting library and no
// eddy package; the development broker (stream/devbroker) uses kfake and no eddy
// package; the service (the module's root package, "" below) wires all of
// them together and nothing else of eddy's (never cmd).
func TestPackagesDependOnlyInTheDesignedDirection(t *testing.T) {
	rules := []struct {
		pkg string
		// allowed eddy packages; allowThirdParty: prefixes of allowed modules,
		// nil meaning "any"
		eddy            []string
		allowThirdParty []string
	}{
		{pkg: "features/codec", eddy: nil, allowThirdParty: []string{}},
		{pkg: "features", eddy: []string{"features/codec"}, allowThirdParty: []string{"gonum.org/v1/gonum", "github.com/cespare/xxhash/v2"}},
		{pkg: "drift", eddy: []string{"features/codec"}, allowThirdParty: []string{"gonum.org/v1/gonum"}},
		{pkg: "learner", eddy: []string{"features", "features/codec", "drift"}, allowThirdParty: []string{"gonum.org/v1/gonum", "github.com/cespare/xxhash/v2"}},
		{pkg: "learner/store", eddy: nil},
		{pkg: "learner/engine", eddy: []string{"features", "features/codec", "drift", "learner", "learner/store"}},
		{pkg: "stream", eddy: nil},
		{pkg: "serving", eddy: []string{"features", "features/codec", "proto/eddy/v1"}},
		{pkg: "serving/chart", eddy: nil},
		{pkg: "stream/devbroker", eddy: nil, allowThirdParty: []string{"github.com/twmb/franz-go", "github.com/klauspost/compress", "github.com/pierrec/lz4/v4"}},
		{pkg: "", eddy: []string{"features", "features/...", "drift", "learner/...", "stream/...", "serving/...", "proto/..."}},
	}
	for _, r := range rules {
		path := strings.TrimSuffix(module+"/"+r.pkg, "/")
		name := r.pkg
		if name == "" {
			name = "the service (root package)"
		}
		t.Run(name, func(t *testing.T) {
			deps, ok := listDeps(t, path)
			if !ok {
				t.Fatalf("package %s has no Go files; the design has it", path)
			}
			for _, d := range deps {
				if d.Standard || d.ImportPath == path {
					continue
				}
				if rest, ok := strings.CutPrefix(d.ImportPath, module+"/"); ok {
					if !matchesAny(r.eddy, rest) {
						t.Errorf("%s imports eddy package %s (allowed: %v)", r.pkg, rest, r.eddy)
					}
					continue
				}
				if r.allowThirdParty != nil && !hasPrefix(d.ImportPath, r.allowThirdParty) {
					t.Errorf("%s depends on %s; it may use only the standard library and %v", r.pkg, d.ImportPath, r.allowThirdParty)
				}
			}
		})
	}
	t.Run("stream uses no domain package and kafka-go", func(t *testing.T) {
		deps, _ := listDeps(t, module+"/stream")
		found := false
		for _, d := range deps {
			found = found || d.ImportPath == "github.com/segmentio/kafka-go"
		}
		if !found {
			t.Error("stream does not use github.com/segmentio/kafka-go")
		}
	})
}

// TestTheDevelopmentBrokerIsImportedOnlyWhereItBelongs: kfake (through
// stream/devbroker) is part of the service's embedded mode and of the CLI's
// "eddy broker", never of a production package such as stream; tests may
// import it freely (go list -deps without -test leaves them out).
func TestTheDevelopmentBrokerIsImportedOnlyWhereItBelongs(t *testing.T) {
	allowed := []string{module, module + "/cmd/eddy", module + "/stream/devbroker"}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Deps " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	checked := 0
	for line := range strings.Lines(string(out)) {
		pkg, deps, _ := strings.Cut(strings.TrimSpace(line), " ")
		checked++
		for _, d := range strings.Fields(deps) {
			if (d == "github.com/twmb/franz-go/pkg/kfake" || d == module+"/stream/devbroker") && !contains(allowed, pkg) {
				t.Errorf("%s imports %s; only %v may", pkg, d, allowed)
			}
		}
	}
	if checked < 6 {
		t.Fatalf("go list saw %d packages; the design has more", checked)
	}
}

type goPackage struct {
	ImportPath string
	Standard   bool
}

func listDeps(t *testing.T, pkg string) ([]goPackage, bool) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json", pkg).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && strings.Contains(string(ee.Stderr), "no Go files") {
			return nil, false
		}
		t.Fatalf("go list %s: %v", pkg, err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var deps []goPackage
	for dec.More() {
		var p goPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		deps = append(deps, p)
	}
	return deps, true
}

func hasPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// matchesAny reports whether pkg is one of patterns, where "p/..." stands
// for p and every package below it.
func matchesAny(patterns []string, pkg string) bool {
	for _, p := range patterns {
		if tree, ok := strings.CutSuffix(p, "/..."); ok && (pkg == tree || strings.HasPrefix(pkg, tree+"/")) {
			return true
		}
		if pkg == p {
			return true
		}
	}
	return false
}
