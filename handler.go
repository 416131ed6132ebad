package eddy

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner/engine"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream"
)

// engineHandler adapts an engine.Engine to the stream.Handler the consumer
// calls. It is wiring only: it converts types, nothing else.
type engineHandler struct {
	engine  *engine.Engine
	fields  []features.Field
	offsets []engine.Offset
}

func newEngineHandler(e *engine.Engine) *engineHandler { return &engineHandler{engine: e} }

func (h *engineHandler) NextOffsets(topic string) map[int]int64 { return h.engine.NextOffsets(topic) }

// Wake lets admin commands reach the engine's goroutine without waiting for
// an event (stream.Waker).
func (h *engineHandler) Wake() <-chan struct{} { return h.engine.Wake() }

func (h *engineHandler) Handle(topic string, ev *stream.Event) error {
	h.fields = h.fields[:0]
	for i := range ev.Fields {
		f := &ev.Fields[i]
		h.fields = append(h.fields, features.Field{Name: f.Name, Kind: kindOf(f.Kind), Num: f.Num, Str: f.Str})
	}
	return h.engine.Process(topic, &engine.Example{Partition: ev.Partition, Offset: ev.Offset, Key: ev.Key, ID: ev.ID,
		Time: ev.Time, Fields: h.fields, Label: ev.Label, HasLabel: ev.HasLabel})
}

func (h *engineHandler) HandleLabel(topic string, l *stream.Label) error {
	return h.engine.Label(topic, l.ID, l.Value)
}

func kindOf(k stream.FieldKind) features.Kind {
	switch k {
	case stream.KindString:
		return features.String
	case stream.KindBool:
		return features.Bool
	}
	return features.Number
}

func (h *engineHandler) Checkpoint(offsets []stream.Offset) error {
	h.offsets = h.offsets[:0]
	for _, o := range offsets {
		h.offsets = append(h.offsets, engine.Offset{
			TopicPartition: engine.TopicPartition{Topic: o.Topic, Partition: o.Partition},
			Next:           o.Next,
		})
	}
	return h.engine.Checkpoint(h.offsets)
}

// engineAdmin adapts the learner's snapshot administration to the serving
// Admin interface, translating its errors into serving's.
type engineAdmin struct{ engine *engine.Engine }

// Schema describes model's schema and feature-drift detectors as the local
// store holds them.
func (a engineAdmin) Schema(model string) (serving.SchemaReport, error) {
	r, err := a.engine.Schema(model)
	if err != nil {
		return serving.SchemaReport{}, adminError(err)
	}
	out := serving.SchemaReport{Schema: r.Schema, Inferring: r.Inferring, InferSeen: r.InferSeen, InferWant: r.InferWant}
	for _, d := range r.Drift {
		out.Drift = append(out.Drift, serving.FeatureDrift{Feature: d.Feature, Distance: d.Distance, Ready: d.Ready, Skew: d.Skew, Serving: d.Serving})
	}
	return out, nil
}

// Inspect describes what model has learned, as the local store holds it.
func (a engineAdmin) Inspect(model string, version uint64, top int) (*eddyv1.InspectResponse, error) {
	in, err := a.engine.Inspect(model, version, top)
	if err != nil {
		return nil, adminError(err)
	}
	return inspectionProto(in, version == 0), nil
}

func (a engineAdmin) Snapshots(model string) ([]serving.SnapshotInfo, error) {
	infos, err := a.engine.Snapshots(model)
	if err != nil {
		return nil, adminError(err)
	}
	out := make([]serving.SnapshotInfo, 0, len(infos))
	for _, in := range infos {
		out = append(out, snapshotInfo(in))
	}
	return out, nil
}

func snapshotInfo(in engine.SnapshotInfo) serving.SnapshotInfo {
	return serving.SnapshotInfo{Version: in.Version, Created: in.Created, Reason: in.Reason, Learned: in.Learned, Metrics: metricsMap(in.Metrics),
		Pinned: in.Pinned, Provenance: provenanceProto(in.Provenance)}
}

// Snapshot describes one stored snapshot of model, with its provenance and
// configuration.
func (a engineAdmin) Snapshot(model string, version uint64) (serving.SnapshotInfo, string, error) {
	infos, err := a.engine.Snapshots(model)
	if err != nil {
		return serving.SnapshotInfo{}, "", adminError(err)
	}
	for _, in := range infos {
		if in.Version == version {
			config := ""
			if in.Provenance != nil {
				_, data, err := a.engine.SnapshotProvenance(model, version)
				if err != nil {
					return serving.SnapshotInfo{}, "", adminError(err)
				}
				config = string(data)
			}
			return snapshotInfo(in), config, nil
		}
	}
	return serving.SnapshotInfo{}, "", adminError(fmt.Errorf("%w: model %s version %d is not stored (ListSnapshots lists those that are)", engine.ErrSnapshotNotFound, model, version))
}

