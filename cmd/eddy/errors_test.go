package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/eddyhq/eddy/drift"
	"github.com/eddyhq/eddy/learner"
)

func TestErrorsSayTheirPrefixOnce(t *testing.T) {
	o := serveOptions{model: learner.ModelConfig{Name: "m", Drift: learner.DriftConfig{Detector: drift.KindDDM, Params: map[string]float64{"delta": 0.1}}}}
	_, err := o.engineConfig()
	if !errors.Is(err, drift.ErrUnknownParam) {
		t.Fatalf("err = %v, want one wrapping drift.ErrUnknownParam", err)
	}
	if strings.Count(err.Error(), "drift:") != 1 {
		t.Fatalf("err = %q, want the prefix drift: once", err)
	}
}
