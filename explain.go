package eddy

import (
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// servedSnapshot is a learner snapshot as serving answers with it: Score,
// the schema's checks and explanations (serving.Explainer).
type servedSnapshot struct{ *learner.Snapshot }

func (s servedSnapshot) ExplainScore(key []byte, fields []features.Field, topK int, allClasses bool) (float64, int32, *eddyv1.Explanation, []features.Violation, error) {
	e, viol, err := s.Explain(key, fields, learner.ExplainOptions{TopK: topK, AllClasses: allClasses})
	if err != nil {
		return 0, 0, nil, viol, err
	}
	return e.Score, e.Label, ExplanationProto(e), viol, nil
}

// ExplanationProto is the wire form of a learner explanation, as Predict
// answers it (and `eddy evaluate --explain-row` prints it).
func ExplanationProto(e learner.Explanation) *eddyv1.Explanation {
	out := &eddyv1.Explanation{Link: e.Link, Class: int64(e.Class), Intercept: e.Intercept, Margin: e.Margin,
		Omitted: uint32(e.Omitted), OmittedContribution: e.OmittedContribution, Unused: e.Unused}
	for _, c := range e.Terms {
		t := &eddyv1.ExplainedTerm{Name: c.Name, Kind: c.Kind.String(), Derived: c.Derived, RawValue: c.Raw, Text: c.Text, Value: c.Value,
			Scaled: c.Scaled, Weight: c.Weight, ClassWeights: c.ClassWeights, Contribution: c.Contribution, Index: uint64(c.Index), SharedBucket: c.Shared}
		if c.Kind == features.TermNumber || c.Kind == features.TermBoolean {
			t.Mean, t.Std = ptr(c.Mean), ptr(c.Std)
		}
		if c.HasBaseline {
			t.BaselineContribution = ptr(c.Baseline)
		}
		if c.Bucket >= 0 {
			b := uint64(c.Bucket)
			t.Bucket = &b
		}
		out.Terms = append(out.Terms, t)
	}
	for _, c := range e.Classes {
		out.Classes = append(out.Classes, &eddyv1.ClassMargin{Class: int64(c.Class), Intercept: c.Intercept, Margin: c.Margin, Probability: c.Probability})
	}
	return out
}

func ptr(x float64) *float64 { return &x }

// inspectionProto is the Inspect RPC's answer for in; live marks the model
// as of its last checkpoint rather than a stored snapshot.
func inspectionProto(in learner.Inspection, live bool) *eddyv1.InspectResponse {
	cfg, err := yaml.Marshal(in.Config)
	if err != nil {
		cfg = []byte("# the configuration cannot be shown as YAML: " + err.Error())
	}
	out := &eddyv1.InspectResponse{Model: in.Model, Task: string(in.Task), Version: in.Version, Live: live, Reason: in.Reason,
		Learned: in.Learned, Metrics: metricsMap(in.Metrics), ConfigYaml: string(cfg), Intercepts: in.Intercepts,
		NonzeroWeights: uint64(in.NonZero), NonzeroHashedWeights: uint64(in.NonZeroHashed),
		BucketNames: uint64(in.BucketNames), BucketNamesLimit: uint64(in.BucketNamesLimit)}
	if !in.Created.IsZero() {
		out.Created = timestamppb.New(in.Created)
	}
	for _, c := range in.Classes {
		out.Classes = append(out.Classes, int64(c))
	}
	for _, f := range in.Numeric {
		out.Numeric = append(out.Numeric, &eddyv1.NumericFeature{Name: f.Name, Count: f.Count, Mean: f.Mean, Std: f.Std, Weights: f.Weights})
	}
	for _, w := range in.Top {
		nw := &eddyv1.NamedWeight{Name: w.Name, Kind: w.Kind, Index: uint64(w.Index), Class: int64(w.Class), Weight: w.Weight, SharedBucket: w.Shared}
		if w.Bucket >= 0 {
			b := uint64(w.Bucket)
			nw.Bucket = &b
		}
		out.TopWeights = append(out.TopWeights, nw)
	}
	return out
}

// metricsMap is a model's prequential metrics by name, as ListSnapshots
// and Inspect show them.
func metricsMap(m learner.Metrics) map[string]float64 {
	out := map[string]float64{"n": float64(m.N), "rolling": m.Rolling}
	if m.MAE != 0 || m.RMSE != 0 {
		out["mae"], out["rmse"] = m.MAE, m.RMSE
	} else {
		out["accuracy"], out["log_loss"] = m.Accuracy, m.LogLoss
	}
	return out
}
