package learner

import (
	"encoding/json"
	"fmt"

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
