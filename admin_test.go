package eddy_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/eddyhq/eddy"
	"github.com/eddyhq/eddy/learner"
	eddyv1 "github.com/eddyhq/eddy/proto/eddy/v1"
)

// keepProducing sends SEA events to topic, a hundred every 50 ms, until the
// test ends, so that every promotion interval has something new to promote.
func keepProducing(t *testing.T, broker, topic string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		w := &kafka.Writer{Addr: kafka.TCP(broker), Topic: topic, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond, Transport: &kafka.Transport{}}
		defer w.Close()
		gen := newSEA(7, 25000, 0.1)
		for ctx.Err() == nil {
			batch := make([]kafka.Message, 100)
			for i := range batch {
				batch[i] = kafka.Message{Value: gen.next("k-")}
			}
			if err := w.WriteMessages(ctx, batch...); err != nil && ctx.Err() == nil {
				t.Errorf("producing: %v", err)
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// adminOf returns an Admin client of the service at addr.
func adminOf(t testing.TB, addr string) eddyv1.AdminClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return eddyv1.NewAdminClient(conn)
}

// seaService is a running service learning model "sea" and clients of it.
type seaService struct {
	*running
	admin   eddyv1.AdminClient
	predict eddyv1.InferenceClient
}

func (s *seaService) list(t *testing.T) *eddyv1.ListSnapshotsResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := s.admin.ListSnapshots(ctx, &eddyv1.ListSnapshotsRequest{Model: "sea"})
	if err != nil {
		t.Fatalf("ListSnapshots: %v", err)
	}
	return list
}

func (s *seaService) newest(t *testing.T) uint64 {
	t.Helper()
	snaps := s.list(t).GetSnapshots()
	if len(snaps) == 0 {
		return 0
	}
	return snaps[len(snaps)-1].GetVersion()
}

// answering returns the version that answers a prediction.
func (s *seaService) answering(t *testing.T) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.predict.Predict(ctx, &eddyv1.PredictRequest{Model: "sea", Features: map[string]*structpb.Value{
		"f1": structpb.NewNumberValue(3), "f2": structpb.NewNumberValue(4), "f3": structpb.NewNumberValue(5)}})
	if err != nil {
		t.Fatalf("Predict: %v", err)
	}
	return resp.GetModelVersion()
}

// assertHeld checks that automatic promotion keeps creating versions past
// newestBefore while the pinned version keeps answering and is listed as
// pinned, and returns the newest version.
func (s *seaService) assertHeld(t *testing.T, pinned, newestBefore uint64) uint64 {
	t.Helper()
	waitFor(t, 30*time.Second, "three more versions from automatic promotion", func() bool { return s.newest(t) >= newestBefore+3 })
	if v := s.answering(t); v != pinned {
		t.Fatalf("Predict answers v%d, want the pinned v%d", v, pinned)
	}
	list := s.list(t)
	if list.GetServingVersion() != pinned || !list.GetPinned() {
		t.Fatalf("ListSnapshots says v%d serves (pinned %v), want the pinned v%d", list.GetServingVersion(), list.GetPinned(), pinned)
	}
	for _, snap := range list.GetSnapshots() {
		if snap.GetPinned() != (snap.GetVersion() == pinned) || snap.GetServing() != (snap.GetVersion() == pinned) {
			t.Fatalf("v%d listed serving %v, pinned %v; only v%d is either", snap.GetVersion(), snap.GetServing(), snap.GetPinned(), pinned)
		}
	}
	return list.GetSnapshots()[len(list.GetSnapshots())-1].GetVersion()
}

func startSeaService(t *testing.T, cfg eddy.Config) *seaService {
	t.Helper()
	svc := startTestService(t, cfg)
	return &seaService{running: svc, admin: adminOf(t, svc.GRPCAddr()), predict: predictClient(t, svc.GRPCAddr())}
}

func TestARollbackOverGRPCHoldsThroughPromotionsAndARestartUntilReleased(t *testing.T) {
	broker := startBroker(t)
	dir := t.TempDir()
	o := testConfig(broker, dir, learner.ModelConfig{Name: "sea"})
	o.Learner.Retain, o.Learner.RetainFor = 3, time.Nanosecond // retention deletes at every promotion: the pin must survive it
	first := startSeaService(t, o)
	keepProducing(t, broker, "events")
	waitFor(t, 60*time.Second, "three versions", func() bool { return first.newest(t) >= 3 })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rolled, err := first.admin.Rollback(ctx, &eddyv1.RollbackRequest{Model: "sea"})
	if err != nil || !rolled.GetPinned() {
		t.Fatalf("Rollback = %v, %v; want a pinned version", rolled, err)
	}
	pinned := rolled.GetServingVersion()
	newest := first.assertHeld(t, pinned, first.newest(t))
	t.Logf("rolled back to v%d; automatic promotion went on to v%d without serving it", pinned, newest)
	if err := first.stop(); err != nil {
		t.Fatal(err)
	}

	second := startSeaService(t, o)
	if v := second.answering(t); v != pinned {
		t.Fatalf("after a restart Predict answers v%d, want the pinned v%d", v, pinned)
	}
	newest = second.assertHeld(t, pinned, newest)

	released, err := second.admin.Release(ctx, &eddyv1.ReleaseRequest{Model: "sea"})
	if err != nil || released.GetPinned() || released.GetServingVersion() < newest {
		t.Fatalf("Release = %v, %v; want the newest version (v%d or later), unpinned", released, err, newest)
	}
	if v := second.answering(t); v < released.GetServingVersion() {
		t.Fatalf("after the release Predict answers v%d, want v%d or later", v, released.GetServingVersion())
	}
	waitFor(t, 30*time.Second, "automatic promotion serving a newer version", func() bool {
		return second.answering(t) > released.GetServingVersion()
	})
	if list := second.list(t); list.GetPinned() {
		t.Fatalf("after the release ListSnapshots still says pinned: %v", list)
	}
}
