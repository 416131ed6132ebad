package features

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Schema declares a model's features: each one's kind, whether every event
// must carry it, and for numbers the range it must lie in; and what happens
// to an event or a prediction request that does not match. The zero value
// (no features) checks nothing. In a model configuration it is the
// "schema:" section.
type Schema struct {
	// Features are the declared features by name.
	Features map[string]FeatureSpec `yaml:"features"`
	// NewFeatures is what a feature the schema does not declare gets:
	// accept (the default: it is learned as today), ignore (dropped from
	// the event) or dead_letter (the event goes to the dead-letter topic).
	// Either way it is reported (counted at ingest, a warning at Predict).
	NewFeatures string `yaml:"new_features"`
	// OnViolation is what an event that breaks a declared feature (wrong
	// kind, missing when required, out of range) gets: dead_letter (the
	// default), ignore_feature (learned without that feature) or accept
	// (learned as it came; counted all the same).
	OnViolation string `yaml:"on_violation"`
	// Infer, if positive, learns the kinds of the features the schema does
	// not declare from the model's first Infer events, then freezes the
	// schema (see Inference). Until then every event is accepted (declared
	// features are checked).
	Infer int `yaml:"infer"`
	// Strict makes Predict answer INVALID_ARGUMENT, naming each feature,
	// for a request that breaks the schema; by default it answers with a
	// warning per feature.
	Strict bool `yaml:"strict"`
}

// FeatureSpec declares one feature.
type FeatureSpec struct {
	// Kind is number, category or boolean. A category may arrive as a
	// number (an id, a zip code): it is then the category named by the
	// number's text, never a scaled number.
	Kind string `yaml:"kind"`
	// Required: every event must carry the feature.
	Required bool `yaml:"required"`
	// Min and Max bound a number (inclusive); unset means unbounded.
	Min *float64 `yaml:"min"`
	Max *float64 `yaml:"max"`
	// Missing is what a number that an event lacks becomes (after the
	// violation of a required one is handled): skip (the default: it is
	// left out, which with the standard scaler weighs as its mean does),
	// zero, or mean (the model's running mean of the feature).
	Missing string `yaml:"missing"`
	// Indicator adds the boolean feature NAME_missing, true when the
	// feature is missing, so that the model can learn what absence means.
	Indicator bool `yaml:"indicator"`
}

// Feature kinds of a FeatureSpec.
const (
	KindNumber   = "number"
	KindCategory = "category"
	KindBoolean  = "boolean"
)

// Policies of Schema.NewFeatures and Schema.OnViolation.
const (
	PolicyAccept        = "accept"
	PolicyIgnore        = "ignore"
	PolicyIgnoreFeature = "ignore_feature"
	PolicyDeadLetter    = "dead_letter"
)

// Missing policies of a FeatureSpec.
const (
	MissingSkip = "skip"
	MissingZero = "zero"
	MissingMean = "mean"
)

// Violation kinds.
const (
	ViolationUnknown    = "unknown_feature"
	ViolationWrongKind  = "wrong_kind"
	ViolationMissing    = "missing_required"
	ViolationOutOfRange = "out_of_range"
)

// Declared reports whether the schema declares any feature.
func (s *Schema) Declared() bool { return s != nil && len(s.Features) > 0 }

// maxInfer bounds Schema.Infer.
const maxInfer = 1 << 20

// Validate reports the first invalid setting.
func (s *Schema) Validate() error {
	if s == nil {
		return nil
	}
	if s.Infer < 0 || s.Infer > maxInfer {
		return fmt.Errorf("features: schema infer %d out of range [0, %d]", s.Infer, maxInfer)
	}
	switch s.NewFeatures {
	case "", PolicyAccept, PolicyIgnore, PolicyDeadLetter:
	default:
		return fmt.Errorf("features: schema new_features %q: want accept, ignore or dead_letter", s.NewFeatures)
	}
	switch s.OnViolation {
	case "", PolicyDeadLetter, PolicyIgnoreFeature, PolicyAccept:
	default:
		return fmt.Errorf("features: schema on_violation %q: want dead_letter, ignore_feature or accept", s.OnViolation)
	}
	for name, f := range s.Features {
		switch f.Kind {
		case KindNumber, KindCategory, KindBoolean:
		case "":
			return fmt.Errorf("features: schema feature %q has no kind (want number, category or boolean)", name)
		default:
			return fmt.Errorf("features: schema feature %q: kind %q: want number, category or boolean", name, f.Kind)
		}
		if (f.Min != nil || f.Max != nil) && f.Kind != KindNumber {
			return fmt.Errorf("features: schema feature %q: min and max apply to numbers only", name)
		}
		if f.Min != nil && f.Max != nil && *f.Min > *f.Max {
			return fmt.Errorf("features: schema feature %q: min %g above max %g", name, *f.Min, *f.Max)
		}
		switch f.Missing {
		case "", MissingSkip:
		case MissingZero, MissingMean:
			if f.Kind != KindNumber {
				return fmt.Errorf("features: schema feature %q: missing: %s applies to numbers only", name, f.Missing)
			}
		default:
			return fmt.Errorf("features: schema feature %q: missing %q: want skip, zero or mean", name, f.Missing)
		}
	}
	return nil
}

