package eddy_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
	"github.com/eddyhq/eddy/stream/devbroker"
)

// TestABrokerOutageIsVisibleAndLosesNothing stops the broker under a
// running service and starts it again on the same port and data: while it
// is down /healthz answers 503 and eddy_kafka_broker_up is 0; afterwards
// eddy resumes by itself and learns every event exactly once.
func TestABrokerOutageIsVisibleAndLosesNothing(t *testing.T) {
	dataDir := t.TempDir()
	b, err := devbroker.Start(devbroker.Config{DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	addr, port := b.Addr(), b.Port()
	cfg := testConfig(addr, t.TempDir(), learner.ModelConfig{Name: "m"})
	svc := startTestService(t, cfg)
	produceSEAEvents(t, addr, "events", 5000)
	waitFor(t, 30*time.Second, "the first 5,000 learned", func() bool { return svc.learned("m") == 5000 })

	b.Close()
	health := func() (int, string) {
		resp, err := http.Get("http://" + svc.MetricsAddr() + "/healthz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	waitFor(t, 10*time.Second, "the outage to show", func() bool {
		code, _ := health()
		return code == http.StatusServiceUnavailable && svc.gauge("eddy_kafka_broker_up", map[string]string{}) == 0
	})
	_, body := health()
	t.Logf("during the outage /healthz says: %s", strings.TrimSpace(body))

	b, err = devbroker.Start(devbroker.Config{Port: port, DataDir: dataDir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	waitFor(t, 30*time.Second, "the broker to be seen again", func() bool {
		code, _ := health()
		return code == http.StatusOK && svc.gauge("eddy_kafka_broker_up", map[string]string{}) == 1
	})
	if err := produceN(context.Background(), []string{addr}, "events", 5000); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "all 10,000 learned", func() bool { return svc.learned("m") == 10000 })
	if err := svc.stop(); err != nil {
		t.Fatal(err)
	}
	if got := svc.learned("m"); got != 10000 {
		t.Fatalf("learned %d, want exactly 10,000", got)
	}
}

// TestRollbackDuringABrokerOutageIsServedAtOnce rolls a model back while no
// broker answers. The consumer is then between generations, retrying its
// join; admin commands used to wait for the next generation (and run late,
// after the client had been told they failed). Now Rollback answers within
// its deadline and Predict serves the version it names.
func TestRollbackDuringABrokerOutageIsServedAtOnce(t *testing.T) {
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	cfg := testConfig(addr, t.TempDir(), learner.ModelConfig{Name: "m"})
	cfg.Consumer.SessionTimeout = 2 * time.Second
	svc := startTestService(t, cfg)
	for i := 0; i < 3; i++ { // three batches, so that there are snapshots to roll back to
		produceSEAEvents(t, addr, "events", 1000)
		want := uint64(1000 * (i + 1))
		waitFor(t, 30*time.Second, "a batch learned", func() bool { return svc.learned("m") == want })
		time.Sleep(300 * time.Millisecond) // a promotion interval passes
	}
	conn, err := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := eddyv1.NewAdminClient(conn)
	before, err := admin.ListSnapshots(context.Background(), &eddyv1.ListSnapshotsRequest{Model: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if len(before.GetSnapshots()) < 2 {
		t.Fatalf("%d snapshots before the outage, want at least 2", len(before.GetSnapshots()))
	}

	b.Close()
	waitFor(t, 10*time.Second, "the outage to show", func() bool { return svc.gauge("eddy_kafka_broker_up", map[string]string{}) == 0 })
	time.Sleep(3 * time.Second) // past the session timeout: the generation has ended

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	resp, err := admin.Rollback(ctx, &eddyv1.RollbackRequest{Model: "m"})
	if err != nil {
		t.Fatalf("Rollback during the outage: %v", err)
	}
	if resp.GetServingVersion() >= before.GetServingVersion() {
		t.Fatalf("rolled back to version %d, not before %d", resp.GetServingVersion(), before.GetServingVersion())
	}
	got, err := predictClient(t, svc.GRPCAddr()).Predict(context.Background(), &eddyv1.PredictRequest{Model: "m",
		Features: map[string]*structpb.Value{"f1": structpb.NewNumberValue(3), "f2": structpb.NewNumberValue(4), "f3": structpb.NewNumberValue(5)}})
	if err != nil {
		t.Fatal(err)
	}
	if got.GetModelVersion() != resp.GetServingVersion() {
		t.Fatalf("Predict answers version %d, Rollback said %d", got.GetModelVersion(), resp.GetServingVersion())
	}
}
