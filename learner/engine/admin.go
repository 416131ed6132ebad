package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/eddyhq/eddy/learner"
)

// ErrNoPreviousVersion is returned by Rollback when the champion is the
// oldest stored snapshot.
var ErrNoPreviousVersion = errors.New("learner: no earlier snapshot to roll back to")

// adminOp is what an admin command does.
type adminOp uint8

const (
	opPromote  adminOp = iota // pin a stored version
	opRollback                // pin the version before the champion
	opRelease                 // unpin: serve the newest, resume automatic promotion
	opImport                  // seed the live model with an exported snapshot
)

// adminRequest is a command for the engine's goroutine.
type adminRequest struct {
	ctx     context.Context // a request whose context ended before it runs is dropped
	op      adminOp
	model   string
	version uint64         // opPromote only
	seed    *learner.Model // opImport only: the exported snapshot's model
	origin  *ImportOrigin  // opImport only
	done    chan adminResult
}

type adminResult struct {
	version uint64
	err     error
}

// adminAnswer is a command that ran and waits for the checkpoint that makes
// it durable.
type adminAnswer struct {
	u    *modelState
	done chan adminResult
}

// Promote makes a stored snapshot the champion of a model, serves it, and
// pins it: automatic promotion keeps creating snapshots but serves none of
// them until Release. It returns the served version.
//
// Promote may be called from any goroutine: the command runs on the engine's
// goroutine at its next event, tick or wake-up (see Wake) and Promote
// returns once a checkpoint has made it durable and the version serves, or
// when ctx is done. A command whose ctx is done before the engine's
// goroutine picks it up is never run.
func (e *Engine) Promote(ctx context.Context, model string, version uint64) (uint64, error) {
	if version == 0 {
		return 0, fmt.Errorf("%w: version 0", ErrSnapshotNotFound)
	}
	return e.request(ctx, adminRequest{op: opPromote, model: model, version: version})
}

// Rollback makes the stored snapshot before the current champion the
// champion and pins it, like Promote (from a pinned champion it goes back
// one more). ErrNoPreviousVersion if none is stored.
func (e *Engine) Rollback(ctx context.Context, model string) (uint64, error) {
	return e.request(ctx, adminRequest{op: opRollback, model: model})
}

// Release ends a pin: the newest stored snapshot serves at once (the one
// automatic promotion would be serving had there been no pin) and automatic
// promotion resumes. Releasing an unpinned model changes nothing. It
// returns the served version and runs like Promote.
func (e *Engine) Release(ctx context.Context, model string) (uint64, error) {
	return e.request(ctx, adminRequest{op: opRelease, model: model})
}

// Import seeds a model with a snapshot exported from another eddy (or from
// this one): the live model takes over the snapshot's whole state (weights,
// optimizer, scaler, classes, prequential record), a new snapshot of it is
// stored and served at the next checkpoint, any pin is released, and the
// model's lineage begins anew there (Provenance.Origin import, Imported
// naming the export). Per-entity histories stay: they are data, not model.
// snapshot is the stored snapshot as exported; exported is the
// configuration of the model that took it, which must learn and predict
// like this model's (learner.SameState) or Import refuses naming the
// setting that differs. It returns the served version and runs like
// Promote.
func (e *Engine) Import(ctx context.Context, model string, snapshot []byte, exported learner.ModelConfig, origin ImportOrigin) (uint64, error) {
	u := e.byName(model)
	if u == nil {
		return 0, fmt.Errorf("%w: no model named %q", ErrSnapshotNotFound, model)
	}
	if diff, same := learner.SameState(exported, u.cfg); !same {
		return 0, fmt.Errorf("%w: the exported model is configured otherwise than model %s: %s", ErrImportMismatch, model, diff)
	}
	seed, err := learner.DecodeSnapshotModel(exported, e.cfg.RollingWindow, snapshot)
	if err != nil {
		return 0, err
	}
	return e.request(ctx, adminRequest{op: opImport, model: model, seed: seed, origin: &origin, version: origin.Version})
}

// ErrImportMismatch is returned by Import when the exported model's
// configuration does not match the model it would seed.
var ErrImportMismatch = errors.New("learner: cannot import")