// Violation is one way a set of fields breaks a schema.
type Violation struct {
	Feature string // as it came, or the declared name for a missing one
	Kind    string // ViolationUnknown, ViolationWrongKind, ViolationMissing, ViolationOutOfRange
	// Declared says whether Feature is declared in the schema (metric
	// labels name declared features only).
	Declared bool
	Detail   string // in words, with "did you mean" for a near miss
}

func (v Violation) String() string { return v.Detail }

// Checker applies a Schema to fields. It reuses its buffers: one Checker
// per goroutine. Create it with NewChecker.
type Checker struct {
	s        Schema
	specs    map[string]int // name → index in names
	names    []string       // declared names, sorted
	specList []FeatureSpec
	required []int
	filled   []int    // features with a missing policy or an indicator
	nameOf   [][]byte // declared names as bytes, for imputed fields
	flagOf   [][]byte // NAME_missing, for indicators
	mean     func(name string) (float64, bool)

	seen []bool
	out  []Field
	buf  []byte
	viol []Violation
}

// NewChecker returns a Checker for s, which must be valid; nil for a schema
// that declares nothing (nothing to check).
func NewChecker(s *Schema) *Checker {
	if !s.Declared() {
		return nil
	}
	c := &Checker{s: *s, specs: make(map[string]int, len(s.Features))}
	for name := range s.Features {
		c.names = append(c.names, name)
	}
	sort.Strings(c.names)
	for i, name := range c.names {
		spec := s.Features[name]
		c.specs[name] = i
		c.specList = append(c.specList, spec)
		if spec.Required {
			c.required = append(c.required, i)
		}
		if spec.Missing == MissingZero || spec.Missing == MissingMean || spec.Indicator {
			c.filled = append(c.filled, i)
		}
		c.nameOf = append(c.nameOf, []byte(name))
		c.flagOf = append(c.flagOf, []byte(name+"_missing"))
	}
	c.seen = make([]bool, len(c.names))
	return c
}

// SetMean gives the Checker the running mean of a numeric feature, for
// missing: mean (without one, or for a feature never seen, mean is zero).
func (c *Checker) SetMean(mean func(name string) (float64, bool)) { c.mean = mean }

// Schema returns the schema the Checker applies.
func (c *Checker) Schema() Schema { return c.s }

