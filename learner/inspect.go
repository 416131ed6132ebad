package learner

import (
	"cmp"
	"container/heap"
	"fmt"
	"math"
	"slices"
	"time"
)

// DefaultInspectTop is how many of its largest weights Inspect lists by
// default.
const DefaultInspectTop = 20

// Inspection describes what a model has learned, as of one snapshot.
type Inspection struct {
	Model   string
	Task    Task
	Version uint64
	Created time.Time
	Reason  string
	Learned uint64
	Metrics Metrics
	Config  ModelConfig
	// Classes (Multiclass) labels each output; Intercepts has one per
	// output.
	Classes    []int
	Intercepts []float64
	// Numeric lists every numeric feature with a slot, in slot order.
	Numeric []NumericFeature
	// Top lists the largest weights by magnitude over every output.
	Top []NamedWeight
	// NonZero counts the non-zero weights (every output), NonZeroHashed
	// those of hashed buckets.
	NonZero, NonZeroHashed int
	// BucketNames is how many hashed buckets have a readable name, of at
	// most BucketNamesLimit (0: names are kept off).
	BucketNames, BucketNamesLimit int
}

// NumericFeature is one numeric feature's scaler statistics and weights.
type NumericFeature struct {
	Name      string
	Count     float64
	Mean, Std float64
	Weights   []float64 // one per output
}

// NamedWeight is one weight by its readable name.
type NamedWeight struct {
	// Name is the feature's ("amount", "country=DE", "age × country=DE"),
	// or "bucket N" for a hashed bucket without a readable name.
	Name string
	// Kind is "number", "category", "interaction", or "" when unnamed.
	Kind  string
	Index int
	// Bucket is the hashed bucket (-1 for a numeric slot); Shared, that
	// another feature's hash has fallen in it too.
	Bucket int
	Shared bool
	// Class is the output's: its class (Multiclass), 1 (Binary), 0
	// (Regression).
	Class  int
	Weight float64
}

// Inspect describes s, listing its top largest weights (0:
// DefaultInspectTop). It reads every weight once. Safe for concurrent use.
// Hashed buckets are named for a snapshot decoded from the store
// (DecodeStoredSnapshot); one taken by Model.Snapshot carries no names (a
// copy at every promotion would cost for nothing: serving never inspects),
// and Model.Inspect names them.
func (s *Snapshot) Inspect(top int) Inspection {
	if top <= 0 {
		top = DefaultInspectTop
	}
	in := Inspection{Model: s.model, Task: s.task, Version: s.version, Created: s.created, Reason: s.reason, Learned: s.learned,
		Metrics: s.metrics, Config: s.cfg, Classes: slices.Clone(s.classes), BucketNames: s.names.len()}
	if s.names != nil {
		in.BucketNamesLimit = s.names.limit
	}
	for _, o := range s.lin.out {
		in.Intercepts = append(in.Intercepts, o.intercept)
	}
	for slot, name := range s.tr.NumericNames() {
		count, mean, variance, _ := s.tr.Stats(name)
		f := NumericFeature{Name: name, Count: count, Mean: mean, Std: math.Sqrt(variance)}
		for k := range s.lin.out {
			f.Weights = append(f.Weights, s.lin.weight(&s.lin.out[k], slot))
		}
		in.Numeric = append(in.Numeric, f)
	}
	h := &weightHeap{}
	for k, o := range s.lin.out {
		for i, w := range o.p { // a snapshot's weights have stride 1
			if w == 0 {
				continue
			}
			in.NonZero++
			if s.tr.IsHashed(i) {
				in.NonZeroHashed++
			}
			if h.Len() < top {
				heap.Push(h, rankedWeight{i, k, w})
			} else if math.Abs(w) > math.Abs((*h)[0].w) {
				(*h)[0] = rankedWeight{i, k, w}
				heap.Fix(h, 0)
			}
		}
	}
	ranked := []rankedWeight(*h)
	slices.SortFunc(ranked, func(a, b rankedWeight) int {
		if c := cmp.Compare(math.Abs(b.w), math.Abs(a.w)); c != 0 {
			return c
		}
		return cmp.Compare(a.idx, b.idx)
	})
	for _, r := range ranked {
		in.Top = append(in.Top, s.namedWeight(r))
	}
	return in
}

func (s *Snapshot) namedWeight(r rankedWeight) NamedWeight {
	nw := NamedWeight{Index: r.idx, Bucket: -1, Weight: r.w}
	switch s.task {
	case Binary:
		nw.Class = 1
	case Multiclass:
		nw.Class = s.classes[r.out]
	}
	if !s.tr.IsHashed(r.idx) {
		if names := s.tr.NumericNames(); r.idx < len(names) {
			nw.Name = names[r.idx]
		}
		nw.Kind = "number"
		return nw
	}
	nw.Bucket = r.idx - s.tr.Config().MaxNumeric
	e, ok := s.names.lookup(r.idx)
	if !ok {
		nw.Name = fmt.Sprintf("bucket %d", nw.Bucket)
		return nw
	}
	nw.Name, nw.Shared, nw.Kind = e.name, e.shared, "category"
	if e.cross {
		nw.Kind = "interaction"
	}
	return nw
}

type rankedWeight struct {
	idx, out int
	w        float64
}

// weightHeap is a min-heap by |w|: its root is the smallest weight kept.
type weightHeap []rankedWeight

func (h weightHeap) Len() int { return len(h) }
func (h weightHeap) Less(i, j int) bool {
	return math.Abs(h[i].w) < math.Abs(h[j].w)
}
func (h weightHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *weightHeap) Push(x any)   { *h = append(*h, x.(rankedWeight)) }
func (h *weightHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// DecodeStoredSnapshot decodes a snapshot that Model.AppendSnapshot
// stored, for a model configured as cfg, without a live model: it scores
// without history features (for Inspect and tools, not for serving).
func DecodeStoredSnapshot(cfg ModelConfig, data []byte) (*Snapshot, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return decodeSnapshot(cfg, DefaultRollingWindow, data)
}

// Inspect describes the live model m as a snapshot of it would: what
// the model has learned up to now. One goroutine at a time (m's).
func (m *Model) Inspect(top int) Inspection {
	s := newSnapshot(m, snapshotMeta{})
	s.names = m.names // read here and now, on m's goroutine: no copy
	return s.Inspect(top)
}
