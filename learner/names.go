package learner

import (
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
// bucket keeps the first name learned in it. When full, it forgets the
// quarter of its buckets with the smallest weights (by magnitude, over
// every output) and from then on admits a new bucket only once its weight
// is larger than every weight it forgot, and on one learned event in 16
// only, so that the names it keeps are those of the weights that matter
// (a heavy bucket recurs and gets in) and a stream of ever new values
// (ids) does not pay for a name on every event.
//
// The learning path stays cheap: a bit per bucket says whether it is
// named, and the event is transformed again with tracing (for the names)
// only when one of its buckets is to be named, and on one learned event
// in 64, when the buckets' full hashes are compared with the
// names' to find buckets that two features share. Owned by the model's
// goroutine; a snapshot decoded from the store holds its own.
type bucketNames struct {
	limit  int
	names  map[int]bucketName // weight index → name
	named  []uint64           // bit per weight index: in names
	floor  float64            // a new bucket is admitted when full only above this |weight|
	trace  features.Vector    // scratch: the event transformed with tracing
	traced uint64             // events transformed again with tracing (the cost tests bound)
	ranked []rankedBucket     // scratch of evict
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
	b := &bucketNames{limit: limit, names: make(map[int]bucketName)}
	b.trace.Trace()
	return b
}

func (b *bucketNames) isNamed(idx int) bool {
	w := idx >> 6
	return w < len(b.named) && b.named[w]&(1<<(idx&63)) != 0
}

func (b *bucketNames) set(idx int, e bucketName) {
	for idx>>6 >= len(b.named) {
		b.named = append(b.named, 0)
	}
	b.named[idx>>6] |= 1 << (idx & 63)
	b.names[idx] = e
}

func (b *bucketNames) remove(idx int) {
	b.named[idx>>6] &^= 1 << (idx & 63)
	delete(b.names, idx)
}

// weight is the largest magnitude of index idx's weights over the outputs.
func weightOf(lin *linear, idx int) float64 {
	w := 0.0
	for k := range lin.out {
		w = max(w, math.Abs(lin.weight(&lin.out[k], idx)))
	}
	return w
}

// admits reports whether an unnamed bucket of weight w is to be named
// now; open is whether the dictionary takes new names on this event.
func (b *bucketNames) admits(w float64, open bool) bool { return open && w > b.floor }

// scattered reports whether event n is one of 2^bits, spread by Fibonacci
// hashing so that periodic data does not alias with the choice.
func scattered(n uint64, bits uint) bool { return (n*0x9E3779B97F4A7C15)>>(64-bits) == 0 }

// observe records the names of the hashed entries of vec, which the
// model has just learned from fields (the n-th event it learned). In
// steady state it costs one bit test per hashed entry.
func (b *bucketNames) observe(tr *features.Transformer, fields []features.Field, vec *features.Vector, lin *linear, n uint64) {
	check := scattered(n, 6) // one event in 64: compare the hashes
	// A full dictionary takes new names on one event in 16 only, so that
	// a stream of ever new values does not make every event name some.
	open := b.floor == 0 || scattered(n+1, 4) // the floor rises at the first eviction
	if !check {
		if !open {
			return
		}
		for _, idx := range vec.Index {
			if tr.IsHashed(idx) && !b.isNamed(idx) && b.admits(weightOf(lin, idx), open) {
				check = true
				break
			}
		}
		if !check {
			return
		}
	}
	b.traced++
	tr.Transform(fields, &b.trace)
	for i, idx := range b.trace.Index {
		if !tr.IsHashed(idx) {
			continue
		}
		h, _ := b.trace.TracedHash(i)
		if b.isNamed(idx) {
			if e := b.names[idx]; e.hash != h && !e.shared {
				e.shared = true
				b.names[idx] = e
			}
			continue
		}
		w := weightOf(lin, idx)
		if !b.admits(w, open) {
			continue
		}
		if len(b.names) >= b.limit {
			b.evict(lin)
			if w <= b.floor {
				continue
			}
		}
		b.set(idx, bucketName{name: features.TermName(fields, &b.trace, i), hash: h, cross: b.trace.IsInteraction(i)})
	}
}

// evict forgets the quarter of the buckets with the smallest weights (ties:
// the higher index), at least one, and raises the floor of admission to
// the largest weight it forgot. It selects them in linear time
// (quickselect), so a stream of ever new values that keeps the dictionary
// full costs a few comparisons per name, not a sort.
func (b *bucketNames) evict(lin *linear) {
	all := b.ranked[:0]
	for idx := range b.names {
		all = append(all, rankedBucket{idx, weightOf(lin, idx)})
	}
	b.ranked = all
	k := max(1, len(all)/4)
	selectSmallest(all, k)
	for _, r := range all[:k] {
		b.remove(r.idx)
		b.floor = max(b.floor, r.w)
	}
}

type rankedBucket struct {
	idx int
	w   float64
}

// less orders buckets by weight, then by index, the higher first: a strict
// total order, so the k smallest are one set whatever the map's order.
func (x rankedBucket) less(y rankedBucket) bool {
	if x.w != y.w {
		return x.w < y.w
	}
	return x.idx > y.idx
}

// selectSmallest moves the k smallest of a (by less) to a[:k], in any order
// (Hoare's quickselect, the middle element as pivot).
func selectSmallest(a []rankedBucket, k int) {
	lo, hi := 0, len(a)-1
	for lo < hi {
		pivot := a[lo+(hi-lo)/2]
		i, j := lo, hi
		for i <= j {
			for a[i].less(pivot) {
				i++
			}
			for pivot.less(a[j]) {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k-1 <= j:
			hi = j
		case k-1 >= i:
			lo = i
		default:
			return
		}
	}
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

// appendState appends the floor of admission (8 bytes) and the names in
// index order (so that equal dictionaries encode to equal bytes): count, then per bucket the index
// delta, the hash (8 bytes), flags (1: shared, 2: an interaction) and the
// name.
func (b *bucketNames) appendState(dst []byte) []byte {
	if b == nil {
		return append(codec.AppendFloat(dst, 0), 0)
	}
	dst = codec.AppendFloat(dst, b.floor)
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
	floor := r.Float()
	if b != nil && floor >= 0 && !math.IsInf(floor, 0) {
		b.floor = floor
	}
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
			b.set(reindex(idx), bucketName{name: name, hash: binary.LittleEndian.Uint64(hash), shared: flags&1 != 0, cross: flags&2 != 0})
		}
	}
	return b
}
