package stream

import (
	"context"
	"errors"
	"time"
)

// Temporary is implemented by Handler errors that a retry may cure (a full
// disk, say): a Checkpoint that fails with one pauses the Consumer instead
// of stopping it. While paused it handles no event (the fetched ones wait,
// offsets do not advance), retries the checkpoint every second, and serves
// the Handler's Waker; once a checkpoint succeeds it goes on where it was.
type Temporary interface {
	error
	Temporary() bool
}

// Discarder may be implemented by a Handler that can drop what it handled
// since its last successful Checkpoint by reading its stored state again.
// If a generation ends while the Consumer is paused, the final checkpoint
// cannot be written either: the Consumer then discards, so that the next
// generation resumes from the stored offsets with the stored state. Without
// a Discarder it stops with the error, as for any other.
type Discarder interface {
	Discard() error
}

// pauseRetry is how often a paused Consumer tries its checkpoint again.
const pauseRetry = time.Second

// errPausedOut ends a generation that ended while paused.
var errPausedOut = errors.New("stream: the generation ended while the checkpoint failed")

func temporary(err error) bool {
	var t Temporary
	return errors.As(err, &t) && t.Temporary()
}

// checkpointOrPause checkpoints; if that fails with a Temporary error it
// pauses until a checkpoint succeeds, the generation ends or ctx ends.
func (c *Consumer) checkpointOrPause(ctx, gctx context.Context, g *generation, wake <-chan struct{}) error {
	err := c.checkpoint(ctx, g)
	if err == nil || !temporary(err) {
		return err
	}
	since := time.Now()
	c.pausedSince.Store(since.UnixNano())
	c.pauseCause.Store(err.Error())
	c.metrics.paused.Set(1)
	c.log.Warn("checkpoint failed; learning paused until it can be written (predictions are still served; nothing is lost)", "err", err)
	defer func() {
		c.pausedSince.Store(0)
		c.metrics.paused.Set(0)
	}()
	retry := time.NewTicker(pauseRetry)
	defer retry.Stop()
	for {
		select {
		case <-gctx.Done():
			return errPausedOut
		case <-ctx.Done():
			return errPausedOut
		case <-wake:
		case <-retry.C:
		}
		err := c.checkpoint(ctx, g)
		switch {
		case err == nil:
			c.log.Info("checkpoint written again; learning resumes", "paused_for", time.Since(since).Round(time.Millisecond))
			return nil
		case !temporary(err):
			return err
		}
		c.pauseCause.Store(err.Error())
	}
}

// PausedSince returns since when a failing checkpoint has paused learning,
// and its error, or the zero time while learning runs. Safe for concurrent
// use.
func (c *Consumer) PausedSince() (time.Time, string) {
	ns := c.pausedSince.Load()
	if ns == 0 {
		return time.Time{}, ""
	}
	cause, _ := c.pauseCause.Load().(string)
	return time.Unix(0, ns), cause
}

// endPaused is what a generation that ended while paused returns: with a
// Discarder, nil after discarding (its final checkpoint could not be
// written either); else the checkpoint's error.
func (c *Consumer) endPaused(ctx context.Context, g *generation) error {
	err := c.checkpoint(ctx, g)
	if err == nil || !temporary(err) {
		return err
	}
	d, ok := c.handler.(Discarder)
	if !ok {
		return err
	}
	c.log.Warn("the generation ended while the checkpoint failed: what was learned since the last checkpoint is discarded and will be learned again from the stored offsets", "err", err)
	return d.Discard()
}
