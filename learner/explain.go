package learner

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/eddyhq/eddy/features"
)

// ExplainOptions shapes an Explanation.
type ExplainOptions struct {
	// TopK keeps the TopK terms of largest |contribution| (0: all); the
	// others are summed in OmittedContribution.
	TopK int
	// AllClasses gives, for a Multiclass model, every class's weight of
	// each term and every class's margin, not only the predicted class's.
	AllClasses bool
}

// Explanation is why a model predicted what it did for one event: the
// margin of the explained output is Intercept plus the sum of every term's
// Contribution (OmittedContribution holds those TopK left out), and the
// link of the margins is Score. Score and Label are bitwise those Score
// (or Predict) returns for the same event.
type Explanation struct {
	Task Task
	// Link maps margins to Score: "sigmoid" (Binary), "identity"
	// (Regression), "softmax" (Multiclass, over every class's margin).
	Link  string
	Score float64
	Label int32
	// Class is the label of the output explained: the predicted class
	// (Multiclass), 1 (Binary: the margin is the log-odds of label 1), 0
	// (Regression).
	Class     int
	Intercept float64
	Margin    float64
	// Terms, by |Contribution|, largest first.
	Terms               []Contribution
	Omitted             int
	OmittedContribution float64
	// Classes (Multiclass with AllClasses): each class's intercept, margin
	// and probability, in the order of ClassWeights.
	Classes []ClassMargin
	// Unused names the fields the model gave no weight: ignored fields and
	// numeric fields it never learned (no slot), which change nothing.
	Unused []string
}

// Contribution is one term of an explanation. Its Term's A and B (an
// interaction's factors) index the terms in Transform's order, not the
// sorted Terms of the Explanation: the Name names both factors.
type Contribution struct {
	features.Term
	// Derived marks a feature derived from the entity's history (window,
	// lag, target), not sent with the event.
	Derived bool
	// Text is a category's value.
	Text string
	// Weight is the explained output's weight of the term; ClassWeights
	// every class's (AllClasses).
	Weight       float64
	ClassWeights []float64
	// Contribution is Weight × Value.
	Contribution float64
	// Baseline (HasBaseline: numeric terms) is Weight × (Value − E[Value]),
	// SHAP's linear attribution against the learned mean: the contribution
	// itself for a standardised feature (its mean is 0), Weight × (Raw −
	// Mean) without scaling.
	Baseline    float64
	HasBaseline bool
}

// ClassMargin is one class's part of a Multiclass explanation.
type ClassMargin struct {
	Class       int
	Intercept   float64
	Margin      float64
	Probability float64
}

// Explain is Score with its explanation: checked and derived as Score
// does (the skew's serving side included), then explained. It allocates;
// safe for concurrent use.
func (s *Snapshot) Explain(key []byte, fields []features.Field, opts ExplainOptions) (Explanation, []features.Violation, error) {
	sc := s.scratchBuffers()
	defer s.scratch.Put(sc)
	raw := fields
	var viol []features.Violation
	if sc.checker != nil {
		fields, viol, _ = sc.checker.Check(fields)
	}
	if s.skew != nil {
		s.skew.observe(raw, fields, false)
	}
	sent := len(fields)
	if s.hist != nil {
		all := append([]features.Field(nil), fields...)
		entity := features.EntityKey(s.keyField, fields, key, nil)
		var err error
		if fields, err = s.hist.Derive(entity, s.hist.Now(), fields, all); err != nil {
			return Explanation{}, viol, err
		}
	}
	return explain(s.tr, s.lin, s.classes, s.task, fields, sent, opts), viol, nil
}

// ExplainEvent explains the prediction m makes, without learning, for an
// event of key at time at (what LearnEvent would predict before learning
// it): what `eddy evaluate --explain-row` shows. One goroutine at a time.
func (m *Model) ExplainEvent(key []byte, at time.Time, fields []features.Field, opts ExplainOptions) Explanation {
	if m.checker != nil {
		fields, _, _ = m.checker.Check(fields)
	}
	sent := len(fields)
	if m.hist != nil {
		fields, _ = m.Derive(m.EntityKey(key, fields), at, fields) // offline: no store to fail
	}
	return explain(m.tr, m.lin, m.classes, m.cfg.Task, fields, sent, opts)
}

