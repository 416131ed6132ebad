package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

const predictUsage = `predict --model NAME --feature NAME=VALUE... [flags]

Asks a running eddy for a prediction from the promoted snapshot of a model
and prints it with the snapshot's version. A VALUE that parses as a number is
sent as a number, true/false (any case) as a boolean, anything else as a category.

With --explain it also prints why: one row per feature the model used
(sent, derived from the entity's history, or an interaction) with its raw
value, the scaler's mean and standard deviation, the value the weight
multiplies, the weight and the contribution (weight × value), sorted by
|contribution|, with the intercept: they add up to the margin, whose
sigmoid (binary) or softmax (multiclass) is the answer. The prediction is
the same with or without --explain.
`

// featureFlags collects repeated --feature NAME=VALUE flags.
type featureFlags map[string]*structpb.Value

func (f featureFlags) String() string { return "" }

func (f featureFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", s)
	}
	if x, err := strconv.ParseFloat(value, 64); err == nil && !math.IsInf(x, 0) && !math.IsNaN(x) {
		f[name] = structpb.NewNumberValue(x)
	} else if lower := strings.ToLower(value); lower == "true" || lower == "false" {
		// Case-insensitive, as produce and evaluate read CSV cells.
		f[name] = structpb.NewBoolValue(lower == "true")
	} else {
		f[name] = structpb.NewStringValue(value)
	}
	return nil
}

func runPredict(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "predict", predictUsage)
	var client clientFlags
	client.register(fs)
	model := fs.String("model", "", "model name (required)")
	key := fs.String("key", "", "entity key")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	explain := fs.Bool("explain", false, "explain the prediction: every term's value, weight and contribution")
	topK := fs.Uint("top-k", 0, "with --explain: show the K terms of largest |contribution| (0: all)")
	allClasses := fs.Bool("all-classes", false, "with --explain, multiclass: every class's margin and probability")
	feats := featureFlags{}
	fs.Var(feats, "feature", "a feature as NAME=VALUE (repeatable)")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	if *model == "" {
		fs.Usage()
		return errors.New("predict: --model is required")
	}
	conn, err := client.dial()
	if err != nil {
		return fmt.Errorf("predict: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, client.timeout)
	defer cancel()
	resp, err := eddyv1.NewInferenceClient(conn).Predict(ctx, &eddyv1.PredictRequest{Model: *model, EntityKey: *key, Features: feats,
		Explain: *explain, TopK: uint32(*topK), AllClasses: *allClasses})
	if err != nil {
		st := status.Convert(err)
		return fmt.Errorf("predict: %s: %s", st.Code(), st.Message())
	}
	if *asJSON {
		out, _ := protojson.Marshal(resp)
		fmt.Fprintln(env.stdout, string(out))
		return nil
	}
	switch {
	case resp.GetTask() == "multiclass":
		fmt.Fprintf(env.stdout, "model %s version %d: class %d (probability %.4f)\n", resp.GetModel(), resp.GetModelVersion(), resp.GetPredictedLabel(), resp.GetProbability())
	case resp.Probability != nil:
		fmt.Fprintf(env.stdout, "model %s version %d: label %d (probability of 1: %.4f)\n", resp.GetModel(), resp.GetModelVersion(), resp.GetPredictedLabel(), resp.GetProbability())
	default:
		fmt.Fprintf(env.stdout, "model %s version %d: value %.6g\n", resp.GetModel(), resp.GetModelVersion(), resp.GetValue())
	}
	for _, w := range resp.GetWarnings() {
		fmt.Fprintf(env.stdout, "warning: %s\n", w)
	}
	if e := resp.GetExplanation(); e != nil {
		score := resp.GetProbability()
		if resp.Value != nil {
			score = resp.GetValue()
		}
		printExplanation(env.stdout, score, e)
	}
	return nil
}
