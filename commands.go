package eddy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/eddyhq/eddy/learner/engine"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream"
)

// groupAdmin answers the Admin RPCs on any instance: for a model this
// instance learns, the engine runs them; for any other, the command goes
// through the group's commands topic (stream.Bus) to the instance that
// learns it, which runs it and answers on the same topic. Its effect
// reaches every instance as a champion on the snapshots topic; the issuing
// instance answers once it serves it.
type groupAdmin struct {
	local  engineAdmin
	engine *engine.Engine
	server *serving.Server
	bus    *stream.Bus
	log    *slog.Logger

	mu      sync.Mutex
	waiting map[string]chan commandResult
}

// command is a request on the commands topic.
type command struct {
	Kind    string `json:"kind"` // "command"
	ID      string `json:"id"`
	Op      string `json:"op"` // promote, rollback, release, list, schema, inspect
	Model   string `json:"model"`
	Version uint64 `json:"version,omitempty"`
	Top     int    `json:"top,omitempty"`   // inspect: how many weights; audit: how many entries
	Actor   string `json:"actor,omitempty"` // who issued it (serving.Identity), for the audit log
}

// commandResult is its answer.
type commandResult struct {
	Kind      string                 `json:"kind"` // "result"
	ID        string                 `json:"id"`
	Version   uint64                 `json:"version,omitempty"`
	Snapshots []serving.SnapshotInfo `json:"snapshots,omitempty"`
	Schema    *serving.SchemaReport  `json:"schema,omitempty"`
	Inspect   json.RawMessage        `json:"inspect,omitempty"` // an eddyv1.InspectResponse, protojson
	Audit     json.RawMessage        `json:"audit,omitempty"`   // an eddyv1.ListAuditResponse, protojson
	Config    string                 `json:"config,omitempty"`  // snapshot: the configuration that took it
	Error     string                 `json:"error,omitempty"`
	Code      string                 `json:"code,omitempty"` // not_found, precondition
}

func newGroupAdmin(e *engine.Engine, server *serving.Server, bus *stream.Bus, log *slog.Logger) *groupAdmin {
	return &groupAdmin{local: engineAdmin{e}, engine: e, server: server, bus: bus, log: log.With("component", "admin"),
		waiting: make(map[string]chan commandResult)}
}

