package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// TestAnExportedModelScoresOfflineAsItServes serves phishing.csv through
// Kafka, exports the serving snapshot with eddy export, and checks that
// the file's snapshot answers a Predict bitwise as the service does, that
// eddy evaluate --model-file scores the file with it without learning
// (the same accuracy from two runs, n = 1,250), and that a file with one
// byte changed, or cut short, is refused naming the problem. eddy import
// seeds the model of a second service, on its own broker and store, with
// the file: it serves a version that answers the Predict bitwise as the
// first service's, with provenance and an audit entry naming the import;
// the server itself refuses a changed file (INVALID_ARGUMENT naming the
// checksum).
func TestAnExportedModelScoresOfflineAsItServes(t *testing.T) {
	broker := startBroker(t)
	file := datasetPath(t, "phishing.csv")
	svc := startTestService(t, testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "phishing"}))
	if _, stderr, err := runCLI(t, nil, "produce", "--file", file, "--brokers", broker, "--topic", "events", "--target", "is_phishing"); err != nil {
		t.Fatalf("produce: %v\n%s", err, stderr)
	}
	waitFor(t, 60*time.Second, "1,250 rows learned and served", func() bool {
		m, _ := svc.Stats().Model("phishing")
		return m.Learned == 1250 && m.ServedLearned == 1250
	})
	out := filepath.Join(t.TempDir(), "phishing.eddy")
	printed, _, err := runCLI(t, nil, "export", "--model", "phishing", "--addr", svc.GRPCAddr(), "-o", out)
	if err != nil || !strings.Contains(printed, "exported model phishing version") {
		t.Fatalf("export: %v\n%s", err, printed)
	}
	exp, err := eddy.LoadExport(out)
	if err != nil {
		t.Fatal(err)
	}
	if exp.Header.Learned != 1250 || exp.Header.Provenance == nil || exp.Header.Provenance.SinceBegan[0].To != 1250 || exp.Config.Name != "phishing" {
		t.Fatalf("export header %+v", exp.Header)
	}
	features := map[string]*structpb.Value{"popup_window": structpb.NewNumberValue(0), "https": structpb.NewNumberValue(1), "long_url": structpb.NewNumberValue(1)}
	resp, err := predictClientCLI(t, svc.GRPCAddr()).Predict(context.Background(), &eddyv1.PredictRequest{Model: "phishing", Features: features})
	if err != nil {
		t.Fatal(err)
	}
	offline, _, _ := exp.Score(nil, requestFields(features))
	if resp.GetModelVersion() != exp.Header.Version || math.Float64bits(offline) != math.Float64bits(resp.GetProbability()) {
		t.Fatalf("served v%d %v, exported v%d %v", resp.GetModelVersion(), resp.GetProbability(), exp.Header.Version, offline)
	}

	score := func() map[string]any {
		t.Helper()
		stdout, stderr, err := runCLI(t, nil, "evaluate", "--file", file, "--target", "is_phishing", "--model-file", out, "--json")
		if err != nil {
			t.Fatalf("evaluate --model-file: %v\n%s", err, stderr)
		}
		var s map[string]any
		if err := json.Unmarshal([]byte(stdout), &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	first, second := score(), score()
	if first["n"] != 1250.0 || first["accuracy"] != second["accuracy"] || first["accuracy"].(float64) < 0.85 {
		t.Fatalf("evaluate --model-file: %v, then %v", first, second)
	}
	t.Logf("the exported v%d scores phishing.csv at accuracy %.4f, log loss %.4f, without learning (the served model learned it at %.4f prequentially)",
		exp.Header.Version, first["accuracy"], first["log_loss"], exp.Metrics().Accuracy)

	data, _ := os.ReadFile(out)
	changed := append([]byte(nil), data...)
	changed[len(changed)/2] ^= 1

	otherBroker := startBroker(t)
	other := startTestService(t, testOptions(otherBroker, t.TempDir(), learner.ModelConfig{Name: "phishing"}))
	printed, _, err = runCLI(t, nil, "import", out, "--addr", other.GRPCAddr())
	if err != nil || !strings.Contains(printed, "into model phishing: version 1 serves") {
		t.Fatalf("import: %v\n%s", err, printed)
	}
	imported, err := predictClientCLI(t, other.GRPCAddr()).Predict(context.Background(), &eddyv1.PredictRequest{Model: "phishing", Features: features})
	if err != nil {
		t.Fatal(err)
	}
	if imported.GetModelVersion() != 1 || math.Float64bits(imported.GetProbability()) != math.Float64bits(resp.GetProbability()) {
		t.Fatalf("the other service serves v%d %v after the import; the first served v%d %v", imported.GetModelVersion(), imported.GetProbability(), resp.GetModelVersion(), resp.GetProbability())
	}
	printed, _, err = runCLI(t, nil, "snapshots", "--model", "phishing", "--version", "1", "--addr", other.GRPCAddr())
	if err != nil || !strings.Contains(printed, fmt.Sprintf("lineage: began with an import of model phishing v%d (learned 1250", exp.Header.Version)) {
		t.Fatalf("snapshots --version 1 after the import: %v\n%s", err, printed)
	}
	if printed, _, err = runCLI(t, nil, "audit", "--model", "phishing", "--addr", other.GRPCAddr()); err != nil || !strings.Contains(printed, "import") {
		t.Fatalf("audit after the import: %v\n%s", err, printed)
	}
	if _, _, err := runCLI(t, nil, "replay", "--model", "phishing", "--addr", other.GRPCAddr(), "--brokers", otherBroker); err == nil || !strings.Contains(err.Error(), "began with an import of model phishing") {
		t.Errorf("replay of an imported lineage: %v, want it refused naming the import", err)
	}
	if _, _, err := runCLI(t, nil, "import", "--file", filepath.Join(t.TempDir(), "missing.eddy"), "--addr", other.GRPCAddr()); err == nil {
		t.Error("importing a missing file succeeded")
	}
	conn, err := grpc.NewClient(other.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	stream, err := eddyv1.NewAdminClient(conn).ImportSnapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(changed); i += 1000 {
		req := &eddyv1.ImportSnapshotRequest{Chunk: changed[i:min(i+1000, len(changed))]}
		if i == 0 {
			req.Model = "phishing"
		}
		if err := stream.Send(req); err != nil {
			break
		}
	}
	if _, err := stream.CloseAndRecv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Errorf("the server took a changed file: %v, want INVALID_ARGUMENT naming the checksum", err)
	}
	for name, bad := range map[string][]byte{"one byte changed": changed, "cut short": data[:len(data)-100], "not an export": []byte("hello")} {
		p := filepath.Join(t.TempDir(), "bad.eddy")
		os.WriteFile(p, bad, 0o600)
		_, _, err := runCLI(t, nil, "evaluate", "--file", file, "--target", "is_phishing", "--model-file", p)
		want := map[string]string{"one byte changed": "checksum mismatch", "cut short": "checksum mismatch", "not an export": "does not start as one"}[name]
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", name, err, want)
		}
	}
}

func predictClientCLI(t *testing.T, addr string) eddyv1.InferenceClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eddyv1.NewInferenceClient(conn)
}

// requestFields converts request features as Predict does, sorted by name
// as Predict sorts them.
func requestFields(m map[string]*structpb.Value) []features.Field {
	var out []features.Field
	for _, name := range slices.Sorted(maps.Keys(m)) {
		out = append(out, features.Field{Name: []byte(name), Kind: features.Number, Num: m[name].GetNumberValue()})
	}
	return out
}