// Check applies the schema to fields and returns the fields to use (valid
// until the next Check: declared categories that came as numbers become
// their text, dropped features are left out) and every violation found.
// reject reports whether the event must be dead-lettered (a violation whose
// policy is dead_letter). It allocates nothing once its buffers have grown
// to the sizes seen, as long as there is no violation (an undeclared
// feature is one).
func (c *Checker) Check(fields []Field) (out []Field, violations []Violation, reject bool) {
	c.out, c.buf, c.viol = c.out[:0], c.buf[:0], c.viol[:0]
	clear(c.seen)
	onViolation := c.s.OnViolation
	if onViolation == "" {
		onViolation = PolicyDeadLetter
	}
	// Numbers declared categories are written as text to buf; a field
	// keeps pointing at its text when buf grows (the old array stays).
	for i := range fields {
		f := fields[i]
		j, declared := c.specs[string(f.Name)]
		if !declared {
			// Reported whatever the policy: a misspelling is worth a
			// warning even where new features are welcome.
			c.violate(ViolationUnknown, string(f.Name), false, unknownDetail(string(f.Name), c.names))
			switch c.s.NewFeatures {
			case PolicyIgnore:
				continue
			case PolicyDeadLetter:
				reject = true
				continue
			}
			c.out = append(c.out, f)
			continue
		}
		c.seen[j] = true
		spec := c.specList[j]
		ok := true
		switch spec.Kind {
		case KindCategory:
			switch f.Kind {
			case Number:
				start := len(c.buf)
				c.buf = strconv.AppendFloat(c.buf, f.Num, 'f', -1, 64)
				f = Field{Name: f.Name, Kind: String, Str: c.buf[start:len(c.buf):len(c.buf)]}
			case Bool:
				f = Field{Name: f.Name, Kind: String, Str: boolText(f.Num)}
			}
		case KindNumber:
			if f.Kind != Number {
				ok = false
				c.violate(ViolationWrongKind, string(f.Name), true, fmt.Sprintf("feature %q is declared a number but came as %s", f.Name, describe(f)))
			} else if spec.Min != nil && f.Num < *spec.Min || spec.Max != nil && f.Num > *spec.Max || math.IsNaN(f.Num) {
				ok = false
				c.violate(ViolationOutOfRange, string(f.Name), true, fmt.Sprintf("feature %q = %g is outside its declared range %s", f.Name, f.Num, rangeText(spec)))
			}
		case KindBoolean:
			if f.Kind != Bool {
				ok = false
				c.violate(ViolationWrongKind, string(f.Name), true, fmt.Sprintf("feature %q is declared a boolean but came as %s", f.Name, describe(f)))
			}
		}
		if !ok {
			switch onViolation {
			case PolicyDeadLetter:
				reject = true
				continue
			case PolicyIgnoreFeature:
				continue
			}
		}
		c.out = append(c.out, f)
	}
	for _, j := range c.required {
		if !c.seen[j] {
			c.violate(ViolationMissing, c.names[j], true, fmt.Sprintf("required feature %q is missing", c.names[j]))
			if onViolation == PolicyDeadLetter {
				reject = true
			}
		}
	}
	for _, j := range c.filled {
		if c.seen[j] {
			continue
		}
		spec := c.specList[j]
		switch spec.Missing {
		case MissingZero:
			c.out = append(c.out, Field{Name: c.nameOf[j], Kind: Number})
		case MissingMean:
			var m float64
			if c.mean != nil {
				m, _ = c.mean(c.names[j])
			}
			c.out = append(c.out, Field{Name: c.nameOf[j], Kind: Number, Num: m})
		}
		if spec.Indicator {
			c.out = append(c.out, Field{Name: c.flagOf[j], Kind: Bool, Num: 1})
		}
	}
	return c.out, c.viol, reject
}

func (c *Checker) violate(kind, feature string, declared bool, detail string) {
	c.viol = append(c.viol, Violation{Feature: feature, Kind: kind, Declared: declared, Detail: detail})
}

func boolText(x float64) []byte {
	if x != 0 {
		return []byte("true")
	}
	return []byte("false")
}

func describe(f Field) string {
	switch f.Kind {
	case Number:
		return fmt.Sprintf("the number %g", f.Num)
	case String:
		return fmt.Sprintf("the string %q", f.Str)
	case Bool:
		return fmt.Sprintf("the boolean %s", boolText(f.Num))
	}
	return "an unknown kind"
}

func rangeText(s FeatureSpec) string {
	lo, hi := "-inf", "+inf"
	if s.Min != nil {
		lo = strconv.FormatFloat(*s.Min, 'g', -1, 64)
	}
	if s.Max != nil {
		hi = strconv.FormatFloat(*s.Max, 'g', -1, 64)
	}
	return "[" + lo + ", " + hi + "]"
}

// unknownDetail names an undeclared feature, with the declared one it
// most likely misspells.
func unknownDetail(name string, declared []string) string {
	if near := nearest(name, declared); near != "" {
		return fmt.Sprintf("feature %q is not in the schema (did you mean %q?)", name, near)
	}
	return fmt.Sprintf("feature %q is not in the schema", name)
}

// nearest returns the declared name closest to name: equal but for case,
// or within an edit distance of 2 (1 for names of up to 3 letters); "" if
// none is.
func nearest(name string, declared []string) string {
	best, bestDist := "", math.MaxInt
	for _, d := range declared {
		if strings.EqualFold(d, name) {
			return d
		}
		limit := 2
		if len(d) <= 3 {
			limit = 1
		}
		if dist := editDistance(name, d); dist <= limit && dist < bestDist {
			best, bestDist = d, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
