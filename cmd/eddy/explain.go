package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// printExplanation writes an explanation as River's debug_one does: one row
// per term (name, value, weight, contribution) with the intercept, sorted
// by |contribution|, then how the terms make the margin and the margin the
// answer. score is the prediction's.
func printExplanation(w io.Writer, score float64, e *eddyv1.Explanation) {
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tRAW\tMEAN\tSTD\tVALUE\tWEIGHT\tCONTRIBUTION\tBUCKET")
	fmt.Fprintf(tw, "intercept\t\t\t\t\t1\t%s\t%s\n", num(e.GetIntercept()), num(e.GetIntercept()))
	for _, t := range e.GetTerms() {
		name, raw := t.GetName(), num(t.GetRawValue())
		if t.GetDerived() {
			name += " (derived)"
		}
		if t.GetKind() == "category" {
			raw = t.GetText()
		}
		mean, std := "", ""
		if t.Mean != nil && t.GetScaled() {
			mean, std = num(t.GetMean()), num(t.GetStd())
		}
		bucket := ""
		if t.Bucket != nil {
			bucket = strconv.FormatUint(t.GetBucket(), 10)
			if t.GetSharedBucket() {
				bucket += " (shared)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, t.GetKind(), raw, mean, std, num(t.GetValue()), num(t.GetWeight()), num(t.GetContribution()), bucket)
	}
	if e.GetOmitted() > 0 {
		fmt.Fprintf(tw, "(%d more terms)\t\t\t\t\t\t\t%s\n", e.GetOmitted(), num(e.GetOmittedContribution()))
	}
	tw.Flush()
	terms := len(e.GetTerms()) + int(e.GetOmitted())
	switch e.GetLink() {
	case "sigmoid":
		fmt.Fprintf(w, "margin %s = intercept + %d terms; sigmoid(margin) = %s, the probability of 1\n", num(e.GetMargin()), terms, num(score))
	case "identity":
		fmt.Fprintf(w, "margin %s = intercept + %d terms = the value\n", num(e.GetMargin()), terms)
	default:
		fmt.Fprintf(w, "margin of class %d %s = intercept + %d terms; softmax over the classes' margins = %s, its probability\n", e.GetClass(), num(e.GetMargin()), terms, num(score))
	}
	if len(e.GetClasses()) > 0 {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLASS\tINTERCEPT\tMARGIN\tPROBABILITY")
		for _, c := range e.GetClasses() {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", c.GetClass(), num(c.GetIntercept()), num(c.GetMargin()), num(c.GetProbability()))
		}
		tw.Flush()
	}
	if len(e.GetUnused()) > 0 {
		fmt.Fprintf(w, "not used by the model (ignored, or never learned): %s\n", strings.Join(e.GetUnused(), ", "))
	}
}

const inspectUsage = `inspect --model NAME [--version V] [--top K] [flags]

Describes what a model has learned: its configuration (defaults applied),
how many examples it learned, its prequential metrics, the scaler's mean
and standard deviation and the weight of each numeric feature, and its K
largest weights (default 20) by readable name: hashed categories
("country=DE") and interactions ("age × country=DE") are named through a
bounded dictionary the model keeps with its state (hash_names in the model
configuration, 4,096 buckets by default); a bucket it does not name shows
as "bucket N". Without --version, the model as of the last checkpoint of
the instance that learns it; with one, that stored snapshot (see
eddy snapshots).
` + adminConnection

func runInspect(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "inspect", inspectUsage)
	version := fs.Uint64("version", 0, "snapshot version to inspect (default: the model as of its last checkpoint)")
	top := fs.Uint("top", 20, "how many of the largest weights to list")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	var resp *eddyv1.InspectResponse
	err := a.call(ctx, "inspect", func(ctx context.Context, c eddyv1.AdminClient) (err error) {
		resp, err = c.Inspect(ctx, &eddyv1.InspectRequest{Model: a.model, Version: *version, TopK: uint32(*top)})
		return err
	})
	if err != nil {
		return err
	}
	writeResponse(env.stdout, *asJSON, resp, func(w io.Writer) { printInspection(w, resp) })
	return nil
}

// printInspection writes resp as a summary, the configuration and tables.
func printInspection(w io.Writer, r *eddyv1.InspectResponse) {
	num := func(x float64) string { return strconv.FormatFloat(x, 'g', 6, 64) }
	what := fmt.Sprintf("snapshot version %d (%s", r.GetVersion(), r.GetReason())
	if r.Created != nil {
		what += ", " + r.GetCreated().AsTime().Format("2006-01-02 15:04:05Z07:00")
	}
	what += ")"
	if r.GetLive() {
		what = fmt.Sprintf("as of its last checkpoint (newest snapshot: version %d)", r.GetVersion())
	}
	fmt.Fprintf(w, "model %s (%s), %s: learned %d examples\n", r.GetModel(), r.GetTask(), what, r.GetLearned())
	var metrics []string
	for _, k := range []string{"n", "accuracy", "log_loss", "mae", "rmse", "rolling"} {
		if v, ok := r.GetMetrics()[k]; ok {
			metrics = append(metrics, k+" "+num(v))
		}
	}
	fmt.Fprintf(w, "prequential metrics: %s\n", strings.Join(metrics, ", "))
	intercepts := make([]string, len(r.GetIntercepts()))
	for i, b := range r.GetIntercepts() {
		intercepts[i] = num(b)
		if len(r.GetClasses()) > i {
			intercepts[i] = fmt.Sprintf("class %d: %s", r.GetClasses()[i], intercepts[i])
		}
	}
	fmt.Fprintf(w, "intercept: %s\n", strings.Join(intercepts, ", "))
	fmt.Fprintf(w, "weights: %d non-zero, %d of them hashed (categories, interactions); %d hashed buckets named (limit %d)\n",
		r.GetNonzeroWeights(), r.GetNonzeroHashedWeights(), r.GetBucketNames(), r.GetBucketNamesLimit())
	if len(r.GetTopWeights()) > 0 {
		fmt.Fprintf(w, "\nlargest %d weights:\n", len(r.GetTopWeights()))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tCLASS\tWEIGHT\tBUCKET")
		for _, nw := range r.GetTopWeights() {
			bucket := ""
			if nw.Bucket != nil {
				bucket = strconv.FormatUint(nw.GetBucket(), 10)
				if nw.GetSharedBucket() {
					bucket += " (shared with another feature)"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\n", nw.GetName(), nw.GetKind(), nw.GetClass(), num(nw.GetWeight()), bucket)
		}
		tw.Flush()
	}
	if len(r.GetNumeric()) > 0 {
		fmt.Fprintf(w, "\nnumeric features (%d), in slot order:\n", len(r.GetNumeric()))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCOUNT\tMEAN\tSTD\tWEIGHT")
		for _, f := range r.GetNumeric() {
			weights := make([]string, len(f.GetWeights()))
			for i, x := range f.GetWeights() {
				weights[i] = num(x)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.GetName(), num(f.GetCount()), num(f.GetMean()), num(f.GetStd()), strings.Join(weights, " "))
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nconfiguration:\n%s", indent(r.GetConfigYaml()))
}

func indent(s string) string {
	lines := strings.SplitAfter(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "") + "\n"
}

const auditUsage = `audit --model NAME [--limit N] [flags]

Lists the operator actions on a model (promote, rollback, release, reset),
oldest first: when, who (the credential's name from serve --auth-file;
"anonymous" without access control), what was asked and what came of it
(ok, or why it was refused) and the version serving after it. The log is
kept with the model's state, moves with it between instances and
outlives a reset.
` + adminConnection

func runAudit(ctx context.Context, env *environment, args []string) error {
	fs, a := newAdminFlagSet(env, "audit", auditUsage)
	limit := fs.Uint("limit", 0, "show the newest N entries (0: all)")
	asJSON := fs.Bool("json", false, "print the response as JSON")
	if err := a.parse(fs, env, args); err != nil {
		return helpOK(err)
	}
	var resp *eddyv1.ListAuditResponse
	err := a.call(ctx, "audit", func(ctx context.Context, c eddyv1.AdminClient) (err error) {
		resp, err = c.ListAudit(ctx, &eddyv1.ListAuditRequest{Model: a.model, Limit: uint32(*limit)})
		return err
	})
	if err != nil {
		return err
	}
	writeResponse(env.stdout, *asJSON, resp, func(w io.Writer) { printAudit(w, resp) })
	return nil
}

func printAudit(w io.Writer, r *eddyv1.ListAuditResponse) {
	if len(r.GetEntries()) == 0 {
		fmt.Fprintf(w, "model %s: no operator action recorded\n", r.GetModel())
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "#\tTIME (UTC)\tACTOR\tACTION\tVERSION\tRESULT\tSERVING")
	for _, e := range r.GetEntries() {
		version := ""
		if e.GetVersion() > 0 {
			version = strconv.FormatUint(e.GetVersion(), 10)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d\n", e.GetSequence(), e.GetTime().AsTime().UTC().Format("2006-01-02 15:04:05.000"),
			e.GetActor(), e.GetAction(), version, e.GetResult(), e.GetServing())
	}
	tw.Flush()
}
