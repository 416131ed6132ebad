package engine

import (
	"strings"
	"testing"
	"time"
)

// TestProvenanceRangesTileEachPartition learns events of three partitions
// (the first starting at offset 100) over 8 checkpoints, each a periodic
// promotion, with a restart in the middle and a rejected event: each
// snapshot's offsets since its parent start where its parent's end, with
// no gap and no overlap, from the lineage's first offset to the last
// checkpoint's; since-began ranges all start at the first offsets; the
// counts add up; every snapshot names its parent, the configuration's
// hash (whose configuration is stored) and the build.
func TestProvenanceRangesTileEachPartition(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	cfg.Retain = 100
	store, closeStore := openTestStore(t, dir)
	e, _ := newTestEngine(t, store, cfg, nil)
	tickingClock(e)
	events := paymentEvents(4, 8*30)
	next := map[int]int64{0: 100, 1: 0, 2: 0}
	at := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for c := range 8 {
		if c == 4 {
			closeStore()
			store, closeStore = openTestStore(t, dir)
			e, _ = newTestEngine(t, store, cfg, nil)
			tickingClock(e)
		}
		for i, ex := range events[c*30 : (c+1)*30] {
			p := i % 3
			example := labeled(ex.Fields, ex.Y)
			example.Partition, example.Offset, example.Time = p, next[p], at.Add(time.Duration(c*30+i)*time.Second)
			if c == 2 && i == 0 {
				example.Label = 7 // a binary model rejects it
			}
			_ = e.Process("events", example)
			next[p]++
		}
		checkpoint(t, e, eventsOffset(0, next[0]), eventsOffset(1, next[1]), eventsOffset(2, next[2]))
	}
	closeStore()
	store, _ = openTestStore(t, dir)
	e, _ = newTestEngine(t, store, cfg, nil)

	from := map[int]int64{0: 100, 1: 0, 2: 0}
	var learned, rejected uint64
	for v := uint64(1); v <= 8; v++ {
		p, config, err := e.SnapshotProvenance("fraud", v)
		if err != nil {
			t.Fatal(err)
		}
		if p.Parent != v-1 || p.Version != v || len(p.ConfigHash) != 64 || p.Build == "" || !strings.Contains(string(config), `"Name":"fraud"`) {
			t.Fatalf("v%d: parent %d, hash %q, build %q, config %s", v, p.Parent, p.ConfigHash, p.Build, config)
		}
		if len(p.SinceParent) != 3 {
			t.Fatalf("v%d: %d partitions since its parent, want 3: %+v", v, len(p.SinceParent), p.SinceParent)
		}
		for i, r := range p.SinceParent {
			if r.Partition != i || r.Topic != "events" || r.From != from[i] || r.To != r.From+10 {
				t.Fatalf("v%d partition %d: since parent %+v, want [%d, %d)", v, i, r, from[i], from[i]+10)
			}
			if b := p.SinceBegan[i]; b.From != map[int]int64{0: 100}[i] || b.To != r.To {
				t.Fatalf("v%d partition %d: since began %+v", v, i, b)
			}
			from[i] = r.To
		}
		learned += p.LearnedSinceParent
		rejected += p.RejectedSinceParent
		if p.Learned != learned || p.Rejected != rejected {
			t.Fatalf("v%d: learned %d (sum %d), rejected %d (sum %d)", v, p.Learned, learned, p.Rejected, rejected)
		}
		if want := at.Add(time.Duration((v-1)*30) * time.Second); !p.FirstEventTime.Equal(want) || !p.BeganEventTime.Equal(at) {
			t.Fatalf("v%d: first event time %v, want %v; began %v", v, p.FirstEventTime, want, p.BeganEventTime)
		}
	}
	if learned != 239 || rejected != 1 || from[0] != 180 || from[1] != 80 || from[2] != 80 {
		t.Fatalf("learned %d, rejected %d, ends %v", learned, rejected, from)
	}
	raw, _, _ := store.Get(provenanceKey("fraud", 8))
	lin, _, _ := store.Get(lineageKey("fraud"))
	_, config, _ := e.SnapshotProvenance("fraud", 8)
	t.Logf("provenance of a snapshot with 3 partitions: %d bytes; the lineage record: %d bytes; the configuration, stored once per hash: %d bytes", len(raw), len(lin), len(config))
	if _, _, err := e.SnapshotProvenance("fraud", 9); err == nil {
		t.Fatal("a version never taken has a provenance")
	}
}
