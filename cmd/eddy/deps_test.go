package main

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
// stream.
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
	}
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			deps, ok := listDeps(t, module+"/"+r.pkg)
			if !ok {
				t.Fatalf("package %s has no Go files; the design has it", r.pkg)
			}
			for _, d := range deps {
				if d.Standard || d.ImportPath == module+"/"+r.pkg {
					continue
				}
				if rest, ok := strings.CutPrefix(d.ImportPath, module+"/"); ok {
					if !contains(r.eddy, rest) {
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