func (e *Engine) request(ctx context.Context, req adminRequest) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	req.ctx, req.done = ctx, make(chan adminResult, 1)
	select {
	case e.admin <- req:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case e.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	select {
	case res := <-req.done:
		return res.version, res.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// Wake returns a channel that receives a value when an admin command waits
// for the engine's goroutine; the consumer then calls Checkpoint (which runs
// it and makes it durable) without waiting for an event or a tick.
func (e *Engine) Wake() <-chan struct{} { return e.wake }

// runAdmin executes queued admin commands; engine goroutine only. A command
// that fails is answered at once; one that changed something is answered by
// answerAdmin after the checkpoint that stores it.
func (e *Engine) runAdmin() {
	for {
		select {
		case req := <-e.admin:
			if err := req.ctx.Err(); err != nil {
				req.done <- adminResult{err: err} // its caller is gone: never run it
				continue
			}
			u := e.byName(req.model)
			if u == nil {
				req.done <- adminResult{err: fmt.Errorf("%w: no model named %q", ErrSnapshotNotFound, req.model)}
				continue
			}
			err := e.runCommand(u, req)
			e.recordAction(u, req, err)
			if err != nil {
				req.done <- adminResult{err: err}
				continue
			}
			e.dirty = true
			e.answers = append(e.answers, adminAnswer{u: u, done: req.done})
		default:
			return
		}
	}
}

// runCommand applies one admin command to u's monitor.
func (e *Engine) runCommand(u *modelState, req adminRequest) error {
	switch req.op {
	case opImport:
		return e.seed(u, req.seed, req.origin, actorOf(req.ctx))
	case opRelease:
		return e.release(u, actorOf(req.ctx))
	case opRollback:
		version, err := e.previousVersion(u)
		if err != nil {
			return err
		}
		return e.pin(u, version, learner.ReasonRollback, actorOf(req.ctx))
	}
	return e.pin(u, req.version, learner.ReasonManual, actorOf(req.ctx))
}

// pin makes a stored version u's champion until released. Pinning the
// champion itself keeps its detector and comparisons running.
func (e *Engine) pin(u *modelState, version uint64, reason, actor string) error {
	mon := u.mon
	from := uint64(0)
	if mon.Champion() != nil {
		from = mon.Champion().Version()
	}
	if version != from {
		snap, err := loadSnapshot(e.store, u.model, version)
		if err != nil {
			return err
		}
		mon.SetChampion(snap, false)
	}
	mon.SetPinned(true)
	e.metrics.promotions.WithLabelValues(u.cfg.Name, reason).Inc()
	e.log.Info("champion pinned by an operator; automatic promotion paused until release", "model", u.cfg.Name,
		"version", version, "previous", from, "reason", reason, "newest", u.model.Version(), "actor", actor)
	return nil
}

// release ends u's pin and serves its newest snapshot.
func (e *Engine) release(u *modelState, actor string) error {
	mon := u.mon
	if !mon.Pinned() {
		return nil
	}
	from, newest := mon.Champion().Version(), u.model.Version()
	if newest != from {
		snap, err := loadSnapshot(e.store, u.model, newest)
		if err != nil {
			return err
		}
		mon.SetChampion(snap, false)
		e.metrics.promotions.WithLabelValues(u.cfg.Name, learner.ReasonRelease).Inc()
	}
	mon.SetPinned(false)
	e.log.Info("champion released by an operator; automatic promotion resumes", "model", u.cfg.Name,
		"version", mon.Champion().Version(), "previous", from, "actor", actor)
	return nil
}

// seed makes from u's live model (Import): the next checkpoint stores a
// snapshot of it and serves it.
func (e *Engine) seed(u *modelState, from *learner.Model, origin *ImportOrigin, actor string) error {
	if err := u.model.Seed(from); err != nil {
		return fmt.Errorf("%w: %w", ErrImportMismatch, err)
	}
	u.mon.DropChallenger()
	u.mon.SetPinned(false)
	u.lin.restart(origin, u.model.Learned())
	u.promotion = learner.ReasonImport
	e.log.Info("model seeded by an operator with an exported snapshot; it serves from the next checkpoint", "model", u.cfg.Name,
		"from_model", origin.Model, "from_version", origin.Version, "learned", origin.Learned, "sha256", origin.SHA256, "actor", actor)
	return nil
}

// answerAdmin answers the commands run since the last checkpoint that
// committed, once a checkpoint that stores them has: each model's champion
// is published (after any automatic promotion, so the final choice serves)
// and the served version returned. A checkpoint that fails answers nothing:
// the commands' effect stays in memory, to be stored by the next
// checkpoint, which then answers them (a caller whose context ends first
// hears that instead).
func (e *Engine) answerAdmin() {
	published := make(map[*modelState]bool)
	for _, a := range e.answers {
		if !published[a.u] {
			published[a.u] = true
			e.publish(a.u.mon.Champion())
		}
		a.done <- adminResult{version: a.u.mon.Champion().Version()}
	}
	e.answers = e.answers[:0]
}

// Detection is a recorded drift detection.
type Detection struct {
	Sequence uint64 // 1 for a model's first detection
	Record   string // time, partition, offset and detector state
	Offset   int64  // offset of the event whose error triggered it
}

// Detections lists the recorded drift detections of a model, oldest first.
// It reads the store only and is safe to call from any goroutine.
func (e *Engine) Detections(model string) ([]Detection, error) {
	var out []Detection
	prefix := detectionPrefix(model)
	err := e.store.Scan(prefix, func(key, value []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: detection key %q", learner.ErrCorrupt, key)
		}
		d := Detection{Sequence: binary.BigEndian.Uint64(key[len(prefix):]), Record: string(value), Offset: -1}
		if _, rest, ok := strings.Cut(d.Record, " offset="); ok {
			if n, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64); err == nil {
				d.Offset = n
			}
		}
		out = append(out, d)
		return nil
	})
	return out, err
}
