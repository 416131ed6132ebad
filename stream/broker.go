package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/segmentio/kafka-go"
)

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name       string
	Partitions int
	Configs    map[string]string // topic configs, e.g. max.message.bytes
}

// EnsureTopics is Cluster.EnsureTopics on a plaintext cluster.
func EnsureTopics(ctx context.Context, brokers []string, topics []TopicSpec) error {
	return Cluster{Brokers: brokers}.EnsureTopics(ctx, topics)
}

// EnsureTopics creates the topics that do not exist yet. Existing topics are
// left as they are, whatever their partition count.
func (c Cluster) EnsureTopics(ctx context.Context, topics []TopicSpec) error {
	client := c.client(10 * time.Second)
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		tc := kafka.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: -1}
		for k, v := range t.Configs {
			tc.ConfigEntries = append(tc.ConfigEntries, kafka.ConfigEntry{ConfigName: k, ConfigValue: v})
		}
		req.Topics = append(req.Topics, tc)
	}
	resp, err := client.CreateTopics(ctx, req)
	if err != nil {
		return fmt.Errorf("stream: create topics: %w", err)
	}
	for name, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("stream: create topic %s: %w", name, terr)
		}
	}
	return nil
}

// WaitForBroker dials addr until it accepts connections or ctx is done.
func WaitForBroker(ctx context.Context, addr string) error {
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return conn.Close()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("stream: broker %s unreachable: %w", addr, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
