package engine

import (
	"context"
	"log/slog"
	"time"

	"github.com/eddyhq/eddy/learner"
)

// promotionDue reports whether the periodic check is due.
func (e *Engine) promotionDue(now time.Time) bool {
	return now.Sub(e.promoted) >= e.cfg.PromoteInterval
}

// promotions decides which models get a new snapshot at this checkpoint and
// why: a post-drift challenger that won, a model's first snapshot, and then
// either the periodic policy or (with a drift detector) the live model
// beating the champion, checked as often as the periodic policy would run.
func (e *Engine) promotions(periodic bool) map[*modelState]string {
	reasons := make(map[*modelState]string)
	for _, u := range e.states {
		if p := e.partOf(u.cfg.Name); p != nil && p.follow {
			continue // a standby: its owner promotes
		}
		learned, mon := u.model.Learned(), u.mon
		switch {
		case u.promotion != "":
			reasons[u] = u.promotion
		case learned == 0 || learned == u.snapped && mon.Champion() != nil:
		case mon.Champion() == nil:
			reasons[u] = learner.ReasonInitial
		case !mon.Challengers() && periodic:
			reasons[u] = learner.ReasonPeriodic
		case mon.Challengers() && periodic && mon.LiveWins():
			reasons[u] = learner.ReasonChallenger
		}
	}
	return reasons
}

// champion makes a durable snapshot the champion and publishes it, unless
// an operator pinned the champion: then the snapshot stays stored, unserved.
// Periodic and challenger promotions serve a newer snapshot of the same
// live model, routinely (every promote interval in the demo), so they are
// logged at debug level; the others change what serves and are logged at
// info.
func (e *Engine) champion(s *learner.Snapshot, now time.Time) {
	u := e.byName(s.Model())
	mon := u.mon
	u.promotion = ""
	if mon.Pinned() {
		mon.SetLastDetection(time.Time{}) // nothing is served for this detection
		e.log.Debug("snapshot stored, not served: the champion is pinned", "model", s.Model(), "version", s.Version(),
			"reason", s.Reason(), "champion", mon.Champion().Version())
		return
	}
	if s.Reason() == learner.ReasonDrift && !mon.LastDetection().IsZero() {
		e.metrics.detectionToServing.WithLabelValues(s.Model()).Observe(now.Sub(mon.LastDetection()).Seconds())
	}
	promote(mon, s)
	e.metrics.promotions.WithLabelValues(s.Model(), s.Reason()).Inc()
	level := slog.LevelInfo
	if s.Reason() == learner.ReasonPeriodic || s.Reason() == learner.ReasonChallenger {
		level = slog.LevelDebug
	}
	e.log.Log(context.Background(), level, "snapshot promoted", "model", s.Model(), "version", s.Version(), "reason", s.Reason(), "learned", s.Learned())
	e.publish(s)
}

// promote makes s the champion of mon, as a checkpoint that serves it does:
// a drift promotion answers the waiting detection, and only a later
// snapshot of the same live model (periodic, challenger) continues the
// detector's stream. The checkpoint stores a monitor promoted this way
// before the one in memory is.
func promote(mon *learner.Monitor, s *learner.Snapshot) {
	if s.Reason() == learner.ReasonDrift {
		mon.SetLastDetection(time.Time{})
	}
	mon.SetChampion(s, s.Reason() == learner.ReasonChallenger || s.Reason() == learner.ReasonPeriodic)
}
