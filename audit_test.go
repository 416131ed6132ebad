package eddy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// TestAnAuthenticatedRollbackIsAudited serves SEA events behind an auth
// file (loaded as eddy serve --auth-file does): a predict credential
// cannot call Admin RPCs, a wrong token is UNAUTHENTICATED, and a rollback
// by an admin credential appears in the audit log (ListAudit, by a read
// credential) with the operator's name, also after a restart.
func TestAnAuthenticatedRollbackIsAudited(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(authFile, []byte(`credentials:
  - {name: alice, token: alice-token-0123456789, roles: [admin]}
  - {name: dashboards, token: dash-token-0123456789, roles: [read]}
  - {name: scorer, token: scorer-token-0123456789, roles: [predict]}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	access, err := eddy.LoadAuthFile(authFile)
	if err != nil {
		t.Fatal(err)
	}
	broker, dir := startBroker(t), t.TempDir()
	cfg := testConfig(broker, dir, learner.ModelConfig{Name: "m"})
	cfg.Serving.Access = access
	svc := startTestService(t, cfg)
	for batch := range 4 { // periodic promotions between batches
		produceSEAEvents(t, broker, "events", 500)
		waitFor(t, 30*time.Second, "the batch learned and served", func() bool {
			m := svc.model("m")
			return m.Learned == uint64(500*(batch+1)) && m.ServedLearned == m.Learned
		})
	}
	admin := adminOf(t, svc.GRPCAddr())
	as := func(token string) context.Context {
		return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
	}
	if _, err := admin.Rollback(as("scorer-token-0123456789"), &eddyv1.RollbackRequest{Model: "m"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a rollback by a predict credential: %v, want PERMISSION_DENIED", err)
	}
	if _, err := admin.Rollback(as("wrong-token-0123456789"), &eddyv1.RollbackRequest{Model: "m"}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("a rollback with a wrong token: %v, want UNAUTHENTICATED", err)
	}
	if _, err := admin.Rollback(as("dash-token-0123456789"), &eddyv1.RollbackRequest{Model: "m"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a rollback by a read credential: %v, want PERMISSION_DENIED", err)
	}
	rolled, err := admin.Rollback(as("alice-token-0123456789"), &eddyv1.RollbackRequest{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	audited := func(svc *running) *eddyv1.AuditEntry {
		t.Helper()
		resp, err := adminOf(t, svc.GRPCAddr()).ListAudit(as("dash-token-0123456789"), &eddyv1.ListAuditRequest{Model: "m"})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetEntries()) != 1 {
			t.Fatalf("audit log %v, want the one rollback", resp.GetEntries())
		}
		return resp.GetEntries()[0]
	}
	e := audited(svc)
	if e.GetActor() != "alice" || e.GetAction() != "rollback" || e.GetResult() != "ok" || e.GetServing() != rolled.GetServingVersion() {
		t.Fatalf("audit entry %v; want alice's rollback to v%d", e, rolled.GetServingVersion())
	}
	t.Logf("audit: #%d %s %s by %s: %s, serving v%d", e.GetSequence(), e.GetTime().AsTime().Format(time.RFC3339), e.GetAction(), e.GetActor(), e.GetResult(), e.GetServing())

	// Every snapshot's offsets since its parent tile the partition.
	list, err := admin.ListSnapshots(as("dash-token-0123456789"), &eddyv1.ListSnapshotsRequest{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	hash := ""
	for i, s := range list.GetSnapshots() {
		p := s.GetProvenance()
		if p == nil || len(p.GetSinceParent()) != 1 || p.GetBuild() == "" || len(p.GetConfigHash()) != 64 || (hash != "" && p.GetConfigHash() != hash) {
			t.Fatalf("v%d: provenance %v", s.GetVersion(), p)
		}
		hash = p.GetConfigHash()
		r := p.GetSinceParent()[0]
		if r.GetFrom() != next || r.GetTo() < r.GetFrom() || p.GetSinceBegan()[0].GetFrom() != 0 || (i > 0 && p.GetParent() != list.GetSnapshots()[i-1].GetVersion()) {
			t.Fatalf("v%d: since parent [%d, %d) after %d, since began from %d, parent v%d", s.GetVersion(), r.GetFrom(), r.GetTo(), next, p.GetSinceBegan()[0].GetFrom(), p.GetParent())
		}
		next = r.GetTo()
	}
	if next != 2000 {
		t.Fatalf("the snapshots' ranges end at %d, want 2000 (every event learned is in one)", next)
	}
	one, err := admin.GetSnapshot(as("dash-token-0123456789"), &eddyv1.GetSnapshotRequest{Model: "m", Version: list.GetSnapshots()[0].GetVersion()})
	if err != nil || !strings.Contains(one.GetConfigJson(), `"Name":"m"`) {
		t.Fatalf("GetSnapshot: %v, %v", one, err)
	}
	t.Logf("%d snapshots; their offsets since the parent tile [0, 2000) of partition 0; configuration sha256 %s; build %q",
		len(list.GetSnapshots()), hash, list.GetSnapshots()[0].GetProvenance().GetBuild())
	if err := svc.stop(); err != nil {
		t.Fatal(err)
	}
	again := startTestService(t, cfg)
	if e := audited(again); e.GetActor() != "alice" {
		t.Fatalf("after a restart: %v", e)
	}
}
