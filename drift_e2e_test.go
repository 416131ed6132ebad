package eddy_test

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// TestDriftIsDetectedAndAChallengerServedThroughKafka streams sea.csv
// (abrupt drifts at rows 12,500, 25,000 and 37,500) through the real service
// with ADWIN on the champion's error: every drift is detected within 1,500
// rows, a post-drift challenger is served after each, a gRPC client sees the
// version change, and a rollback RPC brings the previous version back.
func TestDriftIsDetectedAndAChallengerServedThroughKafka(t *testing.T) {
	broker := startBroker(t)
	model := learner.ModelConfig{Name: "sea", Drift: learner.DriftConfig{Detector: "adwin", Params: map[string]float64{"delta": 0.02}}}
	cfg := testConfig(broker, t.TempDir(), model)
	// Checkpoints every 1,000 events, each also a promotion check: the
	// cadence is set by the stream, not by the wall clock.
	cfg.Consumer.CheckpointEvery, cfg.Consumer.CheckpointInterval, cfg.Learner.PromoteInterval = 1000, time.Minute, time.Nanosecond
	cfg.Learner.Retain = 1000 // keep every version, to find each drift's challenger
	svc := startTestService(t, cfg)
	n, err := produceCSV(broker, "events", datasetPath(t, "sea.csv"), "label")
	if err != nil || n != 50000 {
		t.Fatalf("produced %d, %v", n, err)
	}
	waitFor(t, 120*time.Second, "50,000 examples learned", func() bool { return svc.learned("sea") == 50000 })

	detections, err := svc.Engine().Detections("sea")
	if err != nil {
		t.Fatal(err)
	}
	infos, err := svc.Engine().Snapshots("sea")
	if err != nil {
		t.Fatal(err)
	}
	var offsets []int64
	for _, d := range detections {
		offsets = append(offsets, d.Offset)
	}
	drifts := []int64{12500, 25000, 37500, 50000}
	for k, drift := range drifts[:3] {
		i := slices.IndexFunc(offsets, func(o int64) bool { return o >= drift })
		if i < 0 || offsets[i]-drift > 1500 {
			t.Errorf("drift at row %d: detections at offsets %v, none within 1,500 rows", drift, offsets)
			continue
		}
		served := slices.IndexFunc(infos, func(s engine.SnapshotInfo) bool {
			return s.Reason == learner.ReasonDrift && s.Learned > uint64(offsets[i])
		})
		if served < 0 || infos[served].Learned > uint64(drifts[k+1]) {
			t.Errorf("drift at row %d detected at offset %d: no post-drift challenger served before the next drift", drift, offsets[i])
			continue
		}
		t.Logf("drift at row %d: detected at offset %d (+%d), challenger served as v%d", drift, offsets[i], offsets[i]-drift, infos[served].Version)
	}
	promotedOnDrift := metricValue(svc.registry, "eddy_snapshots_promoted_total", map[string]string{"model": "sea", "reason": "drift"})
	if promotedOnDrift < 3 {
		t.Errorf("%v post-drift challengers served, want one per drift (3)", promotedOnDrift)
	}
	champion := metricValue(svc.registry, "eddy_champion_accuracy", map[string]string{"model": "sea", "window": "cumulative"})
	rolling := metricValue(svc.registry, "eddy_champion_accuracy", map[string]string{"model": "sea", "window": "rolling"})
	live := metricValue(svc.registry, "eddy_prequential_accuracy", map[string]string{"model": "sea", "window": "rolling"})
	t.Logf("rolling accuracy: served %.4f, live %.4f", rolling, live)
	t.Logf("%d detections, %v drift promotions, served-model prequential accuracy %.4f", len(detections), promotedOnDrift, champion)

	// The same stream without drift handling (periodic promotion at the same
	// cadence), from the same topic under another group.
	po := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "sea"})
	po.Group, po.Consumer.CheckpointEvery, po.Consumer.CheckpointInterval, po.Learner.PromoteInterval = "periodic", 1000, time.Minute, time.Nanosecond
	po.GRPCAddr, po.MetricsAddr = "127.0.0.1:0", ""
	periodic := startTestService(t, po)
	waitFor(t, 120*time.Second, "the periodic run learned 50,000", func() bool { return periodic.learned("sea") == 50000 })
	without := metricValue(periodic.registry, "eddy_champion_accuracy", map[string]string{"model": "sea", "window": "cumulative"})
	t.Logf("served-model prequential accuracy: %.4f with drift handling, %.4f without", champion, without)
	pr := metricValue(periodic.registry, "eddy_champion_accuracy", map[string]string{"model": "sea", "window": "rolling"})
	pl := metricValue(periodic.registry, "eddy_prequential_accuracy", map[string]string{"model": "sea", "window": "rolling"})
	t.Logf("rolling accuracy without drift handling: served %.4f, live %.4f", pr, pl)
	// Over the newest rows (the rolling gauges) as over the whole stream.
	if rolling <= pr {
		t.Errorf("served-model rolling accuracy %.4f with drift handling, not better than periodic promotion's %.4f", rolling, pr)
	}
	// A periodic champion is a recent copy of the live model: over the same
	// recent rows they score alike.
	if math.Abs(pr-pl) > 0.02 {
		t.Errorf("periodic promotion: served model's rolling accuracy %.4f, live model's %.4f: want them within 0.02", pr, pl)
	}
	if champion <= without {
		t.Errorf("drift handling served %.4f, not better than periodic promotion's %.4f", champion, without)
	}

	// The version a client sees, and a rollback.
	client := predictClient(t, svc.GRPCAddr())
	ask := func() uint64 {
		resp, err := client.Predict(context.Background(), &eddyv1.PredictRequest{Model: "sea",
			Features: map[string]*structpb.Value{"f1": structpb.NewNumberValue(3), "f2": structpb.NewNumberValue(4), "f3": structpb.NewNumberValue(5)}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetModelVersion()
	}
	waitFor(t, 10*time.Second, "the newest snapshot served", func() bool { return ask() == infos[len(infos)-1].Version })
	current := ask()
	conn, err := grpc.NewClient(svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	admin := eddyv1.NewAdminClient(conn)
	list, err := admin.ListSnapshots(context.Background(), &eddyv1.ListSnapshotsRequest{Model: "sea"})
	if err != nil || list.GetServingVersion() != current || len(list.GetSnapshots()) < 2 {
		t.Fatalf("ListSnapshots = %v, %v; want the serving version %d and at least 2 snapshots", list, err, current)
	}
	rolled, err := admin.Rollback(context.Background(), &eddyv1.RollbackRequest{Model: "sea"})
	if err != nil {
		t.Fatal(err)
	}
	previous := list.GetSnapshots()[len(list.GetSnapshots())-2].GetVersion()
	if rolled.GetServingVersion() != previous || ask() != previous {
		t.Fatalf("after a rollback from v%d: the RPC says v%d, Predict answers v%d; want v%d", current, rolled.GetServingVersion(), ask(), previous)
	}
	if _, err := admin.Promote(context.Background(), &eddyv1.PromoteRequest{Model: "sea", Version: current}); err != nil || ask() != current {
		t.Fatalf("promoting v%d back: %v, Predict answers v%d", current, err, ask())
	}
	if _, err := admin.Promote(context.Background(), &eddyv1.PromoteRequest{Model: "sea", Version: 999}); status.Code(err) != codes.NotFound {
		t.Fatalf("promoting a version that is not stored: %v, want NotFound", err)
	}
	t.Logf("served v%d, rolled back to v%d, promoted v%d again", current, previous, current)
}