// explain explains lin's prediction for fields, of which the first sent
// came with the event and the rest were derived.
func explain(tr *features.Transformer, lin *linear, classes []int, task Task, fields []features.Field, sent int, opts ExplainOptions) Explanation {
	var vec features.Vector
	vec.Trace()
	tr.Transform(fields, &vec)
	raw, probs := make([]float64, len(lin.out)), make([]float64, len(lin.out))
	score, k := lin.scores(&vec, raw, probs)
	e := Explanation{Task: task, Score: score, Label: int32(k)}
	switch task {
	case Binary:
		e.Link, e.Class = "sigmoid", 1
	case Regression:
		e.Link = "identity"
	case Multiclass:
		e.Link, e.Class = "softmax", -1
		if k >= 0 {
			e.Label, e.Class = int32(classes[k]), classes[k]
		}
	}
	used := make([]bool, len(fields))
	terms := tr.Terms(fields, &vec)
	for _, t := range terms {
		if t.Field >= 0 {
			used[t.Field] = true
		}
	}
	for i, f := range fields {
		if !used[i] {
			e.Unused = append(e.Unused, string(f.Name))
		}
	}
	if k < 0 { // a Multiclass model that knows no class yet
		return e
	}
	out := 0 // Binary and Regression: k is the label, the output is the only one
	if task == Multiclass {
		out = k
	}
	o := &lin.out[out]
	e.Intercept, e.Margin = o.intercept, raw[out]
	e.Terms = make([]Contribution, len(terms))
	for i, t := range terms {
		c := Contribution{Term: t, Weight: lin.weight(o, t.Index)}
		c.Contribution = c.Weight * t.Value
		if t.Field >= 0 {
			c.Derived = t.Field >= sent
			if t.Kind == features.TermCategory {
				c.Text = string(fields[t.Field].Str)
			}
		} else {
			c.Derived = e.Terms[t.A].Derived || e.Terms[t.B].Derived
		}
		if t.Kind == features.TermNumber || t.Kind == features.TermBoolean {
			c.HasBaseline = true
			c.Baseline = c.Contribution // a standardised value's mean is 0
			if !t.Scaled {
				c.Baseline = c.Weight * (t.Value - t.Mean)
			}
		}
		if opts.AllClasses && task == Multiclass {
			c.ClassWeights = make([]float64, len(lin.out))
			for j := range lin.out {
				c.ClassWeights[j] = lin.weight(&lin.out[j], t.Index)
			}
		}
		e.Terms[i] = c
	}
	if opts.AllClasses && task == Multiclass {
		for j := range lin.out {
			e.Classes = append(e.Classes, ClassMargin{Class: classes[j], Intercept: lin.out[j].intercept, Margin: raw[j], Probability: probs[j]})
		}
	}
	// Sort a permutation, not the terms: a Contribution is ~200 bytes.
	order := make([]int32, len(e.Terms))
	for i := range order {
		order[i] = int32(i)
	}
	slices.SortStableFunc(order, func(a, b int32) int {
		return cmp.Compare(math.Abs(e.Terms[b].Contribution), math.Abs(e.Terms[a].Contribution))
	})
	keep := len(order)
	if opts.TopK > 0 && keep > opts.TopK {
		keep = opts.TopK
		for _, i := range order[keep:] {
			e.OmittedContribution += e.Terms[i].Contribution
		}
		e.Omitted = len(order) - keep
	}
	sorted := make([]Contribution, keep)
	for j, i := range order[:keep] {
		sorted[j] = e.Terms[i]
	}
	e.Terms = sorted
	return e
}

// weight returns o's weight of index i: 0 beyond the coordinates o has
// grown to (as dot reads them).
func (l *linear) weight(o *output, i int) float64 {
	if j := i * l.stride; j < len(o.p) {
		return o.p[j]
	}
	return 0
}
