package main

import (
	"bytes"
	"strings"
	"testing"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

func TestSchemaPrintsFeaturesPoliciesAndDetectors(t *testing.T) {
	zero, ten, skew := 0.0, 10.0, 0.456
	var out bytes.Buffer
	printSchema(&out, &eddyv1.GetSchemaResponse{Model: "m", NewFeatures: "ignore", Strict: true,
		Features: []*eddyv1.SchemaFeature{
			{Name: "f1", Kind: "number", Required: true, Min: &zero, Max: &ten, Missing: "zero", Indicator: true},
			{Name: "zip", Kind: "category"},
		},
		FeatureDrift: []*eddyv1.FeatureDrift{{Feature: "f1", Distance: 0.123, Ready: true, Skew: &skew, ServingValues: 42}, {Feature: "f2"}},
	})
	got := out.String()
	for _, want := range []string{
		"model m: 2 features; undeclared ones: ignore; violations: dead_letter; Predict: strict",
		"f1", "[0, 10]", "zero + f1_missing", "zip", "category", "skip",
		"0.123", "comparing", "building its reference", "0.456 (42 requests)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	out.Reset()
	printSchema(&out, &eddyv1.GetSchemaResponse{Model: "m", Inferring: true, InferSeen: 40, InferWant: 100})
	if !strings.Contains(out.String(), "inferring its schema: 40 of 100 events seen") {
		t.Errorf("inferring: %s", out.String())
	}
	out.Reset()
	printSchema(&out, &eddyv1.GetSchemaResponse{Model: "m"})
	if !strings.Contains(out.String(), "no schema") {
		t.Errorf("no schema: %s", out.String())
	}
}
