package learner

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrNoPreviousVersion is returned by Rollback when the champion is the
// oldest stored snapshot.
var ErrNoPreviousVersion = errors.New("learner: no earlier snapshot to roll back to")

// SnapshotInfo describes a stored snapshot.
type SnapshotInfo struct {
	Version uint64
	Created time.Time
	Reason  string
	Learned uint64
	Metrics Metrics
}

// Snapshots lists the stored snapshots of a model, oldest first. It reads
// the store only and is safe to call from any goroutine.
func (e *Engine) Snapshots(model string) ([]SnapshotInfo, error) {
	versions, err := e.store.SnapshotVersions(model)
	if err != nil {
		return nil, err
	}
	var out []SnapshotInfo
	for _, v := range versions {
		s, err := e.Snapshot(model, v)
		if err != nil {
			return nil, err
		}
		out = append(out, SnapshotInfo{Version: v, Created: s.created, Reason: s.reason, Learned: s.learned, Metrics: s.metrics})
	}
	return out, nil
}

// adminRequest is a command for the engine's goroutine.
type adminRequest struct {
	model   string
	version uint64 // 0: roll back to the version before the champion
	done    chan adminResult
}

type adminResult struct {
	version uint64
	err     error
}

// Promote makes a stored snapshot the champion of a model and serves it. It
// may be called from any goroutine: the command runs on the engine's
// goroutine at its next event or tick (at least once per checkpoint
// interval), and Promote waits for it or for ctx.
func (e *Engine) Promote(ctx context.Context, model string, version uint64) (uint64, error) {
	if version == 0 {
		return 0, fmt.Errorf("%w: version 0", ErrSnapshotNotFound)
	}
	return e.request(ctx, model, version)
}

// Rollback makes the stored snapshot before the current champion the
// champion. Like Promote, it may be called from any goroutine.
func (e *Engine) Rollback(ctx context.Context, model string) (uint64, error) {
	return e.request(ctx, model, 0)
}

func (e *Engine) request(ctx context.Context, model string, version uint64) (uint64, error) {
	req := adminRequest{model: model, version: version, done: make(chan adminResult, 1)}
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
// it) without waiting for an event or a tick.
func (e *Engine) Wake() <-chan struct{} { return e.wake }

// runAdmin executes queued admin commands; engine goroutine only.
func (e *Engine) runAdmin() {
	for {
		select {
		case req := <-e.admin:
			v, err := e.promoteStored(req.model, req.version)
			req.done <- adminResult{v, err}
		default:
			return
		}
	}
}

// promoteStored makes a stored version (or, for version 0, the one before
// the champion) the champion. The choice is stored at the next checkpoint;
// the engine marks itself dirty so that one happens.
func (e *Engine) promoteStored(model string, version uint64) (uint64, error) {
	var m *Model
	for _, candidate := range e.models {
		if candidate.cfg.Name == model {
			m = candidate
		}
	}
	if m == nil {
		return 0, fmt.Errorf("%w: no model named %q", ErrSnapshotNotFound, model)
	}
	reason := ReasonManual
	if version == 0 {
		reason = ReasonRollback
		if m.mon.champion == nil {
			return 0, fmt.Errorf("%w: model %s serves no snapshot", ErrNoPreviousVersion, model)
		}
		versions, err := e.store.SnapshotVersions(model)
		if err != nil {
			return 0, err
		}
		for _, v := range versions {
			if v < m.mon.champion.version {
				version = v
			}
		}
		if version == 0 {
			return 0, fmt.Errorf("%w: model %s serves version %d, the oldest kept", ErrNoPreviousVersion, model, m.mon.champion.version)
		}
	}
	snap, err := e.Snapshot(model, version)
	if err != nil {
		return 0, err
	}
	m.mon.setChampion(snap, false)
	e.dirty = true
	e.metrics.promotions.WithLabelValues(model, reason).Inc()
	e.log.Info("snapshot promoted by admin", "model", model, "version", version, "reason", reason)
	e.publish(snap)
	return version, nil
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
	prefix := []byte("detection/" + model + "/")
	err := e.store.scan(prefix, func(key, value []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: detection key %q", ErrCorrupt, key)
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
