package features

import (
	"bytes"

	"github.com/cespare/xxhash/v2"
)

// Resolving a field's name (what the Transformer knows of it, and the hash
// a category's value is combined with) costs a map lookup and a hash of the
// name. Events of one stream list their fields in the same order: CSV
// columns always, a producer's JSON nearly always. A nameCache remembers,
// for each position, the name last seen there and what it resolved to, so
// that the next event with the same name at the same position pays a
// comparison of its bytes instead. A position whose name differs resolves
// again and remembers the new name.

// maxCachedPositions bounds a nameCache: fields beyond it are resolved
// through the map on every call.
const maxCachedPositions = 4096

// resolvedName is one position of a nameCache.
type resolvedName struct {
	name  []byte // a copy: the caller's buffer changes
	info  fieldInfo
	known bool   // name is in Transformer.info
	hash  uint64 // xxhash of name
	gen   uint64 // the Transformer.gen it was resolved at
	ok    bool   // resolved at all
}

// nameCache is owned by one goroutine (a Vector's user, or the
// Transformer's writer) and resolves against one Transformer at a time:
// a change of owner or of the owner's gen resolves every position again.
type nameCache struct {
	owner *Transformer
	at    []resolvedName
	miss  resolvedName // scratch for positions beyond maxCachedPositions
}

// resolve returns what name, the field at position i, resolves to in t.
// The result is valid until the next call.
func (c *nameCache) resolve(t *Transformer, i int, name []byte) *resolvedName {
	if c.owner != t {
		c.owner = t
		c.at = c.at[:0]
	}
	if i >= maxCachedPositions {
		t.resolveInto(&c.miss, name)
		return &c.miss
	}
	for len(c.at) <= i { // a caller may skip positions (Update skips categories)
		c.at = append(c.at, resolvedName{})
	}
	r := &c.at[i]
	if !r.ok || r.gen != t.gen || !bytes.Equal(r.name, name) {
		t.resolveInto(r, name)
	}
	return r
}

// resolveInto looks name up in t and stores the answer in r.
func (t *Transformer) resolveInto(r *resolvedName, name []byte) {
	r.name = append(r.name[:0], name...)
	r.info, r.known = t.info[string(name)]
	if !r.known {
		r.info = fieldInfo{slot: -1}
	}
	r.hash = xxhash.Sum64(name)
	r.gen, r.ok = t.gen, true
}
