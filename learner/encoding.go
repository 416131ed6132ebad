package learner

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/eddyhq/eddy/features"
)

// stateVersion is the first byte of an encoded model state. Bump it when the
// layout changes and keep decoding the old layouts.
const stateVersion = 1

// ErrCorrupt is returned when stored state cannot be decoded.
var ErrCorrupt = errors.New("learner: corrupt state")

// appendState appends the versioned binary encoding of m's state. Layout
// (little endian; lengths and counters as uvarints; floats as 8 bytes):
//
//	version u8 | task string | transformer (features encoding) |
//	intercept | len(w) | nonzero count, then (index delta, weight) pairs |
//	learned | snapshot version | metrics: n, correct, logLoss, absErr,
//	sqErr, window length, next, filled, windowSum, window values
func (m *Model) appendState(dst []byte) []byte {
	dst = append(dst, stateVersion)
	dst = appendString(dst, string(m.cfg.Task))
	dst = m.tr.AppendBinary(dst)
	dst = appendFloat(dst, m.intercept)
	dst = appendWeights(dst, m.w)
	dst = binary.AppendUvarint(dst, m.learned)
	dst = binary.AppendUvarint(dst, m.version)
	e := &m.eval
	dst = binary.AppendUvarint(dst, e.n)
	dst = binary.AppendUvarint(dst, e.correct)
	dst = appendFloat(dst, e.logLoss)
	dst = appendFloat(dst, e.absErr)
	dst = appendFloat(dst, e.sqErr)
	dst = binary.AppendUvarint(dst, uint64(len(e.window)))
	dst = binary.AppendUvarint(dst, uint64(e.next))
	dst = binary.AppendUvarint(dst, uint64(e.filled))
	dst = appendFloat(dst, e.windowSum)
	for _, x := range e.window {
		dst = appendFloat(dst, x)
	}
	return dst
}

// appendWeights stores only non-zero weights: hashed spaces are mostly empty.
func appendWeights(dst []byte, w []float64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(w)))
	nonZero := 0
	for _, x := range w {
		if x != 0 {
			nonZero++
		}
	}
	dst = binary.AppendUvarint(dst, uint64(nonZero))
	last := 0
	for i, x := range w {
		if x != 0 {
			dst = binary.AppendUvarint(dst, uint64(i-last))
			dst = appendFloat(dst, x)
			last = i
		}
	}
	return dst
}

// decodeState restores a model from data into a new Model built from cfg. The
// stored layout parameters must match cfg: changing them would misalign the
// weights.
func decodeState(cfg ModelConfig, window int, data []byte) (*Model, []byte, error) {
	r := reader{buf: data}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return nil, nil, fmt.Errorf("%w: unknown model state version %d", ErrCorrupt, v)
	}
	task := Task(r.string())
	if r.err != nil {
		return nil, nil, r.err
	}
	if task != cfg.Task {
		return nil, nil, fmt.Errorf("learner: model %s is stored with task %s but configured as %s; use another name or data dir", cfg.Name, task, cfg.Task)
	}
	tr, rest, err := features.DecodeTransformer(r.buf)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: model %s: %w", ErrCorrupt, cfg.Name, err)
	}
	tr.SetIgnore(cfg.Features.Ignore) // may change freely: no index depends on it
	got, want := tr.Config(), cfg.Features
	if got.HashBits != want.HashBits || got.MaxNumeric != want.MaxNumeric || got.Scaler != want.Scaler {
		return nil, nil, fmt.Errorf("learner: model %s is stored with scaler=%s hash_bits=%d max_numeric_features=%d but configured with scaler=%s hash_bits=%d max_numeric_features=%d; use another name or data dir",
			cfg.Name, got.Scaler, got.HashBits, got.MaxNumeric, want.Scaler, want.HashBits, want.MaxNumeric)
	}
	m := newModel(cfg, window)
	m.tr = tr
	r.buf = rest
	m.intercept = r.float()
	m.w = r.weights(tr.Dim())
	m.learned = r.uvarint()
	m.version = r.uvarint()
	e := &m.eval
	e.n, e.correct = r.uvarint(), r.uvarint()
	e.logLoss, e.absErr, e.sqErr = r.float(), r.float(), r.float()
	storedWindow := r.count()
	next, filled := int(r.uvarint()), int(r.uvarint())
	windowSum := r.float()
	stored := make([]float64, 0, storedWindow)
	for range storedWindow {
		stored = append(stored, r.float())
	}
	if r.err != nil {
		return nil, nil, fmt.Errorf("learner: model %s: %w", cfg.Name, r.err)
	}
	if storedWindow == len(e.window) && next >= 0 && next < storedWindow && filled >= 0 && filled <= storedWindow {
		copy(e.window, stored)
		e.next, e.filled, e.windowSum = next, filled, windowSum
	} // else: the rolling window size changed; start the window afresh
	return m, r.buf, nil
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

func appendFloat(dst []byte, x float64) []byte {
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(x))
}

// snapshotMeta is what a snapshot records besides the model state.
type snapshotMeta struct {
	created time.Time
	reason  string
}

func appendSnapshot(dst []byte, meta snapshotMeta, m *Model) []byte {
	dst = append(dst, stateVersion)
	dst = binary.AppendVarint(dst, meta.created.UnixNano())
	dst = appendString(dst, meta.reason)
	return m.appendState(dst)
}

func decodeSnapshot(cfg ModelConfig, window int, data []byte) (*Snapshot, error) {
	r := reader{buf: data}
	if v := r.byte(); r.err == nil && v != stateVersion {
		return nil, fmt.Errorf("%w: unknown snapshot version %d", ErrCorrupt, v)
	}
	created := r.varint()
	reason := r.string()
	if r.err != nil {
		return nil, r.err
	}
	m, _, err := decodeState(cfg, window, r.buf)
	if err != nil {
		return nil, err
	}
	return newSnapshot(m, snapshotMeta{created: time.Unix(0, created).UTC(), reason: reason}), nil
}

// reader decodes the primitives above, remembering the first error.
type reader struct {
	buf []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: truncated %s", ErrCorrupt, what)
	}
	r.buf = nil
}

func (r *reader) byte() byte {
	if len(r.buf) < 1 {
		r.fail("byte")
		return 0
	}
	b := r.buf[0]
	r.buf = r.buf[1:]
	return b
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.buf)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.buf)
	if n <= 0 {
		r.fail("varint")
		return 0
	}
	r.buf = r.buf[n:]
	return v
}

// count reads a length that cannot exceed the bytes left, so corrupt input
// cannot make the decoder allocate without bound.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.buf)) {
		r.fail("count")
		return 0
	}
	return int(n)
}

func (r *reader) string() string {
	n := r.count()
	if r.err != nil {
		return ""
	}
	s := string(r.buf[:n])
	r.buf = r.buf[n:]
	return s
}

func (r *reader) float() float64 {
	if len(r.buf) < 8 {
		r.fail("float")
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(r.buf))
	r.buf = r.buf[8:]
	return v
}

func (r *reader) weights(dim int) []float64 {
	n := r.uvarint()
	if n > uint64(dim) {
		r.fail("weights")
		return nil
	}
	w := make([]float64, n)
	idx := 0
	for k := r.count(); k > 0 && r.err == nil; k-- {
		delta := r.uvarint()
		x := r.float()
		if delta >= uint64(len(w)) || idx+int(delta) >= len(w) {
			r.fail("weight index")
			return nil
		}
		idx += int(delta)
		w[idx] = x
	}
	return w
}
