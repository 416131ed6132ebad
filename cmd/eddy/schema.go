package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

const schemaUsage = `schema --model NAME [flags]

Shows a model's schema as it is in force (declared in the configuration, or
inferred from its first events: then also how far the inference is), one row
per feature: kind, required, range, what a missing value becomes; the
policies for undeclared features and for violations; and the state of its
feature-drift detectors (the Jensen-Shannon distance of each watched
feature's newest values from its reference), as of the last checkpoint of
the instance that learns the model, and each watched feature's
training/serving skew there (the distance between its values in the newest
events learned and in the newest Predict requests that instance answered).
` + adminConnection

func runSchema(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "schema", schemaUsage)
	asJSON := fs.Bool("json", false, "print the response as JSON")
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	var resp *eddyv1.GetSchemaResponse
	err := a.call(ctx, "schema", func(ctx context.Context, c eddyv1.AdminClient) (err error) {
		resp, err = c.GetSchema(ctx, &eddyv1.GetSchemaRequest{Model: a.model})
		return err
	})
	if err != nil {
		return err
	}
	writeResponse(env.stdout, *asJSON, resp, func(w io.Writer) { printSchema(w, resp) })
	return nil
}

// printSchema writes resp as a summary line and tables.
func printSchema(w io.Writer, resp *eddyv1.GetSchemaResponse) {
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	switch {
	case len(resp.GetFeatures()) == 0 && !resp.GetInferring():
		fmt.Fprintf(w, "model %s: no schema (every feature is accepted as it comes)\n", resp.GetModel())
	case resp.GetInferring():
		fmt.Fprintf(w, "model %s: inferring its schema: %d of %d events seen\n", resp.GetModel(), resp.GetInferSeen(), resp.GetInferWant())
	default:
		fmt.Fprintf(w, "model %s: %d features; undeclared ones: %s; violations: %s; Predict: %s\n", resp.GetModel(), len(resp.GetFeatures()),
			or(resp.GetNewFeatures(), "accept"), or(resp.GetOnViolation(), "dead_letter"), map[bool]string{true: "strict", false: "warnings"}[resp.GetStrict()])
	}
	if len(resp.GetFeatures()) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FEATURE\tKIND\tREQUIRED\tRANGE\tMISSING")
		for _, f := range resp.GetFeatures() {
			rng := ""
			if f.Min != nil || f.Max != nil {
				lo, hi := "-inf", "+inf"
				if f.Min != nil {
					lo = strconv.FormatFloat(f.GetMin(), 'g', -1, 64)
				}
				if f.Max != nil {
					hi = strconv.FormatFloat(f.GetMax(), 'g', -1, 64)
				}
				rng = "[" + lo + ", " + hi + "]"
			}
			missing := or(f.GetMissing(), "skip")
			if f.GetIndicator() {
				missing += " + " + f.GetName() + "_missing"
			}
			fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%s\n", f.GetName(), f.GetKind(), f.GetRequired(), rng, missing)
		}
		tw.Flush()
	}
	if len(resp.GetFeatureDrift()) > 0 {
		fmt.Fprintln(w, "feature drift (Jensen-Shannon distance from the reference, 0-1) and training/serving skew (distance between learned and Predict values):")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FEATURE\tDISTANCE\tSTATE\tSKEW")
		for _, d := range resp.GetFeatureDrift() {
			state := "comparing"
			if !d.GetReady() {
				state = "building its reference"
			}
			skew := "-"
			if d.Skew != nil {
				skew = fmt.Sprintf("%.3f (%d requests)", d.GetSkew(), d.GetServingValues())
			}
			fmt.Fprintf(tw, "%s\t%.3f\t%s\t%s\n", d.GetFeature(), d.GetDistance(), state, skew)
		}
		tw.Flush()
	}
}
