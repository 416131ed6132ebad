package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// TestStatsDescribeTheLastCheckpointAndAreSafeFromAnyGoroutine reads Stats
// from another goroutine while the engine learns and checkpoints (the race
// detector checks the sharing), and checks what one Stats says against the
// engine: they change at checkpoints only, all at once.
func TestStatsDescribeTheLastCheckpointAndAreSafeFromAnyGoroutine(t *testing.T) {
	store, _ := openTestStore(t, t.TempDir())
	cfg := Config{PromoteInterval: time.Nanosecond, Models: []learner.ModelConfig{
		{Name: "fraud", Topic: "events", LabelsTopic: "labels", Features: features.Config{Lags: []features.LagConfig{{Field: "amount", Lags: []int{1}}}}},
		{Name: "spend", Topic: "events", Task: learner.Regression},
	}}
	e, _ := newTestEngine(t, store, cfg, nil)
	tickingClock(e)
	if s := e.Stats(); len(s.Models) != 2 || s.Checkpoints != 0 || s.Models[0].Learned != 0 || s.Models[0].ServedVersion != 0 {
		t.Fatalf("Stats of a new engine = %+v", s)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s := e.Stats()
			if m := s.Models[0]; m.Learned != m.Metrics.N || m.ServedVersion > m.StoredVersion {
				t.Errorf("one Stats mixes two moments: %+v", m)
				return
			}
		}
	}()
	events := paymentEvents(41, 400)
	for i, ex := range events {
		key := []byte{byte('a' + i%4)}
		id := []byte{byte(i), byte(i >> 8)}
		if err := e.Process("events", &Example{Key: key, ID: id, Fields: ex.Fields, Label: ex.Y, HasLabel: i%10 != 0}); err != nil {
			t.Fatal(err)
		}
		if i%100 == 99 {
			checkpoint(t, e, eventsOffset(0, int64(i+1)))
		}
	}
	close(stop)
	wg.Wait()

	s := e.Stats()
	fraud, spend := s.Models[0], s.Models[1]
	if s.Checkpoints != 4 || fraud.Model != "fraud" || spend.Model != "spend" {
		t.Fatalf("Stats = %+v, want 4 checkpoints of fraud and spend", s)
	}
	m := e.Models()[0]
	if fraud.Learned != 360 || fraud.LearnedByEngine != 360 || fraud.Unlabeled != 40 || fraud.PendingLabels != 40 || fraud.Entities != 4 ||
		fraud.StoredVersion != 4 || fraud.ServedVersion != 4 || fraud.Metrics != m.Metrics() || spend.PendingLabels != 0 || spend.Entities != 0 {
		t.Errorf("fraud's Stats = %+v; want 360 learned, 40 unlabeled and waiting, 4 entities, v4 stored and served, the model's metrics", fraud)
	}

	// Between checkpoints Stats stay as they were; an operator's pin shows
	// at the checkpoint that stores it.
	if err := e.Process("events", labeled(events[0].Fields, events[0].Y)); err != nil {
		t.Fatal(err)
	}
	if got := e.Stats().Models[0]; got.Learned != 360 {
		t.Errorf("Stats changed between checkpoints: learned %d", got.Learned)
	}
	if _, err := runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 2) }); err != nil {
		t.Fatal(err)
	}
	if got := e.Stats().Models[0]; got.ServedVersion != 2 || !got.Pinned || got.StoredVersion != 5 || got.Learned != 361 {
		t.Errorf("after a Promote of v2: %+v; want v2 served and pinned, v5 the newest stored, 361 learned", got)
	}
}
