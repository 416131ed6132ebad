package learner

import (
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/eddyhq/eddy/drift"
	"github.com/eddyhq/eddy/features"
)

// Skew measures training/serving skew: for each watched feature
// (ModelConfig.FeatureDrift), the Jensen–Shannon distance between the
// distribution of its values in the newest events the model learns from
// and in the newest prediction requests it answers. A number's bins are
// the quantiles of the first values learned (plus one below and one above
// their range); a category's are the 20 most frequent of the first values
// learned, one for the others and one for values never learned. It is safe for concurrent use: the learning goroutine
// feeds training values, any number of Predict calls feed serving values.
// It is not stored: after a restart both windows fill again.
type Skew struct {
	mu       sync.Mutex
	names    []string       // numeric features, then categorical ones
	index    map[string]int // numeric feature → index
	catIndex map[string]int // categorical feature → index (in names and features)
	features []skewFeature
	ref, win int
}

type skewFeature struct {
	ref          []float64 // the first training values, until the bins are built
	edges        []float64
	lo, hi       float64
	cats         map[string]int   // categorical: the first training values' counts, until the buckets are built
	catN         int              // values counted in cats
	buckets      map[string]uint8 // categorical: a value's bucket once built (others: top+1)
	train, serve drift.BinWindow
}

const skewBins = 10

// newSkew returns the Skew of the watched features of cfg, nil without
// feature drift.
func newSkew(cfg ModelConfig) *Skew {
	names, cats := cfg.WatchedFeatures(), cfg.WatchedCategories()
	if len(names)+len(cats) == 0 {
		return nil
	}
	fd := cfg.FeatureDrift
	s := &Skew{names: append(slices.Clone(names), cats...), index: make(map[string]int, len(names)), catIndex: make(map[string]int, len(cats)),
		ref: fd.Reference, win: fd.Window}
	if s.ref == 0 {
		s.ref = 1000
	}
	if s.win == 0 {
		s.win = 500
	}
	s.features = make([]skewFeature, len(s.names))
	for i, n := range s.names {
		if i < len(names) {
			s.index[n] = i
		} else {
			s.catIndex[n] = i
			s.features[i].cats = make(map[string]int)
		}
		s.features[i].train = drift.NewBinWindow(skewBins + 2)
		s.features[i].serve = drift.NewBinWindow(skewBins + 2)
	}
	return s
}

// observe feeds the watched numbers of raw and the watched categories of
// checked (after the schema, which makes declared categories of numbers)
// as training (or serving) values.
func (s *Skew) observe(raw, checked []features.Field, training bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.catIndex) > 0 {
		for i := range checked {
			if f := &checked[i]; f.Kind == features.String {
				if j, ok := s.catIndex[string(f.Name)]; ok {
					s.features[j].observeCategory(f.Str, training, s.ref, s.win)
				}
			}
		}
	}
	for i := range raw {
		f := &raw[i]
		if f.Kind != features.Number || math.IsNaN(f.Num) {
			continue
		}
		j, ok := s.index[string(f.Name)]
		if !ok {
			continue
		}
		sf := &s.features[j]
		if sf.edges == nil {
			if training {
				sf.ref = append(sf.ref, f.Num)
				if len(sf.ref) == s.ref {
					sf.build()
				}
			}
			continue
		}
		bin := sf.bin(f.Num)
		if training {
			sf.train.Add(bin, s.win)
		} else {
			sf.serve.Add(bin, s.win)
		}
	}
}

// observeCategory feeds one categorical value.
func (sf *skewFeature) observeCategory(v []byte, training bool, ref, win int) {
	if sf.buckets == nil {
		if !training {
			return
		}
		if c, ok := sf.cats[string(v)]; ok {
			sf.cats[string(v)] = c + 1
		} else if len(sf.cats) < 1000 {
			sf.cats[string(v)] = 1
		}
		if sf.catN++; sf.catN == ref {
			sf.buildCategories()
		}
		return
	}
	bucket, ok := sf.buckets[string(v)]
	if !ok {
		bucket = skewBins + 1
	}
	if training {
		sf.train.Add(bucket, win)
	} else {
		sf.serve.Add(bucket, win)
	}
}

// buildCategories makes buckets of the reference's values: the skewBins
// most frequent each have one, the others share one.
func (sf *skewFeature) buildCategories() {
	values := drift.TopValues(sf.cats)
	sf.buckets = make(map[string]uint8, len(values))
	for i, v := range values {
		sf.buckets[v] = uint8(min(i, skewBins))
	}
	sf.cats = nil
}

func (sf *skewFeature) build() {
	sorted := slices.Clone(sf.ref)
	slices.Sort(sorted)
	sf.lo, sf.hi = sorted[0], sorted[len(sorted)-1]
	sf.edges = make([]float64, skewBins-1)
	for i := 1; i < skewBins; i++ {
		sf.edges[i-1] = sorted[i*len(sorted)/skewBins]
	}
	sf.ref = nil
}

func (sf *skewFeature) bin(x float64) uint8 {
	switch {
	case x < sf.lo:
		return 0
	case x > sf.hi:
		return skewBins + 1
	}
	return uint8(1 + sort.SearchFloat64s(sf.edges, x))
}

// SkewDistance is the skew of one feature.
type SkewDistance struct {
	Feature  string
	Distance float64 // Jensen–Shannon distance, 0-1, between the training and the serving window
	Serving  int     // values in the serving window (0: no prediction request carried it yet)
}

// Distances returns the skew of each watched feature that has both
// training and serving values.
func (s *Skew) Distances() []SkewDistance {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SkewDistance
	for i := range s.features {
		sf := &s.features[i]
		if sf.train.Len() == 0 || sf.serve.Len() == 0 {
			continue
		}
		out = append(out, SkewDistance{Feature: s.names[i], Distance: drift.JSDistanceOfWindows(&sf.train, &sf.serve), Serving: sf.serve.Len()})
	}
	return out
}

// Skew returns the model's training/serving skew (nil without feature
// drift). Snapshots share it with the live model: Score feeds the
// serving side.
func (m *Model) Skew() *Skew { return m.skew }
