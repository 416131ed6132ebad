package serving

import (
	"context"
	"errors"
	"io"
	"maps"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/eddyhq/eddy/features"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// Admin is what the Admin service needs from the rest of eddy: listing
// stored snapshots, pinning one to serve (Promote, Rollback; each returns
// the version serving afterwards) and releasing the pin. Implementations
// wrap ErrNotFound or ErrPrecondition so that callers get the right status
// code; any other error is INTERNAL, its text logged and never sent.
type Admin interface {
	Snapshots(model string) ([]SnapshotInfo, error)
	Promote(ctx context.Context, model string, version uint64) (uint64, error)
	Rollback(ctx context.Context, model string) (uint64, error)
	Release(ctx context.Context, model string) (uint64, error)
}

// SchemaAdmin may be implemented by an Admin that can describe a model's
// schema (the GetSchema RPC; without it GetSchema is UNIMPLEMENTED).
type SchemaAdmin interface {
	Schema(model string) (SchemaReport, error)
}

// InspectAdmin may be implemented by an Admin that can describe what a
// model has learned (the Inspect RPC; without it Inspect is
// UNIMPLEMENTED). Version 0 is the model as of its last checkpoint; top
// is how many of its largest weights to list (0: 20).
type InspectAdmin interface {
	Inspect(model string, version uint64, top int) (*eddyv1.InspectResponse, error)
}

// ExportAdmin may be implemented by an Admin that can export a stored
// snapshot as a file (the ExportSnapshot RPC; without it UNIMPLEMENTED).
type ExportAdmin interface {
	Export(model string, version uint64) ([]byte, error)
}

// ImportAdmin may be implemented by an Admin that can seed a model with an
// export file (the ImportSnapshot RPC; without it UNIMPLEMENTED). It
// returns the version serving afterwards. A file that is not a valid
// export wraps ErrInvalid; one of a model configured otherwise wraps
// ErrPrecondition.
type ImportAdmin interface {
	Import(ctx context.Context, model string, file []byte) (uint64, error)
}

// AuditAdmin may be implemented by an Admin that keeps an audit log of
// operator actions (the ListAudit RPC; without it ListAudit is
// UNIMPLEMENTED). limit is how many of the newest entries (0: all).
type AuditAdmin interface {
	Audit(model string, limit int) (*eddyv1.ListAuditResponse, error)
}

// SchemaReport describes a model's schema in force and its feature-drift
// detectors.
type SchemaReport struct {
	Schema    *features.Schema `json:"schema,omitempty"` // nil: none
	Inferring bool             `json:"inferring,omitempty"`
	InferSeen int              `json:"infer_seen,omitempty"`
	InferWant int              `json:"infer_want,omitempty"`
	Drift     []FeatureDrift   `json:"drift,omitempty"`
}

// FeatureDrift is one feature-drift detector's state.
type FeatureDrift struct {
	Feature  string   `json:"feature"`
	Distance float64  `json:"distance"`
	Ready    bool     `json:"ready"`
	Skew     *float64 `json:"skew,omitempty"` // training/serving skew, where measured
	Serving  int      `json:"serving,omitempty"`
}

// SnapshotInfo describes a stored snapshot.
type SnapshotInfo struct {
	Version uint64
	Created time.Time
	Reason  string
	Learned uint64
	Metrics map[string]float64
	Pinned  bool // an operator pinned it: it serves until released
	// Provenance is where it came from (nil: not recorded).
	Provenance *eddyv1.Provenance `json:",omitempty"`
}

// SnapshotAdmin may be implemented by an Admin that can describe one
// snapshot with its provenance and configuration (the GetSnapshot RPC;
// without it GetSnapshot is UNIMPLEMENTED).
type SnapshotAdmin interface {
	Snapshot(model string, version uint64) (SnapshotInfo, string, error)
}

// Errors an Admin wraps to choose the status code.
var (
	ErrNotFound     = errors.New("serving: not found")           // NOT_FOUND
	ErrPrecondition = errors.New("serving: precondition failed") // FAILED_PRECONDITION
	ErrInvalid      = errors.New("serving: invalid argument")    // INVALID_ARGUMENT
)

// adminServer implements eddyv1.AdminServer over an Admin.
type adminServer struct {
	eddyv1.UnimplementedAdminServer
	s     *Server
	admin Admin
}

func (a *adminServer) model(name string) error {
	if name == "" {
		return status.Error(codes.InvalidArgument, "model is required")
	}
	if _, ok := a.s.models[name]; !ok {
		return status.Errorf(codes.NotFound, "unknown model %q (serving: %s)", name, a.s.names)
	}
	return nil
}

func (a *adminServer) serving(model string) uint64 {
	if snap := a.s.Current(model); snap != nil {
		return snap.Version()
	}
	return 0
}

func (a *adminServer) ListSnapshots(ctx context.Context, req *eddyv1.ListSnapshotsRequest) (*eddyv1.ListSnapshotsResponse, error) {
	if err := a.model(req.GetModel()); err != nil {
		return nil, err
	}
	infos, err := a.admin.Snapshots(req.GetModel())
	if err != nil {
		return nil, a.statusOf("ListSnapshots", req.GetModel(), err)
	}
	resp := &eddyv1.ListSnapshotsResponse{ServingVersion: a.serving(req.GetModel())}
	for _, in := range infos {
		resp.Snapshots = append(resp.Snapshots, snapshotInfoProto(in, resp.ServingVersion))
		resp.Pinned = resp.Pinned || in.Pinned && in.Version == resp.ServingVersion
	}
	return resp, nil
}

func snapshotInfoProto(in SnapshotInfo, serving uint64) *eddyv1.SnapshotInfo {
	return &eddyv1.SnapshotInfo{
		Version: in.Version, Created: timestamppb.New(in.Created), Reason: in.Reason, Learned: in.Learned,
		Metrics: in.Metrics, Serving: in.Version == serving, Pinned: in.Pinned, Provenance: in.Provenance,
	}
}

func (a *adminServer) GetSnapshot(ctx context.Context, req *eddyv1.GetSnapshotRequest) (*eddyv1.GetSnapshotResponse, error) {
	sa, err := optional[SnapshotAdmin](a, "GetSnapshot", req.GetModel(), "describe one snapshot")
	if err != nil {
		return nil, err
	}
	in, config, err := sa.Snapshot(req.GetModel(), req.GetVersion())
	if err != nil {
		return nil, a.statusOf("GetSnapshot", req.GetModel(), err)
	}
	return &eddyv1.GetSnapshotResponse{Snapshot: snapshotInfoProto(in, a.serving(req.GetModel())), ConfigJson: config}, nil
}

func (a *adminServer) Promote(ctx context.Context, req *eddyv1.PromoteRequest) (*eddyv1.PromoteResponse, error) {
	if err := a.model(req.GetModel()); err != nil {
		return nil, err
	}
	switch {
	case req.GetAuto() && req.GetVersion() != 0:
		return nil, status.Error(codes.InvalidArgument, "auto returns to automatic promotion: give it without a version")
	case req.GetAuto():
		return a.release(ctx, req.GetModel())
	case req.GetVersion() == 0:
		return nil, status.Error(codes.InvalidArgument, "version is required (see ListSnapshots), or auto to return to automatic promotion")
	}
	v, err := a.admin.Promote(ctx, req.GetModel(), req.GetVersion())
	if err != nil {
		return nil, a.statusOf("Promote", req.GetModel(), err)
	}
	return &eddyv1.PromoteResponse{Model: req.GetModel(), ServingVersion: v, Pinned: true}, nil
}

func (a *adminServer) Rollback(ctx context.Context, req *eddyv1.RollbackRequest) (*eddyv1.PromoteResponse, error) {
	if err := a.model(req.GetModel()); err != nil {
		return nil, err
	}
	v, err := a.admin.Rollback(ctx, req.GetModel())
	if err != nil {
		return nil, a.statusOf("Rollback", req.GetModel(), err)
	}
	return &eddyv1.PromoteResponse{Model: req.GetModel(), ServingVersion: v, Pinned: true}, nil
}

func (a *adminServer) GetSchema(ctx context.Context, req *eddyv1.GetSchemaRequest) (*eddyv1.GetSchemaResponse, error) {
	sa, err := optional[SchemaAdmin](a, "GetSchema", req.GetModel(), "describe schemas")
	if err != nil {
		return nil, err
	}
	r, err := sa.Schema(req.GetModel())
	if err != nil {
		return nil, a.statusOf("GetSchema", req.GetModel(), err)
	}
	resp := &eddyv1.GetSchemaResponse{Model: req.GetModel(), Inferring: r.Inferring, InferSeen: uint64(r.InferSeen), InferWant: uint64(r.InferWant)}
	if s := r.Schema; s != nil {
		resp.NewFeatures, resp.OnViolation, resp.Strict = s.NewFeatures, s.OnViolation, s.Strict
		for _, name := range slices.Sorted(maps.Keys(s.Features)) {
			f := s.Features[name]
			resp.Features = append(resp.Features, &eddyv1.SchemaFeature{Name: name, Kind: f.Kind, Required: f.Required, Min: f.Min, Max: f.Max,
				Missing: f.Missing, Indicator: f.Indicator})
		}
	}
	for _, d := range r.Drift {
		resp.FeatureDrift = append(resp.FeatureDrift, &eddyv1.FeatureDrift{Feature: d.Feature, Distance: d.Distance, Ready: d.Ready, Skew: d.Skew, ServingValues: uint64(d.Serving)})
	}
	return resp, nil
}

func (a *adminServer) ListAudit(ctx context.Context, req *eddyv1.ListAuditRequest) (*eddyv1.ListAuditResponse, error) {
	aa, err := optional[AuditAdmin](a, "ListAudit", req.GetModel(), "list audit logs")
	if err != nil {
		return nil, err
	}
	resp, err := aa.Audit(req.GetModel(), int(req.GetLimit()))
	if err != nil {
		return nil, a.statusOf("ListAudit", req.GetModel(), err)
	}
	return resp, nil
}

func (a *adminServer) ExportSnapshot(ctx context.Context, req *eddyv1.ExportSnapshotRequest) (*eddyv1.ExportSnapshotResponse, error) {
	ea, err := optional[ExportAdmin](a, "ExportSnapshot", req.GetModel(), "export snapshots")
	if err != nil {
		return nil, err
	}
	version := req.GetVersion()
	if version == 0 {
		if version = a.serving(req.GetModel()); version == 0 {
			return nil, status.Errorf(codes.FailedPrecondition, "model %s has no snapshot serving yet: give a version (see ListSnapshots)", req.GetModel())
		}
	}
	data, err := ea.Export(req.GetModel(), version)
	if err != nil {
		return nil, a.statusOf("ExportSnapshot", req.GetModel(), err)
	}
	return &eddyv1.ExportSnapshotResponse{Data: data, Version: version}, nil
}

// MaxImportBytes bounds the export file one ImportSnapshot streams.
const MaxImportBytes = 256 << 20

func (a *adminServer) ImportSnapshot(stream grpc.ClientStreamingServer[eddyv1.ImportSnapshotRequest, eddyv1.ImportSnapshotResponse]) error {
	first, err := stream.Recv()
	if err == io.EOF {
		return status.Error(codes.InvalidArgument, "ImportSnapshot: no message: send the model and the file's first chunk")
	}
	if err != nil {
		return err
	}
	model := first.GetModel()
	ia, err := optional[ImportAdmin](a, "ImportSnapshot", model, "import snapshots")
	if err != nil {
		return err
	}
	file := first.GetChunk()
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		if len(file)+len(req.GetChunk()) > MaxImportBytes {
			return status.Errorf(codes.ResourceExhausted, "ImportSnapshot: the file is over %d MiB", MaxImportBytes>>20)
		}
		file = append(file, req.GetChunk()...)
	}
	if len(file) == 0 {
		return status.Error(codes.InvalidArgument, "ImportSnapshot: the file is empty")
	}
	version, err := ia.Import(stream.Context(), model, file)
	if err != nil {
		return a.statusOf("ImportSnapshot", model, err)
	}
	return stream.SendAndClose(&eddyv1.ImportSnapshotResponse{Model: model, Version: version})
}

