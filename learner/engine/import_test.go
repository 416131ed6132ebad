package engine

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/eddyhq/eddy/learner"
)

// TestAnImportedSnapshotServesAsItsSourceAndBeginsALineage exports a
// snapshot of one engine's model and imports it into a second engine, on
// its own store, that has learned other data and is pinned: the second
// engine serves a new version that scores bitwise as the exported one,
// unpinned, with provenance naming the import and an audit entry with the
// actor; it survives a restart, and learning goes on from the imported
// state (the next snapshot differs). A snapshot of a model configured
// otherwise is refused naming the setting, and changes nothing.
func TestAnImportedSnapshotServesAsItsSourceAndBeginsALineage(t *testing.T) {
	t.Parallel()
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	srcStore, _ := openTestStore(t, t.TempDir())
	src, _ := newTestEngine(t, srcStore, cfg, nil)
	tickingClock(src)
	promoteEvery(t, src, 3)
	data, ok, err := src.SnapshotData("fraud", 2)
	if err != nil || !ok {
		t.Fatalf("the source's v2: %v, %v", ok, err)
	}
	exported, err := src.Snapshot("fraud", 2)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	dstStore, closeDst := openTestStore(t, dir)
	rec := &snapshotRecorder{}
	dst, _ := newTestEngine(t, dstStore, cfg, rec)
	tickingClock(dst)
	processAll(t, dst, "events", paymentEvents(99, 30))
	checkpoint(t, dst, eventsOffset(0, 30))
	runCommand(t, dst, func(ctx context.Context) (uint64, error) { return dst.Rollback(ctx, "fraud") }) // no earlier version: refused
	runCommand(t, dst, func(ctx context.Context) (uint64, error) { return dst.Promote(ctx, "fraud", 1) })
	rec.take()

	mismatch := cfg.Models[0]
	mismatch.Loss = "hinge"
	if _, err := dst.Import(context.Background(), "fraud", data, mismatch, ImportOrigin{Model: "fraud", Version: 2}); !errors.Is(err, ErrImportMismatch) {
		t.Fatalf("importing a snapshot of a hinge-loss model: %v, want ErrImportMismatch naming the loss", err)
	}
	origin := ImportOrigin{Model: "fraud", Version: 2, Learned: exported.Learned(), SHA256: "ab12"}
	v, err := runCommand(t, dst, func(ctx context.Context) (uint64, error) {
		return dst.Import(WithActor(ctx, "alice"), "fraud", data, cfg.Models[0], origin)
	})
	if err != nil || v != 2 {
		t.Fatalf("Import = v%d, %v; want the destination's v2", v, err)
	}
	published := rec.take()
	if len(published) == 0 || published[len(published)-1].Version() != 2 {
		t.Fatalf("published after the import: %v", published)
	}
	sameScores := func(s *learner.Snapshot) {
		t.Helper()
		for i, ex := range paymentEvents(7, 50) {
			got, _, _ := s.Score(nil, ex.Fields)
			want, _, _ := exported.Score(nil, ex.Fields)
			if math.Float64bits(got) != math.Float64bits(want) {
				t.Fatalf("event %d: the imported snapshot scores %v, the exported one %v", i, got, want)
			}
		}
	}
	sameScores(published[len(published)-1])

	p, _, err := dst.SnapshotProvenance("fraud", 2)
	if err != nil {
		t.Fatal(err)
	}
	if p.Reason != learner.ReasonImport || p.Origin != OriginImport || p.Imported == nil || *p.Imported != origin || p.Parent != 1 || p.Learned != exported.Learned() {
		t.Fatalf("the imported snapshot's provenance: %+v", p)
	}
	audit, err := dst.Audit("fraud", 1)
	if err != nil || len(audit) != 1 || audit[0].Action != "import" || audit[0].Actor != "alice" || audit[0].Serving != 2 || audit[0].From == "" {
		t.Fatalf("the import's audit entry: %+v, %v", audit, err)
	}

	closeDst()
	dstStore, _ = openTestStore(t, dir)
	rec = &snapshotRecorder{}
	dst, _ = newTestEngine(t, dstStore, cfg, rec)
	tickingClock(dst)
	if s, err := dst.Snapshot("fraud", 2); err != nil {
		t.Fatal(err)
	} else {
		sameScores(s)
	}
	events := paymentEvents(5, 20)
	for i, ex := range events {
		example := labeled(ex.Fields, ex.Y)
		example.Offset = int64(30 + i)
		if err := dst.Process("events", example); err != nil {
			t.Fatal(err)
		}
	}
	checkpoint(t, dst, eventsOffset(0, 50))
	p, _, err = dst.SnapshotProvenance("fraud", 3)
	if err != nil {
		t.Fatal(err)
	}
	if p.Origin != OriginImport || p.Learned != exported.Learned()+20 || len(p.SinceBegan) != 1 || p.SinceBegan[0].From != 30 || p.SinceBegan[0].To != 50 {
		t.Fatalf("the snapshot after the import: %+v", p)
	}
}
