package eddy_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// liveData is what /ui/data.json holds of a model.
type liveData struct {
	Lag            float64 `json:"consumer_lag"`
	ActionsEnabled bool    `json:"actions_enabled"`
	Models         []struct {
		Name          string    `json:"name"`
		ServedVersion uint64    `json:"served_version"`
		Pinned        bool      `json:"pinned"`
		Points        int       `json:"points"`
		RollingSeries []float64 `json:"rolling_series"`
		Snapshots     []struct {
			Version uint64 `json:"version"`
			Serving bool   `json:"serving"`
		} `json:"snapshots"`
	} `json:"models"`
}

func getLive(t *testing.T, base string) liveData {
	t.Helper()
	resp, err := http.Get(base + "/ui/data.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d liveData
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatalf("data.json: %v", err)
	}
	return d
}

// pageAction posts a live-page action with token and returns the HTTP
// status and the answer's fields.
func pageAction(t *testing.T, base, token string, form url.Values) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/ui/action", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("action answered %q: %v", body, err)
	}
	return resp.StatusCode, out
}

// TestTheLivePageShowsTheServedModelAndActsOnlyForAnAdmin runs the service
// with an auth file: the page and its data show the served version and a
// curve over time; a promotion from the page needs an admin credential
// (none: 401, a predict one: 403), and an admin's is served, pinned and
// audited under the credential's name, as the Admin RPC's would be.
func TestTheLivePageShowsTheServedModelAndActsOnlyForAnAdmin(t *testing.T) {
	authFile := filepath.Join(t.TempDir(), "auth.yaml")
	if err := os.WriteFile(authFile, []byte("credentials:\n  - {name: alice, token: alice-token-0123456789, roles: [admin]}\n  - {name: scorer, token: scorer-token-0123456789, roles: [predict]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	access, err := eddy.LoadAuthFile(authFile)
	if err != nil {
		t.Fatal(err)
	}
	broker := startBroker(t)
	cfg := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m"})
	cfg.Serving.Access = access
	svc := startTestService(t, cfg)
	base := "http://" + svc.MetricsAddr()
	for batch := range 3 {
		produceSEAEvents(t, broker, "events", 500)
		waitFor(t, 30*time.Second, "the batch learned and served", func() bool {
			m := svc.model("m")
			return m.Learned == uint64(500*(batch+1)) && m.ServedLearned == m.Learned
		})
		time.Sleep(1100 * time.Millisecond) // a sample of the page between batches
	}
	var d liveData
	waitFor(t, 10*time.Second, "the page's curve has points", func() bool {
		d = getLive(t, base)
		return len(d.Models) == 1 && d.Models[0].Points >= 2
	})
	m := d.Models[0]
	if m.Name != "m" || m.ServedVersion != svc.model("m").ServedVersion || !d.ActionsEnabled || len(m.Snapshots) < 2 {
		t.Fatalf("data.json: %+v; want model m serving v%d, actions enabled, its snapshots", d, svc.model("m").ServedVersion)
	}
	for _, v := range m.RollingSeries {
		if v < 0.5 || v > 1 {
			t.Errorf("rolling accuracy %v on the page, want SEA's (0.5-1)", v)
		}
	}
	resp, err := http.Get(base + "/ui")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`data-version="` + strconv.FormatUint(m.ServedVersion, 10) + `"`, "<svg", "rolling accuracy", `data-action="promote"`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page has no %q", want)
		}
	}

	older := m.Snapshots[len(m.Snapshots)-1].Version
	form := url.Values{"action": {"promote"}, "model": {"m"}, "version": {strconv.FormatUint(older, 10)}}
	if code, out := pageAction(t, base, "", form); code != http.StatusUnauthorized {
		t.Errorf("promote without a credential: %d %v, want 401", code, out)
	}
	if code, out := pageAction(t, base, "scorer-token-0123456789", form); code != http.StatusForbidden || !strings.Contains(out["error"].(string), "admin role") {
		t.Errorf("promote with a predict credential: %d %v, want 403 naming the admin role", code, out)
	}
	if code, out := pageAction(t, base, "alice-token-0123456789", url.Values{"action": {"delete"}, "model": {"m"}}); code != http.StatusBadRequest {
		t.Errorf("an unknown action: %d %v, want 400", code, out)
	}
	code, out := pageAction(t, base, "alice-token-0123456789", form)
	if code != http.StatusOK || out["serving_version"] != float64(older) || out["pinned"] != true {
		t.Fatalf("an admin's promote of v%d: %d %v", older, code, out)
	}
	waitFor(t, 10*time.Second, "the page shows the promoted version, pinned", func() bool {
		d := getLive(t, base)
		return d.Models[0].ServedVersion == older && d.Models[0].Pinned
	})
	audit, err := adminOf(t, svc.GRPCAddr()).ListAudit(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer alice-token-0123456789"), &eddyv1.ListAuditRequest{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(audit.GetEntries()); n != 1 || audit.GetEntries()[0].GetActor() != "alice" || audit.GetEntries()[0].GetAction() != "promote" {
		t.Fatalf("audit %v, want alice's promote from the page", audit.GetEntries())
	}
}

// TestTheLivePageIsReadOnlyWithoutAnAuthFile: open gRPC access does not
// open the page's actions.
func TestTheLivePageIsReadOnlyWithoutAnAuthFile(t *testing.T) {
	broker := startBroker(t)
	svc := startTestService(t, testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "m"}))
	base := "http://" + svc.MetricsAddr()
	if d := getLive(t, base); d.ActionsEnabled {
		t.Error("actions offered without an auth file")
	}
	code, out := pageAction(t, base, "anything", url.Values{"action": {"rollback"}, "model": {"m"}})
	if code != http.StatusForbidden || !strings.Contains(out["error"].(string), "--auth-file") {
		t.Errorf("a rollback from the page without an auth file: %d %v, want 403 saying to start with --auth-file", code, out)
	}
	resp, err := http.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/ui" {
		t.Errorf("/ led to %s, want the page", resp.Request.URL.Path)
	}
}
