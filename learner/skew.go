package learner

import (
	"math"
	"slices"
	"sort"
	"sync"

	"github.com/eddyhq/eddy/features"
)

// Skew measures training/serving skew: for each watched numeric feature
// (ModelConfig.FeatureDrift), the Jensen–Shannon distance between the
// distribution of its values in the newest events the model learns from
// and in the newest prediction requests it answers. Bins are the
// quantiles of the first values learned (plus one below and one above
// their range). It is safe for concurrent use: the learning goroutine
// feeds training values, any number of Predict calls feed serving values.
// It is not stored: after a restart both windows fill again.
type Skew struct {
	mu       sync.Mutex
	names    []string
	index    map[string]int
	features []skewFeature
	ref, win int
}

type skewFeature struct {
	ref          []float64 // the first training values, until the bins are built
	edges        []float64
	lo, hi       float64
	train, serve skewWindow
}

type skewWindow struct {
	ring   []uint8
	head   int
	counts []int
}

func (w *skewWindow) add(bin uint8, size int) {
	if len(w.ring) < size {
		w.ring = append(w.ring, bin)
	} else {
		w.counts[w.ring[w.head]]--
		w.ring[w.head] = bin
		w.head = (w.head + 1) % size
	}
	w.counts[bin]++
}

const skewBins = 10

// newSkew returns the Skew of the watched features of cfg, nil without
// feature drift.
func newSkew(cfg ModelConfig) *Skew {
	names := cfg.WatchedFeatures()
	if len(names) == 0 {
		return nil
	}
	fd := cfg.FeatureDrift
	s := &Skew{names: names, index: make(map[string]int, len(names)), ref: fd.Reference, win: fd.Window}
	if s.ref == 0 {
		s.ref = 1000
	}
	if s.win == 0 {
		s.win = 500
	}
	s.features = make([]skewFeature, len(names))
	for i, n := range names {
		s.index[n] = i
		s.features[i].train.counts = make([]int, skewBins+2)
		s.features[i].serve.counts = make([]int, skewBins+2)
	}
	return s
}

// observe feeds the watched numbers of fields as training (or serving)
// values.
func (s *Skew) observe(fields []features.Field, training bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range fields {
		f := &fields[i]
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
			sf.train.add(bin, s.win)
		} else {
			sf.serve.add(bin, s.win)
		}
	}
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
	for i, sf := range s.features {
		nt, ns := len(sf.train.ring), len(sf.serve.ring)
		if nt == 0 || ns == 0 {
			continue
		}
		var d float64
		for b := range sf.train.counts {
			p, q := float64(sf.train.counts[b])/float64(nt), float64(sf.serve.counts[b])/float64(ns)
			m := (p + q) / 2
			if p > 0 {
				d += p * math.Log2(p/m)
			}
			if q > 0 {
				d += q * math.Log2(q/m)
			}
		}
		out = append(out, SkewDistance{Feature: s.names[i], Distance: math.Sqrt(max(d/2, 0)), Serving: ns})
	}
	return out
}

// Skew returns the model's training/serving skew (nil without feature
// drift). Snapshots share it with the live model: Score feeds the
// serving side.
func (m *Model) Skew() *Skew { return m.skew }
