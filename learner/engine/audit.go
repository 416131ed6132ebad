package engine

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// AuditEntry is one operator action on a model, as the audit log keeps it.
type AuditEntry struct {
	Sequence uint64    `json:"-"` // 1 for a model's first entry
	Time     time.Time `json:"time"`
	Actor    string    `json:"actor"`             // who: the credential's name, "anonymous" without one
	Action   string    `json:"action"`            // promote, rollback, release, import, reset
	Model    string    `json:"model"`             //
	Version  uint64    `json:"version,omitempty"` // the version asked for (promote), the exported one (import)
	From     string    `json:"from,omitempty"`    // import: the export file's model, version and sha256
	Result   string    `json:"result"`            // "ok", or the error
	Serving  uint64    `json:"serving,omitempty"` // the champion after it
}

type actorKey struct{}

// WithActor returns ctx naming who issues the admin commands run with it,
// for the audit log.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

func actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "anonymous"
}

func auditPrefix(name string) []byte { return []byte("audit/" + name + "/") }

func auditKey(name string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(auditPrefix(name), seq)
}

// recordAction queues the audit entry of an admin command, done or
// refused, for the next checkpoint, which stores it with the command's
// effect; a refused command is logged here (pin and release log theirs).
func (e *Engine) recordAction(u *modelState, req adminRequest, err error) {
	entry := AuditEntry{Time: e.now().UTC(), Actor: actorOf(req.ctx), Action: req.op.String(), Model: u.cfg.Name, Version: req.version, Result: "ok"}
	if o := req.origin; o != nil {
		entry.From = fmt.Sprintf("model %s version %d sha256 %s", o.Model, o.Version, o.SHA256)
	}
	if err != nil {
		entry.Result = err.Error()
		e.log.Info("admin command refused", "model", entry.Model, "action", entry.Action, "actor", entry.Actor, "version", entry.Version, "err", err)
	} else if c := u.mon.Champion(); c != nil && req.op != opImport {
		entry.Serving = c.Version() // pin and release log the change
	}
	u.audit = append(u.audit, entry)
	e.dirty = true
}

// writeAudit adds u's queued audit entries to batch, numbered after the
// stored ones; a done import serves served, the snapshot the checkpoint
// takes of the imported model.
func writeAudit(batch *store.Batch, u *modelState, served uint64) error {
	for i, a := range u.audit {
		if a.Action == opImport.String() && a.Result == "ok" {
			a.Serving = served
		}
		value, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("learner: audit: %w", err)
		}
		if err := batch.Set(auditKey(u.cfg.Name, u.auditSeq+uint64(i)+1), value); err != nil {
			return fmt.Errorf("learner: checkpoint: %w", err)
		}
	}
	return nil
}

// lastAuditSequence returns the sequence of the newest stored audit entry
// of model (0: none).
func lastAuditSequence(s *store.Store, model string) (uint64, error) {
	var last uint64
	prefix := auditPrefix(model)
	err := s.Scan(prefix, func(key, _ []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: audit key %q", learner.ErrCorrupt, key)
		}
		last = binary.BigEndian.Uint64(key[len(prefix):])
		return nil
	})
	return last, err
}

// Audit returns the newest limit audit entries of model (0: all), oldest
// first, as of the last checkpoint. It reads the store only and may be
// called from any goroutine.
func (e *Engine) Audit(model string, limit int) (out []AuditEntry, err error) {
	if e.byName(model) == nil {
		return nil, fmt.Errorf("%w: no model named %q", ErrSnapshotNotFound, model)
	}
	view := e.store.NewView()
	defer func() { err = errors.Join(err, view.Close()) }()
	prefix := auditPrefix(model)
	err = view.Scan(prefix, func(key, value []byte) error {
		var a AuditEntry
		if len(key) != len(prefix)+8 || json.Unmarshal(value, &a) != nil {
			return fmt.Errorf("%w: audit entry %q", learner.ErrCorrupt, key)
		}
		a.Sequence = binary.BigEndian.Uint64(key[len(prefix):])
		out = append(out, a)
		if limit > 0 && len(out) > limit {
			out = out[1:]
		}
		return nil
	})
	return out, err
}

func (op adminOp) String() string {
	switch op {
	case opPromote:
		return "promote"
	case opRollback:
		return "rollback"
	case opRelease:
		return "release"
	case opImport:
		return "import"
	}
	return "unknown"
}

func isAuditPrefix(prefix []byte) bool { return len(prefix) > 6 && string(prefix[:6]) == "audit/" }

// auditReset adds to batch the audit entry of each model reset on purpose
// (eddy serve --reset-model), after its stored ones, and returns the
// sequence of each, for the models' states once the batch commits.
func (e *Engine) auditReset(batch *store.Batch, models []string) (map[string]uint64, error) {
	seqs := make(map[string]uint64, len(models))
	for _, m := range models {
		last, err := lastAuditSequence(e.store, m)
		if err != nil {
			return nil, err
		}
		value, err := json.Marshal(AuditEntry{Time: e.now().UTC(), Actor: "serve --reset-model", Action: "reset", Model: m, Result: "ok"})
		if err != nil {
			return nil, err
		}
		if err := batch.Set(auditKey(m, last+1), value); err != nil {
			return nil, err
		}
		seqs[m] = last + 1
	}
	return seqs, nil
}