func provenanceProto(p *engine.Provenance) *eddyv1.Provenance {
	if p == nil {
		return nil
	}
	ts := func(t time.Time) *timestamppb.Timestamp {
		if t.IsZero() {
			return nil
		}
		return timestamppb.New(t)
	}
	ranges := func(rs []engine.OffsetRange) []*eddyv1.OffsetRange {
		var out []*eddyv1.OffsetRange
		for _, r := range rs {
			out = append(out, &eddyv1.OffsetRange{Topic: r.Topic, Partition: int32(r.Partition), From: r.From, To: r.To})
		}
		return out
	}
	return &eddyv1.Provenance{Parent: p.Parent, ConfigHash: p.ConfigHash, Build: p.Build, Detection: p.Detection, Learned: p.Learned,
		LearnedSinceParent: p.LearnedSinceParent, Rejected: p.Rejected, RejectedSinceParent: p.RejectedSinceParent,
		SinceParent: ranges(p.SinceParent), SinceBegan: ranges(p.SinceBegan),
		FirstEventTime: ts(p.FirstEventTime), LastEventTime: ts(p.LastEventTime), BeganEventTime: ts(p.BeganEventTime), NewestEventTime: ts(p.NewestEventTime),
		Origin: p.Origin, Imported: importedFrom(p.Imported)}
}

func importedFrom(o *engine.ImportOrigin) *eddyv1.ImportedFrom {
	if o == nil {
		return nil
	}
	return &eddyv1.ImportedFrom{Model: o.Model, Version: o.Version, Learned: o.Learned, ConfigHash: o.ConfigHash, Build: o.Build, Sha256: o.SHA256}
}

// Export encodes a stored snapshot of model as an export file.
func (a engineAdmin) Export(model string, version uint64) ([]byte, error) {
	for _, mc := range a.engine.Configs() {
		if mc.Name == model {
			data, err := exportSnapshot(a.engine, mc, version)
			return data, adminError(err)
		}
	}
	return nil, adminError(fmt.Errorf("%w: no model named %q", engine.ErrSnapshotNotFound, model))
}

// Import seeds model with an export file (importExport).
func (a engineAdmin) Import(ctx context.Context, model string, file []byte) (uint64, error) {
	return importExport(asActor(ctx), a.engine, model, file)
}

// Audit lists model's audit log as the local store holds it.
func (a engineAdmin) Audit(model string, limit int) (*eddyv1.ListAuditResponse, error) {
	entries, err := a.engine.Audit(model, limit)
	if err != nil {
		return nil, adminError(err)
	}
	out := &eddyv1.ListAuditResponse{Model: model}
	for _, e := range entries {
		out.Entries = append(out.Entries, &eddyv1.AuditEntry{Sequence: e.Sequence, Time: timestamppb.New(e.Time), Actor: e.Actor,
			Action: e.Action, Version: e.Version, Result: e.Result, Serving: e.Serving})
	}
	return out, nil
}

// asActor gives the engine the caller's identity, for the audit log.
func asActor(ctx context.Context) context.Context {
	return engine.WithActor(ctx, serving.Identity(ctx))
}

func (a engineAdmin) Promote(ctx context.Context, model string, version uint64) (uint64, error) {
	v, err := a.engine.Promote(asActor(ctx), model, version)
	return v, adminError(err)
}

func (a engineAdmin) Rollback(ctx context.Context, model string) (uint64, error) {
	v, err := a.engine.Rollback(asActor(ctx), model)
	return v, adminError(err)
}

func (a engineAdmin) Release(ctx context.Context, model string) (uint64, error) {
	v, err := a.engine.Release(asActor(ctx), model)
	return v, adminError(err)
}

func adminError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, engine.ErrSnapshotNotFound):
		return classified{serving.ErrNotFound, err}
	case errors.Is(err, engine.ErrNoPreviousVersion):
		return classified{serving.ErrPrecondition, err}
	}
	return err
}

// classified gives a learner error the serving error that picks its status
// code, without adding that error's text to the message a client reads.
type classified struct{ kind, err error }

func (c classified) Error() string   { return c.err.Error() }
func (c classified) Unwrap() []error { return []error{c.kind, c.err} }

// Units, Acquire, Export and Relinquish make the engine a stream.Owner:
// its units of ownership move between the members of the group.
func (h *engineHandler) Units() []stream.Unit {
	var out []stream.Unit
	for _, u := range h.engine.Units() {
		out = append(out, stream.Unit{Name: u.Name, Topics: u.Topics, Hash: u.Hash, Standby: u.Standby})
	}
	return out
}

func (h *engineHandler) Acquire(unit string, remote *stream.Checkpoint, epoch uint64) error {
	return h.engine.Acquire(unit, unitState(remote), epoch)
}

// unitState is the engine's view of an exported state; nil stays nil.
func unitState(cp *stream.Checkpoint) *engine.UnitState {
	if cp == nil {
		return nil
	}
	return &engine.UnitState{Epoch: cp.Epoch, Seq: cp.Seq, Data: cp.Data}
}

func (h *engineHandler) Export(unit string) (*stream.Checkpoint, error) {
	st, err := h.engine.Export(unit)
	if err != nil {
		return nil, err
	}
	return &stream.Checkpoint{Unit: unit, Epoch: st.Epoch, Seq: st.Seq, Data: st.Data}, nil
}

func (h *engineHandler) Relinquish(unit string) error { return h.engine.Relinquish(unit) }

// Discard makes the engine a stream.Discarder.
func (h *engineHandler) Discard() error { return h.engine.Discard() }

func (h *engineHandler) Follow(unit string, remote *stream.Checkpoint) error {
	return h.engine.Follow(unit, unitState(remote))
}
