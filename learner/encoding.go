package learner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/features/codec"
)

// ErrCorrupt is returned when stored state cannot be decoded.
var ErrCorrupt = errors.New("learner: corrupt state")

// stateVersion is the first byte of an encoded model state. Bump it when the
// layout changes and keep decoding the old layouts: version 1 (one output,
// plain SGD) and version 2 still load.
const stateVersion = 3

// AppendState appends the versioned binary encoding of m's state. Layout of
// version 3 (little endian; lengths and counters as uvarints; floats as 8
// bytes; "vector" = length, non-zero count, then (index delta, value) pairs):
//
//	version u8 | task string | loss string | optimizer kind string |
//	transformer (features encoding) | steps t | L1 total u |
//	Adam's beta1^t, beta2^t |
//	output count | classes (one uvarint per output, Multiclass) |
//	per output: intercept, w vector, s1 vector, s2 vector |
//	learned | snapshot version | metrics: n, correct, logLoss, absErr,
//	sqErr, window length, next, filled, windowSum, window values |
//	bucket names: floor of admission, count, per bucket index delta, hash
//	(8 bytes), flags, name
//
// Version 2 was version 3 without the bucket names. Version 1 was: version | task | transformer | intercept | w vector |
// learned | snapshot version | metrics.
//
// DecodeModel restores it.
func (m *Model) AppendState(dst []byte) []byte { return m.AppendStateAs(dst, m.version) }

// AppendStateAs is AppendState recording version as the version of the
// model's newest snapshot: what a checkpoint that stores snapshot version
// writes before the model records it (SetVersion), once stored.
func (m *Model) AppendStateAs(dst []byte, version uint64) []byte {
	dst = append(dst, stateVersion)
	dst = codec.AppendString(dst, string(m.cfg.Task))
	dst = codec.AppendString(dst, string(m.cfg.Loss))
	dst = codec.AppendString(dst, string(m.cfg.Optimizer.Kind))
	dst = m.tr.AppendState(dst)
	dst = binary.AppendUvarint(dst, m.lin.t)
	dst = codec.AppendFloat(dst, m.lin.u)
	dst = codec.AppendFloat(dst, m.lin.beta1T)
	dst = codec.AppendFloat(dst, m.lin.beta2T)
	dst = binary.AppendUvarint(dst, uint64(len(m.lin.out)))
	if m.cfg.Task == Multiclass {
		for _, c := range m.classes {
			dst = binary.AppendUvarint(dst, uint64(c))
		}
	}
	for _, o := range m.lin.out {
		dst = codec.AppendFloat(dst, o.intercept)
		for c := range 3 {
			dst = appendColumn(dst, o.p, m.lin.stride, c)
		}
	}
	dst = binary.AppendUvarint(dst, m.learned)
	dst = binary.AppendUvarint(dst, version)
	dst = m.eval.appendState(dst)
	return m.names.appendState(dst)
}

func (e *prequential) appendState(dst []byte) []byte {
	dst = binary.AppendUvarint(dst, e.n)
	dst = binary.AppendUvarint(dst, e.correct)
	dst = codec.AppendFloat(dst, e.logLoss)
	dst = codec.AppendFloat(dst, e.absErr)
	dst = codec.AppendFloat(dst, e.sqErr)
	dst = e.window.appendPositions(dst)
	dst = codec.AppendFloat(dst, e.window.sum)
	return e.window.appendValues(dst)
}

// appendColumn stores column c of interleaved coordinates p (stride floats
// each) as a vector of only its non-zero values: hashed spaces are mostly
// empty. A column beyond the stride is stored as an empty vector.
func appendColumn(dst []byte, p []float64, stride, c int) []byte {
	if c >= stride {
		return append(dst, 0, 0)
	}
	n := len(p) / stride
	dst = binary.AppendUvarint(dst, uint64(n))
	nonZero := 0
	for i := c; i < len(p); i += stride {
		if p[i] != 0 {
			nonZero++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(nonZero))
	last := 0
	for i := range n {
		if x := p[i*stride+c]; x != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-last))
			dst = codec.AppendFloat(dst, x)
			last = i
		}
	}
	return dst
}

// interleave sets column c of p (stride floats per coordinate) from w,
// growing p to cover w.
func interleave(p []float64, stride, c int, w []float64) []float64 {
	p = growTo(p, len(w)*stride)
	for i, x := range w {
		p[i*stride+c] = x
	}
	return p
}

// DecodeModel restores a model that AppendState encoded from the start of
// data into a new Model of cfg (defaults applied), keeping rolling metrics
// over the last rollingWindow examples (0: the default), and returns the
// bytes after it. The stored layout (task, loss, optimizer, feature layout)
// must match cfg: changing them would misread the weights, so a mismatch is
// an error that names the setting. max_numeric_features is the exception:
// the weights are re-indexed to the configured number of numeric slots,
// which must hold those in use (StoredMaxNumeric tells the stored one). Corrupt input is an error wrapping
// ErrCorrupt or features.ErrCorrupt; DecodeModel never panics.
func DecodeModel(cfg ModelConfig, rollingWindow int, data []byte) (*Model, []byte, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if rollingWindow == 0 {
		rollingWindow = DefaultRollingWindow
	}
	return decodeState(cfg, rollingWindow, data)
}

