package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyhq/eddy/learner"
)

// TestReplayReproducesAOnePartitionModelBitwise serves phishing.csv
// through Kafka (one partition, periodic promotions), then eddy replay of
// the serving version re-learns it from Kafka over the offsets its
// lineage names and finds the state bitwise identical. After the first
// 500 records of the partition are deleted (DeleteRecords, as retention
// would), replay says exactly which offsets are missing and fails.
func TestReplayReproducesAOnePartitionModelBitwise(t *testing.T) {
	broker := startBroker(t)
	svc := startTestService(t, testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "phishing", Optimizer: learner.OptimizerConfig{Kind: "adagrad"}}))
	if _, stderr, err := runCLI(t, nil, "produce", "--file", datasetPath(t, "phishing.csv"), "--brokers", broker, "--topic", "events", "--target", "is_phishing"); err != nil {
		t.Fatalf("produce: %v\n%s", err, stderr)
	}
	waitFor(t, 60*time.Second, "1,250 rows learned and served", func() bool {
		m, _ := svc.Stats().Model("phishing")
		return m.Learned == 1250 && m.ServedLearned == 1250
	})
	printed, stderr, err := runCLI(t, nil, "replay", "--model", "phishing", "--addr", svc.GRPCAddr(), "--brokers", broker)
	if err != nil || !strings.Contains(printed, "replayed 1250 events: learned 1250 (the snapshot: 1250)") || !strings.Contains(printed, "reproduced bitwise") {
		t.Fatalf("replay: %v\n%s%s", err, printed, stderr)
	}
	t.Logf("eddy replay:\n%s", printed)

	client, err := kgo.NewClient(kgo.SeedBrokers(broker))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	del := kmsg.NewPtrDeleteRecordsRequest()
	topic := kmsg.NewDeleteRecordsRequestTopic()
	topic.Topic = "events"
	part := kmsg.NewDeleteRecordsRequestTopicPartition()
	part.Partition, part.Offset = 0, 500
	topic.Partitions = append(topic.Partitions, part)
	del.Topics = append(del.Topics, topic)
	del.TimeoutMillis = 10000
	resp, err := del.RequestWith(context.Background(), client)
	if err != nil || len(resp.Topics) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 || resp.Topics[0].Partitions[0].LowWatermark != 500 {
		t.Fatalf("DeleteRecords: %+v, %v", resp, err)
	}
	printed, _, err = runCLI(t, nil, "replay", "--model", "phishing", "--addr", svc.GRPCAddr(), "--brokers", broker)
	if err == nil || !strings.Contains(err.Error(), "data missing from Kafka") || !strings.Contains(printed, "events partition 0 [0, 500): 500 offsets") {
		t.Fatalf("replay after DeleteRecords: %v\n%s", err, printed)
	}
}

// TestReplayOfSeveralPartitionsSaysHowFarItIs serves phishing.csv over two
// partitions: the replay learns every event of both ranges, in order of
// message time rather than the order the service fetched them in, and
// reports how far the weights are from the snapshot's: close (relative L2
// under 5%) and flagged as interleaved.
func TestReplayOfSeveralPartitionsSaysHowFarItIs(t *testing.T) {
	broker := startBroker(t)
	o := testOptions(broker, t.TempDir(), learner.ModelConfig{Name: "phishing"})
	o.partitions = 2
	svc := startTestService(t, o)
	if _, stderr, err := runCLI(t, nil, "produce", "--file", datasetPath(t, "phishing.csv"), "--brokers", broker, "--topic", "events", "--target", "is_phishing"); err != nil {
		t.Fatalf("produce: %v\n%s", err, stderr)
	}
	waitFor(t, 60*time.Second, "1,250 rows learned and served", func() bool {
		m, _ := svc.Stats().Model("phishing")
		return m.Learned == 1250 && m.ServedLearned == 1250
	})
	printed, stderr, err := runCLI(t, nil, "replay", "--model", "phishing", "--addr", svc.GRPCAddr(), "--brokers", broker, "--json")
	if err != nil {
		t.Fatalf("replay: %v\n%s%s", err, printed, stderr)
	}
	var r struct {
		Ranges      []struct{ From, To int64 }
		Learned     uint64 `json:"learned"`
		Interleaved bool   `json:"interleaved"`
		Diff        struct {
			Identical     bool
			Weights       int
			Differ        int
			MaxAbs, RelL2 float64
		} `json:"diff"`
	}
	if err := json.Unmarshal([]byte(printed), &r); err != nil {
		t.Fatal(err)
	}
	if len(r.Ranges) != 2 || r.Ranges[0].To == 0 || r.Ranges[1].To == 0 || r.Learned != 1250 || !r.Interleaved || r.Diff.RelL2 > 0.05 {
		t.Fatalf("replay of two partitions: %s", printed)
	}
	t.Logf("two partitions %v: %d of %d weights differ, max |Δw| %.3g, relative L2 %.3g", r.Ranges, r.Diff.Differ, r.Diff.Weights, r.Diff.MaxAbs, r.Diff.RelL2)
}
