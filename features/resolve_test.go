package features

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTheNameCacheNeverChangesAResult learns a stream whose events list
// their fields in a shifting order, with names that come and go, ignored
// names changed midway and updates rolled back, through one Transformer
// and Vector (which remember names by position), and checks every Transform
// against a Vector that has never seen an event (which resolves every name
// through the map): the same indices and values, bit for bit.
func TestTheNameCacheNeverChangesAResult(t *testing.T) {
	tr := New(Config{Namespaces: map[string][]string{"a": {"n0", "c1"}}, Interactions: [][2]string{{"a", "a"}}})
	rng := rand.New(rand.NewPCG(4, 5))
	var cached Vector
	for e := range 5000 {
		var fields []Field
		for i := range 3 + rng.IntN(6) {
			if rng.IntN(3) == 0 {
				fields = append(fields, cat(fmt.Sprintf("c%d", i), fmt.Sprintf("v%d", rng.IntN(20))))
			} else {
				fields = append(fields, num(fmt.Sprintf("n%d", i), rng.NormFloat64()))
			}
		}
		if e%7 == 0 { // another order
			rng.Shuffle(len(fields), func(i, j int) { fields[i], fields[j] = fields[j], fields[i] })
		}
		if e == 2500 {
			tr.SetIgnore([]string{"n2"})
		}
		// A Transformer's own cache (Update) and the Vector's.
		if err := tr.Update(fields); err != nil {
			t.Fatal(err)
		}
		if e%11 == 0 {
			tr.Rollback()
		}
		for i, f := range fields { // Update remembers numeric names even after a category
			if r := tr.byPos.at; f.Kind == Number && (i >= len(r) || !r[i].ok || string(r[i].name) != string(f.Name)) {
				t.Fatalf("event %d: Update did not remember %q at position %d", e, f.Name, i)
			}
		}
		tr.Transform(fields, &cached)
		var fresh Vector
		tr.Transform(fields, &fresh)
		if !slices.Equal(cached.Index, fresh.Index) || !slices.Equal(cached.Value, fresh.Value) {
			t.Fatalf("event %d: with the cache %v %v, without %v %v", e, cached.Index, cached.Value, fresh.Index, fresh.Value)
		}
		// A clone resolves against itself, not against tr's state.
		if e == 4000 {
			c := tr.Clone()
			c.SetIgnore([]string{"n0"})
			c.Transform(fields, &cached)
			var want Vector
			c.Transform(fields, &want)
			if !slices.Equal(cached.Index, want.Index) {
				t.Fatalf("clone: with the cache %v, without %v", cached.Index, want.Index)
			}
		}
	}
}
