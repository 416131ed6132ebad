package serving

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// Roles a Credential may hold.
const (
	// RolePredict may call Predict and PredictBatch.
	RolePredict = "predict"
	// RoleRead may call the Admin RPCs that change nothing (ListSnapshots,
	// GetSnapshot, GetSchema, Inspect, ListAudit).
	RoleRead = "read"
	// RoleAdmin may call every RPC.
	RoleAdmin = "admin"
)

// Credential is a named identity and what it may do. A client presents it
// as a bearer token (the metadata "authorization: Bearer <token>", the
// scheme in any case, RFC 6750) or, with mutual TLS, as a client
// certificate whose subject is Subject.
type Credential struct {
	Name    string   `yaml:"name"`
	Token   string   `yaml:"token"`   // bearer token; empty: none
	Subject string   `yaml:"subject"` // client certificate subject, as x509's Name.String() writes it ("CN=ops,O=Example"); empty: none
	Roles   []string `yaml:"roles"`
}

// Access is who may call what: the credentials and whether Predict needs
// one. With no credential at all every RPC is open (a server on loopback).
// Otherwise the Admin RPCs need a credential with the read role (those
// that change nothing) or the admin role (all), and Predict needs one with
// the predict (or admin) role when RequirePredict is set. Health checking
// and server reflection are never checked.
type Access struct {
	RequirePredict bool         `yaml:"require_predict"`
	Credentials    []Credential `yaml:"credentials"`
}

// minTokenLength is the shortest token Validate accepts.
const minTokenLength = 16

// Validate reports the first problem, naming the credential.
func (a Access) Validate() error {
	names := map[string]bool{}
	tokens := map[string]bool{}
	for i, c := range a.Credentials {
		what := fmt.Sprintf("credential %d (%q)", i+1, c.Name)
		switch {
		case c.Name == "":
			return fmt.Errorf("%w: credential %d has no name", ErrInvalidConfig, i+1)
		case names[c.Name]:
			return fmt.Errorf("%w: two credentials are named %q", ErrInvalidConfig, c.Name)
		case c.Token == "" && c.Subject == "":
			return fmt.Errorf("%w: %s has neither a token nor a certificate subject", ErrInvalidConfig, what)
		case c.Token != "" && len(c.Token) < minTokenLength:
			return fmt.Errorf("%w: %s has a token of %d characters; use at least %d (e.g. openssl rand -hex 32)", ErrInvalidConfig, what, len(c.Token), minTokenLength)
		case strings.ContainsAny(c.Token, " \t\r\n"):
			return fmt.Errorf("%w: %s has a token with spaces or line breaks, which no client can send in a header", ErrInvalidConfig, what)
		case c.Token != "" && tokens[c.Token]:
			return fmt.Errorf("%w: %s has the token of another credential", ErrInvalidConfig, what)
		case len(c.Roles) == 0:
			return fmt.Errorf("%w: %s has no roles (want some of %s, %s, %s)", ErrInvalidConfig, what, RolePredict, RoleRead, RoleAdmin)
		}
		for _, r := range c.Roles {
			if r != RolePredict && r != RoleRead && r != RoleAdmin {
				return fmt.Errorf("%w: %s has an unknown role %q (want %s, %s or %s)", ErrInvalidConfig, what, r, RolePredict, RoleRead, RoleAdmin)
			}
		}
		names[c.Name], tokens[c.Token] = true, c.Token != ""
	}
	if a.RequirePredict && len(a.Credentials) == 0 {
		return fmt.Errorf("%w: require_predict without any credential would refuse every prediction", ErrInvalidConfig)
	}
	return nil
}

// may reports whether c's roles allow an RPC needing role.
func (c *Credential) may(role string) bool {
	return slices.Contains(c.Roles, RoleAdmin) || slices.Contains(c.Roles, role)
}

// Anonymous is the identity of a call that presented no credential where
// none is needed.
const Anonymous = "anonymous"

type identityKey struct{}

// Identity returns the name of the credential the call of ctx presented
// (Anonymous if none): what the audit log records.
func Identity(ctx context.Context) string {
	if id, ok := ctx.Value(identityKey{}).(string); ok {
		return id
	}
	return Anonymous
}

// WithIdentity returns ctx carrying identity, as authorize gives it to
// handlers (for callers of the Admin interface other than the server, such
// as tests and tools).
func WithIdentity(ctx context.Context, identity string) context.Context {
	return context.WithValue(ctx, identityKey{}, identity)
}

