package eddy_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// These tests run several services in one group on one broker, as several
// machines would: each has its own data directory and ports.

// owner returns which of the services learns model, or -1.
func owner(svcs []*running, model string) int {
	for i, s := range svcs {
		if s != nil && s.model(model).Learning {
			return i
		}
	}
	return -1
}

func seaRequest(model string) *eddyv1.PredictRequest {
	return &eddyv1.PredictRequest{Model: model, Features: map[string]*structpb.Value{
		"f1": structpb.NewNumberValue(3.5), "f2": structpb.NewNumberValue(4.25), "f3": structpb.NewNumberValue(7)}}
}

func TestOneInstanceLearnsAModelAndEveryInstanceServesItsChampion(t *testing.T) {
	broker := startBroker(t)
	model := learner.ModelConfig{Name: "sea", Task: learner.Binary}
	start := func(role string) *running {
		c := testConfig(broker, t.TempDir(), model)
		c.Partitions = 2
		c.Role = role
		c.Consumer.SessionTimeout = 2 * time.Second
		c.Consumer.StateInterval = 200 * time.Millisecond
		return startTestService(t, c)
	}
	svcs := []*running{start(""), start(""), start(""), start(eddy.RoleServe)}
	produceSEAEvents(t, broker, "events", 4000)
	waitFor(t, 60*time.Second, "one instance learned all 4,000 events, the others nothing", func() bool {
		learning, learned := 0, uint64(0)
		for _, s := range svcs {
			m := s.model("sea")
			if m.Learning {
				learning++
			}
			learned += m.Learned
		}
		return learning == 1 && learned == 4000
	})
	first := owner(svcs, "sea")
	for i, s := range svcs {
		if m := s.model("sea"); i != first && m.LearnedHere != 0 {
			t.Fatalf("instance %d learned %d events too: two copies of one model", i, m.LearnedHere)
		}
	}

	// Both serve the owner's champion: same version, bitwise the same
	// probability.
	agree := func(what string) uint64 {
		t.Helper()
		var version uint64
		waitFor(t, 20*time.Second, what, func() bool {
			learner := svcs[owner(svcs, "sea")]
			version = learner.model("sea").ServedVersion
			if version == 0 || learner.model("sea").ServedLearned != learner.learned("sea") {
				return false
			}
			for _, s := range svcs {
				if s != nil && s.model("sea").ServedVersion != version {
					return false
				}
			}
			return true
		})
		var probs []float64
		for _, s := range svcs {
			if s == nil {
				continue
			}
			resp, err := predictClient(t, s.GRPCAddr()).Predict(context.Background(), seaRequest("sea"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetModelVersion() != version {
				t.Fatalf("an instance answers version %d, want %d", resp.GetModelVersion(), version)
			}
			probs = append(probs, resp.GetProbability())
		}
		for _, p := range probs[1:] {
			if math.Float64bits(p) != math.Float64bits(probs[0]) {
				t.Fatalf("instances answer %v for the same request and version %d: not one model", probs, version)
			}
		}
		t.Logf("%s: every instance answers version %d, probability %v", what, version, probs[0])
		return version
	}
	v := agree("after the first 4,000 events")

	// The owner stops (a rolling restart): the other takes the model over
	// from its exported state and continues, and versions continue.
	if err := svcs[first].stop(); err != nil {
		t.Fatal(err)
	}
	svcs[first] = nil
	var survivor *running
	waitFor(t, 30*time.Second, "another instance took the model over", func() bool {
		i := owner(svcs, "sea")
		if i >= 0 {
			survivor = svcs[i]
		}
		return i >= 0
	})
	produceSEAEvents(t, broker, "events", 2000)
	waitFor(t, 60*time.Second, "the survivor learned exactly 6,000", func() bool { return survivor.learned("sea") >= 6000 })
	time.Sleep(500 * time.Millisecond)
	if got := survivor.learned("sea"); got != 6000 {
		t.Fatalf("after the handover the model learned %d, want exactly 6000", got)
	}
	if got := survivor.model("sea").LearnedHere; got != 2000 {
		t.Fatalf("the new owner learned %d events itself, want the 2,000 new ones: the handover replayed %d", got, int(got)-2000)
	}
	w := agree("after the handover")
	if w <= v {
		t.Fatalf("the new owner serves version %d, not after the old owner's %d", w, v)
	}

	// An operator rollback sent to the serve-only replica, which learns
	// nothing: the owner runs it and every instance serves its answer.
	replica := svcs[3]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rolled, err := adminOf(t, replica.GRPCAddr()).Rollback(ctx, &eddyv1.RollbackRequest{Model: "sea"})
	if err != nil || !rolled.GetPinned() || rolled.GetServingVersion() >= w {
		t.Fatalf("Rollback on the replica = %v, %v; want a pinned version before v%d", rolled, err, w)
	}
	back := rolled.GetServingVersion()
	waitFor(t, 20*time.Second, "every instance serving the rolled-back version", func() bool {
		for _, s := range svcs {
			if s != nil && s.model("sea").ServedVersion != back {
				return false
			}
		}
		return true
	})
	list, err := adminOf(t, replica.GRPCAddr()).ListSnapshots(ctx, &eddyv1.ListSnapshotsRequest{Model: "sea"})
	if err != nil || list.GetServingVersion() != back || !list.GetPinned() {
		t.Fatalf("ListSnapshots on the replica = %v, %v; want v%d pinned", list, err, back)
	}
	t.Logf("a rollback sent to the replica: every instance serves v%d (was v%d)", back, w)
}

// TestAStandbyServesTheOwnersPredictionsWithEntityHistories runs the shipped
// elec2 pipeline (windows, lags and targets over the entity's history) on
// two instances: the one that does not own the model follows its topic as a
// standby, so that Predict, which reads the entity's history, answers the
// same on both once it has caught up.
func TestAStandbyServesTheOwnersPredictionsWithEntityHistories(t *testing.T) {
	broker := startBroker(t)
	if _, err := produceCSV(broker, "events", datasetPath(t, "elec2.csv"), "up"); err != nil {
		t.Fatal(err)
	}
	start := func(role string) *running {
		c := withConfigFile(t, testConfig(broker, t.TempDir(), learner.ModelConfig{}), filepath.Join(".deploy", "examples", "elec2.yaml"))
		c.Consumer.SessionTimeout = 2 * time.Second
		c.Role = role
		return startTestService(t, c)
	}
	svcs := []*running{start(""), start("")}
	replica := start(eddy.RoleServe)
	waitFor(t, 120*time.Second, "the owner and the standby through the stream", func() bool {
		a, b := svcs[0].model("elec2"), svcs[1].model("elec2")
		return a.Learning != b.Learning && a.Standby != b.Standby && a.Learned == 45312 && b.Learned == 45312 &&
			a.ServedVersion != 0 && a.ServedVersion == b.ServedVersion && a.ServedLearned == 45312
	})
	standby := 0
	if svcs[1].model("elec2").Standby {
		standby = 1
	}
	if got := svcs[standby].model("elec2").LearnedHere; got != 0 {
		t.Fatalf("the standby counts %d examples as learned by itself", got)
	}
	req := &eddyv1.PredictRequest{Model: "elec2", Features: map[string]*structpb.Value{
		"day": structpb.NewNumberValue(3), "period": structpb.NewNumberValue(0.5), "nswprice": structpb.NewNumberValue(0.07),
		"nswdemand": structpb.NewNumberValue(0.45), "vicprice": structpb.NewNumberValue(0.003), "vicdemand": structpb.NewNumberValue(0.42),
		"transfer": structpb.NewNumberValue(0.41)}}
	waitFor(t, 60*time.Second, "the replica serving the owner's version", func() bool {
		return replica.model("elec2").ServedVersion == svcs[1-standby].model("elec2").ServedVersion
	})
	waitFor(t, 60*time.Second, "the replica caught up (gRPC health SERVING)", func() bool { return healthOf(t, replica.GRPCAddr()) == healthpb.HealthCheckResponse_SERVING })
	var probs []float64
	for _, s := range append(svcs, replica) {
		resp, err := predictClient(t, s.GRPCAddr()).Predict(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		probs = append(probs, resp.GetProbability())
	}
	if math.Float64bits(probs[0]) != math.Float64bits(probs[1]) || math.Float64bits(probs[0]) != math.Float64bits(probs[2]) {
		t.Fatalf("owner, standby and replica answer %v for the same request: their histories differ", probs)
	}
	t.Logf("owner, standby and serve-only replica all answer %v", probs[0])
}

func healthOf(t *testing.T, addr string) healthpb.HealthCheckResponse_ServingStatus {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "eddy.v1.Inference"})
	if err != nil {
		return healthpb.HealthCheckResponse_UNKNOWN
	}
	return resp.GetStatus()
}

// TestMembersWithAnotherConfigurationOfAModelAreReportedNotMixed starts a
// second instance whose model of the same name differs (another learning
// rate): the group keeps the model with the instance that runs the
// reference configuration, never gives it to the other, and the leader
// reports the conflict (eddy_group_config_mismatches).
func TestMembersWithAnotherConfigurationOfAModelAreReportedNotMixed(t *testing.T) {
	broker := startBroker(t)
	start := func(lr float64) *running {
		c := testConfig(broker, t.TempDir(), learner.ModelConfig{Name: "sea", Optimizer: learner.OptimizerConfig{LR: lr}})
		c.Consumer.SessionTimeout = 2 * time.Second
		return startTestService(t, c)
	}
	a := start(0.01)
	produceSEAEvents(t, broker, "events", 1000)
	waitFor(t, 30*time.Second, "the first instance learning", func() bool { return a.learned("sea") == 1000 })
	b := start(0.5)
	waitFor(t, 30*time.Second, "the conflict reported", func() bool {
		return a.gauge("eddy_group_config_mismatches", nil)+b.gauge("eddy_group_config_mismatches", nil) >= 1
	})
	produceSEAEvents(t, broker, "events", 1000)
	waitFor(t, 30*time.Second, "the reference instance learning on", func() bool { return a.learned("sea") == 2000 })
	if m := b.model("sea"); m.Learning || m.LearnedHere != 0 {
		t.Fatalf("the instance with another configuration learns the model (%+v)", m)
	}
}
