package learner

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/eddyhq/eddy/features/codec"
)

// DecodeSnapshotModel returns the live model a stored snapshot (as
// AppendSnapshot wrote it) was taken from: the snapshot stores the whole
// state, optimizer included, so the model can go on learning where it was
// when the snapshot was taken. cfg is the configuration of the model that
// took it; the model has no history (an entity's history is data, not
// model, and a snapshot does not carry it).
func DecodeSnapshotModel(cfg ModelConfig, rollingWindow int, data []byte) (*Model, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if rollingWindow == 0 {
		rollingWindow = DefaultRollingWindow
	}
	r := codec.NewReader(data, ErrCorrupt)
	if v := r.Byte(); r.Err() == nil && v != 1 && v != 2 {
		return nil, fmt.Errorf("%w: unknown snapshot version %d", ErrCorrupt, v)
	}
	r.Varint() // created
	r.Bytes()  // reason
	if r.Err() != nil {
		return nil, r.Err()
	}
	m, _, err := decodeState(cfg, rollingWindow, r.Rest())
	return m, err
}

// StoredRollingWindow returns the number of examples the rolling metrics
// covered in the service that stored m's state (0: m was not decoded): a
// model must be decoded with it to go on exactly as it would have there.
func (m *Model) StoredRollingWindow() int { return m.eval.stored }

// SameState reports whether models of configurations a and b learn and
// predict alike from the same state, and if not, the first setting that
// differs: task, loss, optimizer, the feature pipeline, the schema and the
// bucket names kept. Name, topics, drift and promotion settings may
// differ.
func SameState(a, b ModelConfig) (string, bool) {
	a.EnsureDefaults()
	b.EnsureDefaults()
	for _, s := range []struct {
		what string
		x, y any
	}{
		{"task", a.Task, b.Task}, {"loss", a.Loss, b.Loss}, {"epsilon", a.Epsilon, b.Epsilon}, {"max_classes", a.MaxClasses, b.MaxClasses},
		{"optimizer", a.Optimizer, b.Optimizer}, {"features (scaler, hashing, namespaces, interactions, windows)", a.Features, b.Features},
		{"schema", a.Schema, b.Schema}, {"hash_names", a.hashNames(), b.hashNames()},
	} {
		x, errX := json.Marshal(s.x)
		y, errY := json.Marshal(s.y)
		if errX != nil || errY != nil || string(x) != string(y) {
			return fmt.Sprintf("%s: %s vs %s", s.what, x, y), false
		}
	}
	return "", true
}

// Seed replaces what m has learned with what from has: its features'
// state, weights, optimizer state, classes, prequential record, learned
// count and bucket names, which it takes over: from must not be used
// afterwards. m keeps its identity, snapshot version, per-entity history,
// schema in force and skew. from's configuration must have m's state
// (SameState).
func (m *Model) Seed(from *Model) error {
	if diff, same := SameState(m.cfg, from.cfg); !same {
		return fmt.Errorf("learner: model %s cannot be seeded by a model configured otherwise (%s)", m.cfg.Name, diff)
	}
	m.tr, m.lin, m.classes, m.eval, m.learned, m.names = from.tr, from.lin, from.classes, from.eval, from.learned, from.names
	m.storedMaxNumeric = from.storedMaxNumeric
	m.checker = newChecker(m.schema, m.tr)
	return nil
}

// StateDiff is how far two models' learned states are apart.
type StateDiff struct {
	Identical bool    // the encoded states (weights, optimizer, scaler, metrics, learned) are bitwise equal
	Weights   int     // weights compared: intercepts and coefficients of every output
	Differ    int     // of those, how many are not bitwise equal
	MaxAbs    float64 // largest |a - b| over the weights
	RelL2     float64 // ||a - b|| / ||b|| over the weights (0 when b is all zero)
}

// CompareState compares what m and o have learned (o is the reference).
// Their configurations must have the same state (SameState).
func (m *Model) CompareState(o *Model) StateDiff {
	d := StateDiff{Identical: bytes.Equal(m.AppendStateAs(nil, 0), o.AppendStateAs(nil, 0))}
	var diff2, norm2 float64
	add := func(a, b float64) {
		d.Weights++
		if math.Float64bits(a) != math.Float64bits(b) {
			d.Differ++
		}
		delta := a - b
		d.MaxAbs = max(d.MaxAbs, math.Abs(delta))
		diff2 += delta * delta
		norm2 += b * b
	}
	for k := range max(len(m.lin.out), len(o.lin.out)) {
		var a, b output
		if k < len(m.lin.out) {
			a = m.lin.out[k]
		}
		if k < len(o.lin.out) {
			b = o.lin.out[k]
		}
		add(a.intercept, b.intercept)
		for i := 0; i < max(len(a.p), len(b.p)); i += m.lin.stride {
			add(at(a.p, i), at(b.p, i))
		}
	}
	if norm2 > 0 {
		d.RelL2 = math.Sqrt(diff2 / norm2)
	}
	return d
}

func at(p []float64, i int) float64 {
	if i < len(p) {
		return p[i]
	}
	return 0
}