// decodeState is DecodeModel for a cfg with defaults applied.
func decodeState(cfg ModelConfig, window int, data []byte) (*Model, []byte, error) {
	r := codec.NewReader(data, ErrCorrupt)
	version := r.Byte()
	if r.Err() == nil && (version < 1 || version > stateVersion) {
		return nil, nil, fmt.Errorf("%w: unknown model state version %d", ErrCorrupt, version)
	}
	task := Task(r.String())
	loss, kind := LossLog, SGD
	if task == Regression {
		loss = LossSquared
	}
	if version >= 2 {
		loss, kind = Loss(r.String()), OptimizerKind(r.String())
	}
	if r.Err() != nil {
		return nil, nil, fmt.Errorf("%w: model %s: %w", ErrCorrupt, cfg.Name, r.Err())
	}
	mismatch := ""
	switch {
	case task != cfg.Task:
		mismatch = fmt.Sprintf("task %s but configured as %s", task, cfg.Task)
	case loss != cfg.Loss:
		mismatch = fmt.Sprintf("loss %s but configured with %s", loss, cfg.Loss)
	case kind != cfg.Optimizer.Kind:
		mismatch = fmt.Sprintf("optimizer %s but configured with %s", kind, cfg.Optimizer.Kind)
	}
	if mismatch != "" {
		return nil, nil, fmt.Errorf("learner: model %s is stored with %s; use another name or data dir", cfg.Name, mismatch)
	}
	tr, rest, err := features.DecodeTransformer(r.Rest())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: model %s: %w", ErrCorrupt, cfg.Name, err)
	}
	if diff, same := features.SameLayout(tr.Config(), cfg.Features); !same {
		return nil, nil, fmt.Errorf("learner: model %s is stored with a different feature layout (%s, stored vs configured); use another name or data dir", cfg.Name, diff)
	}
	tr.SetIgnore(cfg.Features.Ignore) // may change freely: no index depends on it
	tr.SetTooManyFeatures(cfg.Features.TooManyFeatures)
	stored := layout{maxNumeric: tr.Config().MaxNumeric, dim: tr.Dim()}
	if stored.maxNumeric != cfg.Features.MaxNumeric {
		if err := tr.SetMaxNumeric(cfg.Features.MaxNumeric); err != nil {
			return nil, nil, fmt.Errorf("learner: model %s cannot be given max_numeric_features %d (stored with %d): %w",
				cfg.Name, cfg.Features.MaxNumeric, stored.maxNumeric, err)
		}
	}
	m := newModel(cfg, window)
	m.tr = tr
	m.storedMaxNumeric = stored.maxNumeric
	m.checker = newChecker(m.schema, tr)
	m.lin.dim = tr.Dim()
	r = codec.NewReader(rest, ErrCorrupt)
	if version == 1 {
		m.lin.out[0].intercept = r.Float()
		m.lin.out[0].p = interleave(nil, m.lin.stride, 0, stored.reindex(&r, readWeights(&r, stored.dim), cfg.Features.MaxNumeric))
	} else {
		m.decodeOutputs(&r, stored, cfg.Features.MaxNumeric)
	}
	m.learned = r.Uvarint()
	m.version = r.Uvarint()
	m.eval.decode(&r)
	if version >= 3 {
		m.names = decodeBucketNames(&r, cfg.hashNames(), stored.dim, func(i int) int {
			return features.Reindex(i, stored.maxNumeric, cfg.Features.MaxNumeric)
		})
	}
	if r.Err() != nil {
		return nil, nil, fmt.Errorf("learner: model %s: %w", cfg.Name, r.Err())
	}
	return m, r.Rest(), nil
}

// layout is the index space weights were stored in.
type layout struct{ maxNumeric, dim int }

// reindex moves a column of weights stored in l to a layout with maxNumeric
// numeric slots (features.Reindex): a model given more numeric slots keeps
// every weight, hashed ones included, on the same feature.
func (l layout) reindex(r *codec.Reader, w []float64, maxNumeric int) []float64 {
	if maxNumeric == l.maxNumeric || len(w) == 0 {
		return w
	}
	n := min(len(w), maxNumeric)
	if len(w) > l.maxNumeric {
		n = features.Reindex(len(w)-1, l.maxNumeric, maxNumeric) + 1
	}
	out := make([]float64, n)
	for i, x := range w {
		if x == 0 {
			continue
		}
		j := features.Reindex(i, l.maxNumeric, maxNumeric)
		if i < l.maxNumeric && j >= maxNumeric {
			r.Fail("weight on an unused numeric slot")
			return nil
		}
		out[j] = x
	}
	return out
}

