package features

import "math"

// TermKind is what an entry of a transformed vector is made of.
type TermKind uint8

const (
	// TermNumber is a numeric field in its slot, scaled.
	TermNumber TermKind = iota
	// TermBoolean is a boolean field (0 or 1) in its slot, scaled.
	TermBoolean
	// TermCategory is name=value hashed, with value 1.
	TermCategory
	// TermInteraction is the product of two entries of crossed namespaces,
	// hashed.
	TermInteraction
)

// String returns "number", "boolean", "category" or "interaction".
func (k TermKind) String() string {
	switch k {
	case TermBoolean:
		return "boolean"
	case TermCategory:
		return "category"
	case TermInteraction:
		return "interaction"
	}
	return "number"
}

// Term describes one entry of a Vector that Transform wrote with tracing
// on: the feature it is, the index its weight has and the values Transform
// computed.
type Term struct {
	Kind TermKind
	// Name is readable: "amount", "country=DE", "age × country=DE".
	Name string
	// Field is the index in fields of the field it came from; -1 for an
	// interaction, whose factors are the terms A and B.
	Field, A, B int
	// Index is the weight's index; Bucket, for hashed terms, is Index minus
	// the numeric slots (-1 for numeric slots).
	Index, Bucket int
	// Hash is the full hash of a hashed term (0 for numeric slots): two
	// terms in one bucket with different hashes are a collision.
	Hash uint64
	// Raw is the value before scaling (1 for a category), Value the value
	// the model multiplies by its weight.
	Raw, Value float64
	// Numeric terms: the running mean and standard deviation of the field
	// as learned; when Scaled, the scaler used them (Value = (Raw - Mean) /
	// Std, or 0 while Std is 0), else Value is Raw.
	Scaled    bool
	Mean, Std float64
	// Shared is set when another term of the same vector has the same
	// Index: their weights are one.
	Shared bool
}

// Terms describes each entry of v, which Transform(fields, v) wrote with
// v.Trace() on, in v's order. It allocates: it is for explanations, not
// the hot path. It returns nil for a vector written without tracing.
func (t *Transformer) Terms(fields []Field, v *Vector) []Term {
	if len(v.src) != len(v.Index) {
		return nil
	}
	terms := make([]Term, len(v.Index))
	seen := make(map[int]int, len(v.Index))
	for i, idx := range v.Index {
		src := v.src[i]
		term := Term{Index: idx, Bucket: -1, Hash: v.hash[i], Raw: v.raw[i], Value: v.Value[i], Field: int(src[0]), A: -1, B: -1}
		if idx >= t.cfg.MaxNumeric {
			term.Bucket = idx - t.cfg.MaxNumeric
		}
		term.Name = TermName(fields, v, i)
		switch {
		case src[1] >= 0:
			term.Kind, term.Field, term.A, term.B = TermInteraction, -1, int(src[0]), int(src[1])
		case fields[src[0]].Kind == String:
			term.Kind = TermCategory
		default:
			f := &fields[src[0]]
			term.Kind = TermNumber
			if f.Kind == Bool {
				term.Kind = TermBoolean
			}
			term.Scaled = t.cfg.Scaler != ScalerNone
			term.Mean, term.Std = t.mean[idx], math.Sqrt(t.vars[idx])
		}
		if j, ok := seen[idx]; ok {
			term.Shared, terms[j].Shared = true, true
		} else {
			seen[idx] = i
		}
		terms[i] = term
	}
	return terms
}

// TracedHash returns the full hash of entry i of v, written by Transform
// with tracing on (0 for a numeric slot), and whether v was traced.
func (v *Vector) TracedHash(i int) (uint64, bool) {
	if len(v.hash) != len(v.Index) || i >= len(v.hash) {
		return 0, false
	}
	return v.hash[i], true
}

// TermName returns the readable name of entry i of v, which
// Transform(fields, v) wrote with tracing on: a numeric field's name,
// "name=value" for a category, "a × b" for an interaction (a numeric
// factor by its name: its bucket holds every value). It returns "" for a
// vector written without tracing.
func TermName(fields []Field, v *Vector, i int) string {
	if len(v.src) != len(v.Index) || i >= len(v.src) {
		return ""
	}
	src := v.src[i]
	if src[1] >= 0 {
		return TermName(fields, v, int(src[0])) + " × " + TermName(fields, v, int(src[1]))
	}
	f := &fields[src[0]]
	if f.Kind == String {
		return string(f.Name) + "=" + string(f.Str)
	}
	return string(f.Name)
}

// IsHashed reports whether weight index i is in the hashed space (a
// category or an interaction), not a numeric slot.
func (t *Transformer) IsHashed(i int) bool { return i >= t.cfg.MaxNumeric }

// IsInteraction reports whether entry i of a traced v is an interaction.
func (v *Vector) IsInteraction(i int) bool { return i < len(v.src) && v.src[i][1] >= 0 }