// SetAccess replaces who may call what, at once for every later call (for
// a reloaded auth file). An invalid Access is refused and changes nothing.
func (s *Server) SetAccess(a Access) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if s.cfg.AdminToken != "" {
		a.Credentials = append(slices.Clone(a.Credentials), Credential{Name: "admin-token", Token: s.cfg.AdminToken, Roles: []string{RoleAdmin}})
	}
	s.access.Store(&a)
	return nil
}

// readOnlyAdmin lists the Admin methods that change nothing.
var readOnlyAdmin = map[string]bool{
	eddyv1.Admin_ListSnapshots_FullMethodName: true,
	eddyv1.Admin_GetSchema_FullMethodName:     true,
	eddyv1.Admin_Inspect_FullMethodName:       true,
	eddyv1.Admin_ListAudit_FullMethodName:     true,
	eddyv1.Admin_GetSnapshot_FullMethodName:   true,
}

// roleFor returns the role method needs under a ("" when it is open).
func roleFor(method string, a *Access) string {
	switch {
	case len(a.Credentials) == 0:
		return ""
	case strings.HasPrefix(method, "/"+eddyv1.Admin_ServiceDesc.ServiceName+"/"):
		if readOnlyAdmin[method] {
			return RoleRead
		}
		return RoleAdmin
	case (method == eddyv1.Inference_Predict_FullMethodName || method == eddyv1.Inference_PredictBatch_FullMethodName) && a.RequirePredict:
		return RolePredict
	}
	return ""
}

var errUnknownCredential = errors.New("unknown credential")

// identify returns the credential the call of ctx presents: nil when it
// presents none, errUnknownCredential when it presents one that is not in
// a. Every token is compared, each in constant time.
func identify(ctx context.Context, a *Access) (*Credential, error) {
	var token string
	var presented bool
	for _, v := range metadata.ValueFromIncomingContext(ctx, "authorization") { // not FromIncomingContext, which copies every header
		if scheme, t, ok := strings.Cut(v, " "); ok && strings.EqualFold(scheme, "bearer") {
			token, presented = strings.TrimSpace(t), true
		}
	}
	var found *Credential
	if presented {
		for i := range a.Credentials {
			c := &a.Credentials[i]
			if c.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(c.Token)) == 1 {
				found = c
			}
		}
		if found == nil {
			return nil, errUnknownCredential
		}
		return found, nil
	}
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok && len(info.State.VerifiedChains) > 0 && len(info.State.VerifiedChains[0]) > 0 {
			subject := info.State.VerifiedChains[0][0].Subject.String()
			for i := range a.Credentials {
				if c := &a.Credentials[i]; c.Subject != "" && c.Subject == subject {
					return c, nil
				}
			}
			return nil, fmt.Errorf("%w: client certificate %q", errUnknownCredential, subject)
		}
	}
	return nil, nil
}

// authorize admits a unary call (admit) and gives the handler the caller's
// identity.
func (s *Server) authorize(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.admit(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

// authorizeStream admits a streaming call as authorize does a unary one.
func (s *Server) authorizeStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, err := s.admit(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return handler(srv, identifiedStream{ss, ctx})
}

// identifiedStream is a server stream whose context names the caller.
type identifiedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identifiedStream) Context() context.Context { return s.ctx }

// admit admits a call of method if the method is open or the call's
// credential holds the role the method needs, and returns ctx with the
// caller's identity.
func (s *Server) admit(ctx context.Context, method string) (context.Context, error) {
	a := s.access.Load()
	if len(a.Credentials) == 0 {
		return ctx, nil // every call is open and no credential can be named: Predict pays nothing here
	}
	need := roleFor(method, a)
	c, err := identify(ctx, a)
	if need == "" {
		if c != nil {
			ctx = WithIdentity(ctx, c.Name)
		}
		return ctx, nil
	}
	switch {
	case err != nil:
		return nil, status.Errorf(codes.Unauthenticated, "%v: send \"authorization: Bearer <token>\" with the token of a credential of the auth file (or a client certificate it names)", err)
	case c == nil:
		return nil, status.Errorf(codes.Unauthenticated, "%s needs a credential with the %s role: send \"authorization: Bearer <token>\" (or a client certificate the auth file names)", shortMethod(method), need)
	case !c.may(need):
		return nil, status.Errorf(codes.PermissionDenied, "credential %q (roles %s) may not call %s, which needs the %s role", c.Name, strings.Join(c.Roles, ", "), shortMethod(method), need)
	}
	return WithIdentity(ctx, c.Name), nil
}

func shortMethod(full string) string { return full[strings.LastIndex(full, "/")+1:] }
