package engine

import (
	"fmt"
	"time"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// detection is one drift detection, recorded in the store.
type detection struct {
	at        time.Time
	partition int
	offset    int64
	summary   string
}

// watch scores the champion and the challengers of u on a labeled example
// that u's model has just learned, feeds the drift detector, and decides
// promotions of the post-drift challenger (made durable and published at the
// next checkpoint).
func (e *Engine) watch(u *modelState, fields []features.Field, ex *Example) {
	mon := u.mon
	if mon.Observe(u.model, fields, ex.Label) {
		e.detected(u, ex)
	}
	// The post-drift challenger must beat the champion and the live model:
	// it replaces both.
	if u.promotion == "" && mon.ChallengerWins() {
		mon.AdoptChallenger(u.model)
		u.lin.adoptChallenger()
		u.promotion = learner.ReasonDrift
	}
}

// detected records a drift detection that ex's error triggered (the
// monitor has started a fresh challenger that learns only from what
// follows).
func (e *Engine) detected(u *modelState, ex *Example) {
	u.lin.ChallengerBegan = u.lin.position() // the challenger learns what follows ex
	mon := u.mon
	now := e.now()
	mon.SetLastDetection(now)
	u.records = append(u.records, detection{at: now, partition: ex.Partition, offset: ex.Offset, summary: mon.Summary()})
	e.metrics.detections.WithLabelValues(u.cfg.Name, u.cfg.Drift.Detector).Inc()
	e.log.Info("drift detected", "model", u.cfg.Name, "detector", u.cfg.Drift.Detector, "partition", ex.Partition,
		"offset", ex.Offset, "state", mon.Summary(), "champion", mon.Champion().Version())
}

// writeMonitor adds u's monitor and its new detection records to batch.
// served is the snapshot this checkpoint serves once it commits (nil: the
// champion stays): the stored monitor is then the one promotion leaves in
// memory, comparisons restarted, so that a crash right after it restores
// exactly what ran.
func (e *Engine) writeMonitor(batch *store.Batch, u *modelState, served *learner.Snapshot) error {
	if served == nil {
		e.buf = u.mon.AppendState(e.buf[:0])
	} else {
		after, err := learner.NewMonitor(u.cfg, e.cfg.RollingWindow)
		if err != nil {
			return err
		}
		if _, err := after.Decode(u.model, u.mon.AppendState(e.buf[:0])); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
		promote(after, served)
		e.buf = after.AppendState(e.buf[:0])
	}
	if err := batch.Set(monitorKey(u.cfg.Name), e.buf); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	first := u.mon.Detections() - uint64(len(u.records))
	for i, d := range u.records {
		value := fmt.Sprintf("%s partition=%d offset=%d %s", d.at.UTC().Format(time.RFC3339Nano), d.partition, d.offset, d.summary)
		if err := batch.Set(detectionKey(u.cfg.Name, first+uint64(i)+1), []byte(value)); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	return nil
}
