package serving

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// Page actions: what an operator may do from the live page, each the
// Admin RPC of the same name.
const (
	ActionPromote  = "promote"  // serve a stored version, pinned (Promote)
	ActionRollback = "rollback" // serve the version before the serving one, pinned (Rollback)
	ActionRelease  = "release"  // back to automatic promotion (Release)
)

// PageAction runs an admin action for a caller outside gRPC (the live page
// on the metrics listener), presenting token as a bearer credential. It
// goes through the Admin RPC's own checks, roles and audit, so the page
// can do no more than `eddy promote|rollback|release` with the same
// credential. Unlike the gRPC API, it needs an auth file: with open access
// (no credentials) the page acts for nobody, since the metrics listener is
// usually reachable by more people than the admin API. Errors are gRPC
// statuses.
func (s *Server) PageAction(ctx context.Context, token, action, model string, version uint64) (*eddyv1.PromoteResponse, error) {
	if s.admin == nil {
		return nil, status.Error(codes.Unimplemented, "this server has no admin API")
	}
	if len(s.access.Load().Credentials) == 0 {
		return nil, status.Error(codes.PermissionDenied, "the page acts only with an admin credential: start eddy with an auth file (--auth-file) and enter an admin token")
	}
	var method string
	switch action {
	case ActionPromote:
		method = eddyv1.Admin_Promote_FullMethodName
	case ActionRollback:
		method = eddyv1.Admin_Rollback_FullMethodName
	case ActionRelease:
		method = eddyv1.Admin_Release_FullMethodName
	default:
		return nil, status.Errorf(codes.InvalidArgument, "unknown action %q: promote, rollback or release", action)
	}
	ctx = metadata.NewIncomingContext(ctx, metadata.Pairs("authorization", "Bearer "+token))
	ctx, err := s.admit(ctx, method)
	if err != nil {
		return nil, err
	}
	a := &adminServer{s: s, admin: s.admin}
	switch action {
	case ActionPromote:
		return a.Promote(ctx, &eddyv1.PromoteRequest{Model: model, Version: version})
	case ActionRollback:
		return a.Rollback(ctx, &eddyv1.RollbackRequest{Model: model})
	}
	return a.Release(ctx, &eddyv1.ReleaseRequest{Model: model})
}

// HasCredentials reports whether an auth file's credentials guard the
// server: the live page offers its actions only then.
func (s *Server) HasCredentials() bool { return len(s.access.Load().Credentials) > 0 }
