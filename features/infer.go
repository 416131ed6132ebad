package features

import (
	"encoding/json"
	"fmt"
	"maps"
)

// Inference learns the features of a schema from the first events a model
// sees (Schema.Infer): each undeclared feature is declared with the kind it
// came as most often (number, category or boolean; a tie goes to
// category). Inferred features are never required and have no range: an
// event may lack one, and later values may go beyond the first ones. When
// the events are counted the schema is frozen: from then on it is checked
// like a declared one, and new_features applies to every name it lacks.
type Inference struct {
	Want  int               `json:"want"`  // events to learn from
	Seen  int               `json:"seen"`  // events learned from so far
	Kinds map[string][3]int `json:"kinds"` // per feature: times seen as a number, a category, a boolean
}

// NewInference returns an Inference over the first n events.
func NewInference(n int) *Inference {
	return &Inference{Want: n, Kinds: make(map[string][3]int)}
}

// Done reports whether every event to learn from has been seen.
func (in *Inference) Done() bool { return in.Seen >= in.Want }

// Observe counts the kinds of an event's fields and reports whether the
// inference is done. It allocates only for a name not seen before.
func (in *Inference) Observe(fields []Field) bool {
	if in.Done() {
		return true
	}
	for i := range fields {
		f := &fields[i]
		k := 0
		switch f.Kind {
		case String:
			k = 1
		case Bool:
			k = 2
		}
		c := in.Kinds[string(f.Name)]
		c[k]++
		in.Kinds[string(f.Name)] = c
	}
	in.Seen++
	return in.Done()
}

// Schema returns base with the inferred features added (a feature base
// declares keeps its declaration) and Infer cleared: the frozen schema.
func (in *Inference) Schema(base Schema) Schema {
	s := base
	s.Infer = 0
	s.Features = maps.Clone(base.Features)
	if s.Features == nil {
		s.Features = make(map[string]FeatureSpec)
	}
	for name, c := range in.Kinds {
		if _, declared := s.Features[name]; declared {
			continue
		}
		kind := KindCategory
		switch {
		case c[0] > c[1] && c[0] >= c[2]:
			kind = KindNumber
		case c[2] > c[1] && c[2] > c[0]:
			kind = KindBoolean
		}
		s.Features[name] = FeatureSpec{Kind: kind}
	}
	return s
}

// MarshalState and UnmarshalInference store an Inference (JSON: it is
// written at checkpoints, not per event).
func (in *Inference) MarshalState() ([]byte, error) { return json.Marshal(in) }

// UnmarshalInference decodes what MarshalState wrote.
func UnmarshalInference(data []byte) (*Inference, error) {
	in := &Inference{}
	if err := json.Unmarshal(data, in); err != nil {
		return nil, fmt.Errorf("features: schema inference state: %w", err)
	}
	if in.Kinds == nil {
		in.Kinds = make(map[string][3]int)
	}
	return in, nil
}