func (a *groupAdmin) Snapshots(model string) ([]serving.SnapshotInfo, error) {
	if h := a.engine.Holds(model); h == engine.Owned || h == engine.Restored {
		return a.local.Snapshots(model) // read-only: what the local store holds serves until the group says
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.remote(ctx, command{Op: "list", Model: model})
	return res.Snapshots, err
}

// Schema describes model's schema: from the local store if this instance
// holds the model, else from the instance that learns it.
func (a *groupAdmin) Schema(model string) (serving.SchemaReport, error) {
	if h := a.engine.Holds(model); h == engine.Owned || h == engine.Restored || h == engine.Following {
		return a.local.Schema(model)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.remote(ctx, command{Op: "schema", Model: model})
	if err != nil || res.Schema == nil {
		return serving.SchemaReport{}, err
	}
	return *res.Schema, nil
}

// Inspect describes what model has learned: from the local store if this
// instance holds the model, else from the instance that learns it.
func (a *groupAdmin) Inspect(model string, version uint64, top int) (*eddyv1.InspectResponse, error) {
	if h := a.engine.Holds(model); h == engine.Owned || h == engine.Restored || h == engine.Following {
		return a.local.Inspect(model, version, top)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.remote(ctx, command{Op: "inspect", Model: model, Version: version, Top: top})
	if err != nil {
		return nil, err
	}
	out := &eddyv1.InspectResponse{}
	if err := protojson.Unmarshal(res.Inspect, out); err != nil {
		return nil, fmt.Errorf("the answer of the instance that learns model %s cannot be read: %w", model, err)
	}
	return out, nil
}

// Snapshot describes one stored snapshot of model: from the local store if
// this instance holds the model, else from the instance that learns it.
func (a *groupAdmin) Snapshot(model string, version uint64) (serving.SnapshotInfo, string, error) {
	if h := a.engine.Holds(model); h == engine.Owned || h == engine.Restored || h == engine.Following {
		return a.local.Snapshot(model, version)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.remote(ctx, command{Op: "snapshot", Model: model, Version: version})
	if err != nil {
		return serving.SnapshotInfo{}, "", err
	}
	if len(res.Snapshots) != 1 {
		return serving.SnapshotInfo{}, "", fmt.Errorf("the instance that learns model %s answered %d snapshots for version %d", model, len(res.Snapshots), version)
	}
	return res.Snapshots[0], res.Config, nil
}

// Export encodes a stored snapshot of model as an export file, on an
// instance that holds the model: an export can be larger than a message of
// the commands topic.
func (a *groupAdmin) Export(model string, version uint64) ([]byte, error) {
	if h := a.engine.Holds(model); h == engine.Owned || h == engine.Restored || h == engine.Following {
		return a.local.Export(model, version)
	}
	return nil, classified{serving.ErrPrecondition, fmt.Errorf("this instance does not hold model %s: export it from the instance that learns it (or a standby); eddy snapshots lists the versions", model)}
}

// Import seeds model with an export file on the instance that learns it:
// a file can be larger than a message of the commands topic, so the
// caller must reach that instance (eddy status names it).
func (a *groupAdmin) Import(ctx context.Context, model string, file []byte) (uint64, error) {
	if a.here(ctx, model) {
		return a.local.Import(ctx, model, file)
	}
	return 0, classified{serving.ErrPrecondition, fmt.Errorf("this instance does not learn model %s: import on the instance that does (eddy status names it)", model)}
}

// Audit lists model's audit log: from the local store if this instance
// holds the model, else from the instance that learns it.
func (a *groupAdmin) Audit(model string, limit int) (*eddyv1.ListAuditResponse, error) {
	if h := a.engine.Holds(model); h == engine.Owned || h == engine.Restored || h == engine.Following {
		return a.local.Audit(model, limit)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := a.remote(ctx, command{Op: "audit", Model: model, Top: limit})
	if err != nil {
		return nil, err
	}
	out := &eddyv1.ListAuditResponse{}
	if err := protojson.Unmarshal(res.Audit, out); err != nil {
		return nil, fmt.Errorf("the answer of the instance that learns model %s cannot be read: %w", model, err)
	}
	return out, nil
}

func (a *groupAdmin) Promote(ctx context.Context, model string, version uint64) (uint64, error) {
	if a.here(ctx, model) {
		return a.local.Promote(ctx, model, version)
	}
	return a.served(ctx, command{Op: "promote", Model: model, Version: version, Actor: serving.Identity(ctx)})
}

func (a *groupAdmin) Rollback(ctx context.Context, model string) (uint64, error) {
	if a.here(ctx, model) {
		return a.local.Rollback(ctx, model)
	}
	return a.served(ctx, command{Op: "rollback", Model: model, Actor: serving.Identity(ctx)})
}

func (a *groupAdmin) Release(ctx context.Context, model string) (uint64, error) {
	if a.here(ctx, model) {
		return a.local.Release(ctx, model)
	}
	return a.served(ctx, command{Op: "release", Model: model, Actor: serving.Identity(ctx)})
}

// here reports whether a command for model runs on this instance: it owns
// the model. While the unit is only restored (the instance has just
// started and the group has not assigned it yet) it waits for the group's
// decision, so that a command never runs on two instances.
func (a *groupAdmin) here(ctx context.Context, model string) bool {
	for a.engine.Holds(model) == engine.Restored {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return a.engine.Owns(model)
}

// served sends cmd to the model's owner and returns once this instance
// serves the version it answered.
func (a *groupAdmin) served(ctx context.Context, cmd command) (uint64, error) {
	res, err := a.remote(ctx, cmd)
	if err != nil {
		return 0, err
	}
	for {
		if snap := a.server.Current(cmd.Model); snap != nil && snap.Version() == res.Version {
			return res.Version, nil
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("the instance that learns model %s served version %d, not visible here yet: %w", cmd.Model, res.Version, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// remote sends cmd on the commands topic and waits for its answer.
func (a *groupAdmin) remote(ctx context.Context, cmd command) (commandResult, error) {
	var id [8]byte
	_, _ = rand.Read(id[:])
	cmd.Kind, cmd.ID = "command", hex.EncodeToString(id[:])
	answer := make(chan commandResult, 1)
	a.mu.Lock()
	a.waiting[cmd.ID] = answer
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		delete(a.waiting, cmd.ID)
		a.mu.Unlock()
	}()
	value, _ := json.Marshal(cmd)
	if err := a.bus.Send(ctx, []byte(cmd.Model), value); err != nil {
		return commandResult{}, err
	}
	select {
	case res := <-answer:
		switch {
		case res.Error == "":
			return res, nil
		case res.Code == "not_found":
			return res, classified{serving.ErrNotFound, errors.New(res.Error)}
		case res.Code == "precondition":
			return res, classified{serving.ErrPrecondition, errors.New(res.Error)}
		}
		return res, errors.New(res.Error)
	case <-ctx.Done():
		return commandResult{}, fmt.Errorf("no instance that learns model %s answered (is one running in the group?): %w", cmd.Model, ctx.Err())
	}
}

// listen runs the commands of models this instance learns and hands
// answers to the commands it sent, until ctx ends.
func (a *groupAdmin) listen(ctx context.Context) error {
	return a.bus.Listen(ctx, func(_, value []byte) {
		var head struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(value, &head) != nil {
			return
		}
		switch head.Kind {
		case "result":
			var res commandResult
			if json.Unmarshal(value, &res) != nil {
				return
			}
			a.mu.Lock()
			answer := a.waiting[res.ID]
			a.mu.Unlock()
			if answer != nil {
				answer <- res
			}
		case "command":
			var cmd command
			if json.Unmarshal(value, &cmd) != nil || !a.engine.Owns(cmd.Model) {
				return
			}
			go a.run(ctx, cmd) // the engine answers after a checkpoint: never hold up the listener
		}
	}, func() {})
}

// run runs a command of a model this instance learns and sends the answer.
func (a *groupAdmin) run(ctx context.Context, cmd command) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cctx = serving.WithIdentity(cctx, cmd.Actor) // who issued it on the other instance
	res := commandResult{Kind: "result", ID: cmd.ID}
	var err error
	switch cmd.Op {
	case "promote":
		res.Version, err = a.local.Promote(cctx, cmd.Model, cmd.Version)
	case "rollback":
		res.Version, err = a.local.Rollback(cctx, cmd.Model)
	case "release":
		res.Version, err = a.local.Release(cctx, cmd.Model)
	case "list":
		res.Snapshots, err = a.local.Snapshots(cmd.Model)
	case "schema":
		var r serving.SchemaReport
		if r, err = a.local.Schema(cmd.Model); err == nil {
			res.Schema = &r
		}
	case "snapshot":
		var in serving.SnapshotInfo
		if in, res.Config, err = a.local.Snapshot(cmd.Model, cmd.Version); err == nil {
			res.Snapshots = []serving.SnapshotInfo{in}
		}
	case "audit":
		var r *eddyv1.ListAuditResponse
		if r, err = a.local.Audit(cmd.Model, cmd.Top); err == nil {
			res.Audit, err = protojson.Marshal(r)
		}
	case "inspect":
		var r *eddyv1.InspectResponse
		if r, err = a.local.Inspect(cmd.Model, cmd.Version, cmd.Top); err == nil {
			res.Inspect, err = protojson.Marshal(r)
		}
	default:
		err = fmt.Errorf("unknown admin command %q", cmd.Op)
	}
	if err != nil {
		res.Error = err.Error()
		switch {
		case errors.Is(err, serving.ErrNotFound):
			res.Code = "not_found"
		case errors.Is(err, serving.ErrPrecondition):
			res.Code = "precondition"
		}
	}
	a.log.Info("admin command from another instance", "op", cmd.Op, "model", cmd.Model, "version", res.Version, "err", res.Error)
	value, _ := json.Marshal(res)
	if err := a.bus.Send(ctx, []byte(cmd.Model), value); err != nil {
		a.log.Warn("cannot answer an admin command from another instance", "op", cmd.Op, "model", cmd.Model, "err", err)
	}
}
