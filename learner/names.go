package learner

import (
	"cmp"
	"encoding/binary"
	"math"
	"slices"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/features/codec"
)

// DefaultHashNames is how many hashed buckets a model keeps a readable
// name for, by default (ModelConfig.HashNames).
const DefaultHashNames = 4096

// bucketNames is a bounded inverse of the hashing trick (Vowpal Wabbit's
// --invert_hash): the readable name of each hashed bucket the model has
// learned, such as "country=DE" or "age × country=DE", for Inspect. A
// bucket keeps the first name learned in it; a later name of another hash
// in the same bucket marks it as shared. When full, it forgets the quarter
// of its buckets with the smallest weights (by magnitude, over every
// output), so the names it keeps are those of the weights that matter.
// Owned by the model's goroutine; snapshots hold a copy.
type bucketNames struct {
	limit int
	names map[int]bucketName // weight index → name
}

type bucketName struct {
	name   string
	hash   uint64
	shared bool // another feature's hash has fallen in the bucket too
	cross  bool // an interaction, not a category
}

func newBucketNames(limit int) *bucketNames {
	if limit <= 0 {
		return nil
	}
	return &bucketNames{limit: limit, names: make(map[int]bucketName)}
}

// observe records the names of the hashed entries of vec, which the
// model has just learned from fields (vec traced). A bucket already named
// costs one map lookup.
func (b *bucketNames) observe(tr *features.Transformer, fields []features.Field, vec *features.Vector, lin *linear) {
	for i, idx := range vec.Index {
		if !tr.IsHashed(idx) {
			continue
		}
		h, _ := vec.TracedHash(i)
		if e, ok := b.names[idx]; ok {
			if e.hash != h && !e.shared {
				e.shared = true
				b.names[idx] = e
			}
			continue
		}
		if len(b.names) >= b.limit {
			b.evict(lin)
		}
		b.names[idx] = bucketName{name: features.TermName(fields, vec, i), hash: h, cross: vec.IsInteraction(i)}
	}
}

// evict forgets the quarter of the buckets with the smallest weights (ties:
// the higher index), at least one.
func (b *bucketNames) evict(lin *linear) {
	type ranked struct {
		idx int
		w   float64
	}
	all := make([]ranked, 0, len(b.names))
	for idx := range b.names {
		w := 0.0
		for k := range lin.out {
			w = max(w, math.Abs(lin.weight(&lin.out[k], idx)))
		}
		all = append(all, ranked{idx, w})
	}
	slices.SortFunc(all, func(x, y ranked) int {
		if c := cmp.Compare(x.w, y.w); c != 0 {
			return c
		}
		return cmp.Compare(y.idx, x.idx)
	})
	for _, r := range all[:max(1, len(all)/4)] {
		delete(b.names, r.idx)
	}
}

func (b *bucketNames) clone() *bucketNames {
	if b == nil {
		return nil
	}
	c := &bucketNames{limit: b.limit, names: make(map[int]bucketName, len(b.names))}
	for k, v := range b.names {
		c.names[k] = v
	}
	return c
}

// lookup returns the name of bucket index idx.
func (b *bucketNames) lookup(idx int) (bucketName, bool) {
	if b == nil {
		return bucketName{}, false
	}
	e, ok := b.names[idx]
	return e, ok
}

func (b *bucketNames) len() int {
	if b == nil {
		return 0
	}
	return len(b.names)
}

// appendState appends the names in index order (so that equal
// dictionaries encode to equal bytes): count, then per bucket the index
// delta, the hash (8 bytes), flags (1: shared, 2: an interaction) and the
// name.
func (b *bucketNames) appendState(dst []byte) []byte {
	if b == nil {
		return append(dst, 0)
	}
	idx := make([]int, 0, len(b.names))
	for i := range b.names {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	dst = binary.AppendUvarint(dst, uint64(len(idx)))
	last := 0
	for _, i := range idx {
		e := b.names[i]
		dst = binary.AppendUvarint(dst, uint64(i-last))
		dst = binary.LittleEndian.AppendUint64(dst, e.hash)
		flags := byte(0)
		if e.shared {
			flags |= 1
		}
		if e.cross {
			flags |= 2
		}
		dst = append(dst, flags)
		dst = codec.AppendString(dst, e.name)
		last = i
	}
	return dst
}

// decodeBucketNames reads appendState's output into a dictionary of at
// most limit names (nil when limit is 0 or less: the names are skipped),
// of indices below dim, moved by reindex when the numeric slots were
// resized.
func decodeBucketNames(r *codec.Reader, limit, dim int, reindex func(int) int) *bucketNames {
	b := newBucketNames(limit)
	idx := 0
	for n := r.Count(); n > 0 && r.Err() == nil; n-- {
		delta := r.Uvarint()
		hash := r.Next(8)
		flags := r.Byte()
		name := r.String()
		if r.Err() != nil {
			break
		}
		if delta >= uint64(dim) || idx+int(delta) >= dim || flags > 3 {
			r.Fail("bucket name index")
			return nil
		}
		idx += int(delta)
		if b != nil && len(b.names) < limit {
			b.names[reindex(idx)] = bucketName{name: name, hash: binary.LittleEndian.Uint64(hash), shared: flags&1 != 0, cross: flags&2 != 0}
		}
	}
	return b
}