// optional checks the model a request names and returns the optional part
// I of the Admin that answers method (UNIMPLEMENTED, saying what this
// server cannot do, without it).
func optional[I any](a *adminServer, method, model, what string) (I, error) {
	var none I
	if err := a.model(model); err != nil {
		return none, err
	}
	impl, ok := a.admin.(I)
	if !ok {
		return none, status.Errorf(codes.Unimplemented, "%s: this server cannot %s", method, what)
	}
	return impl, nil
}

// maxInspectTop bounds the weights one Inspect lists.
const maxInspectTop = 10000

func (a *adminServer) Inspect(ctx context.Context, req *eddyv1.InspectRequest) (*eddyv1.InspectResponse, error) {
	if req.GetTopK() > maxInspectTop {
		return nil, status.Errorf(codes.InvalidArgument, "top_k %d exceeds the limit of %d", req.GetTopK(), maxInspectTop)
	}
	ia, err := optional[InspectAdmin](a, "Inspect", req.GetModel(), "inspect models")
	if err != nil {
		return nil, err
	}
	resp, err := ia.Inspect(req.GetModel(), req.GetVersion(), int(req.GetTopK()))
	if err != nil {
		return nil, a.statusOf("Inspect", req.GetModel(), err)
	}
	return resp, nil
}

func (a *adminServer) Release(ctx context.Context, req *eddyv1.ReleaseRequest) (*eddyv1.PromoteResponse, error) {
	if err := a.model(req.GetModel()); err != nil {
		return nil, err
	}
	return a.release(ctx, req.GetModel())
}

func (a *adminServer) release(ctx context.Context, model string) (*eddyv1.PromoteResponse, error) {
	v, err := a.admin.Release(ctx, model)
	if err != nil {
		return nil, a.statusOf("Release", model, err)
	}
	return &eddyv1.PromoteResponse{Model: model, ServingVersion: v}, nil
}

// internalMessage is all a client learns of an internal error: its text
// may name keys and paths, so it goes to the server's log only.
const internalMessage = "internal error; the server log has the details"

// statusOf converts an Admin error of method to a gRPC status at this edge.
// Not-found and precondition errors are the caller's to fix and keep their
// message; anything else is logged here, once, and answered generically.
func (a *adminServer) statusOf(method, model string, err error) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, ErrPrecondition):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	a.s.log.Error("admin request failed", "method", method, "model", model, "err", err)
	return status.Error(codes.Internal, internalMessage)
}