func (m *Model) decodeOutputs(r *codec.Reader, stored layout, maxNumeric int) {
	m.lin.t = r.Uvarint()
	m.lin.u = r.Float()
	m.lin.beta1T, m.lin.beta2T = r.Float(), r.Float()
	m.lin.powersValid = m.cfg.Optimizer.Kind == Adam && m.lin.t > 0
	n := r.Count()
	if m.cfg.Task != Multiclass && n != 1 || n > m.cfg.MaxClasses {
		r.Fail("truncated output count")
		return
	}
	if m.cfg.Task == Multiclass {
		m.lin.out, m.lin.raw, m.lin.probs, m.lin.grads = nil, nil, nil, nil
		for range n {
			m.classes = append(m.classes, int(r.Uvarint()))
			m.lin.addOutput()
		}
	}
	for k := range m.lin.out {
		o := &m.lin.out[k]
		o.intercept = r.Float()
		for c := range 3 {
			col := stored.reindex(r, readWeights(r, stored.dim), maxNumeric)
			// A column beyond the stride is SGD's L1 history of a model
			// now configured without L1: it no longer matters.
			if c < m.lin.stride {
				o.p = interleave(o.p, m.lin.stride, c, col)
			}
		}
	}
}

func (e *prequential) decode(r *codec.Reader) {
	e.n, e.correct = r.Uvarint(), r.Uvarint()
	e.logLoss, e.absErr, e.sqErr = r.Float(), r.Float(), r.Float()
	var s storedRing
	n := r.Count()
	e.stored = n
	s.next, s.filled = r.Uvarint(), r.Uvarint()
	s.sum = r.Float()
	s.values = readValues(r, n)
	if r.Err() == nil {
		e.window.restore(s) // else, or if the rolling window size changed: start the window afresh
	}
}

// snapshotMeta is what a snapshot records besides the model state.
type snapshotMeta struct {
	created time.Time
	reason  string
}

// snapshotVersion is the first byte of an encoded snapshot, the envelope
// around a model state (which carries its own version). Layout: version u8 |
// created (Unix nanoseconds, varint) | reason string | model state. Versions
// 1 and 2 share this layout: the byte used to repeat the state's version.
const snapshotVersion = 2

func appendSnapshot(dst []byte, meta snapshotMeta, m *Model) []byte {
	return appendSnapshotAs(dst, meta, m, m.version)
}

func appendSnapshotAs(dst []byte, meta snapshotMeta, m *Model, version uint64) []byte {
	dst = append(dst, snapshotVersion)
	dst = binary.AppendVarint(dst, meta.created.UnixNano())
	dst = codec.AppendString(dst, meta.reason)
	return m.AppendStateAs(dst, version)
}

// AppendSnapshot appends the stored form of snapshot s, which m has just
// taken (Model.Snapshot) and has not learned since: its envelope (time,
// reason) and m's whole state as of version s.Version(), optimizer state
// included, so that a stored snapshot can also become a live model again.
// DecodeSnapshot restores it.
func (m *Model) AppendSnapshot(dst []byte, s *Snapshot) []byte {
	return appendSnapshotAs(dst, snapshotMeta{created: s.created, reason: s.reason}, m, s.version)
}

// DecodeSnapshot restores a snapshot of m that AppendSnapshot stored. The
// snapshot derives its history features from m's live history.
func (m *Model) DecodeSnapshot(data []byte) (*Snapshot, error) {
	s, err := decodeSnapshot(m.cfg, m.window, data)
	if err != nil {
		return nil, err
	}
	s.hist = m.hist
	return s, nil
}

func decodeSnapshot(cfg ModelConfig, window int, data []byte) (*Snapshot, error) {
	r := codec.NewReader(data, ErrCorrupt)
	if v := r.Byte(); r.Err() == nil && v != 1 && v != 2 {
		return nil, fmt.Errorf("%w: unknown snapshot version %d", ErrCorrupt, v)
	}
	created := r.Varint()
	reason := r.String()
	if r.Err() != nil {
		return nil, r.Err()
	}
	m, _, err := decodeState(cfg, window, r.Rest())
	if err != nil {
		return nil, err
	}
	s := newSnapshot(m, snapshotMeta{created: time.Unix(0, created).UTC(), reason: reason})
	s.names = m.names // m is this snapshot's own: no copy
	return s, nil
}

// readWeights reads a vector written by appendColumn of at most dim
// coordinates.
func readWeights(r *codec.Reader, dim int) []float64 {
	n := r.Uvarint()
	if n > uint64(dim) {
		r.Fail("truncated weights")
		return nil
	}
	w := make([]float64, n)
	idx := 0
	for k := r.Count(); k > 0 && r.Err() == nil; k-- {
		delta := r.Uvarint()
		x := r.Float()
		if delta >= uint64(len(w)) || idx+int(delta) >= len(w) {
			r.Fail("truncated weight index")
			return nil
		}
		idx += int(delta)
		w[idx] = x
	}
	return w
}
