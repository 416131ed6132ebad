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
	// ReplicationFactor is the topic's replica count; 0 (or negative) means
	// the broker's default (default.replication.factor).
	ReplicationFactor int
	Configs           map[string]string // topic configs, e.g. max.message.bytes
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
		rf := t.ReplicationFactor
		if rf <= 0 {
			rf = -1
		}
		tc := kafka.TopicConfig{Topic: t.Name, NumPartitions: t.Partitions, ReplicationFactor: rf}
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

// MissingTopics returns those of names the cluster does not have.
func (c Cluster) MissingTopics(ctx context.Context, names []string) ([]string, error) {
	client := c.client(10 * time.Second)
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	resp, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("stream: topic metadata: %w", err)
	}
	have := make(map[string]bool)
	for _, t := range resp.Topics {
		if t.Error == nil {
			have[t.Name] = true
		}
	}
	var missing []string
	for _, n := range names {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	return missing, nil
}

// TopicConfigs returns the effective configuration of topic (every entry
// the broker reports, defaults included).
func (c Cluster) TopicConfigs(ctx context.Context, topic string) (map[string]string, error) {
	client := c.client(10 * time.Second)
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	resp, err := client.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic, ResourceName: topic}},
	})
	if err != nil {
		return nil, fmt.Errorf("stream: describe topic %s: %w", topic, err)
	}
	out := make(map[string]string)
	for _, r := range resp.Resources {
		if r.Error != nil {
			return nil, fmt.Errorf("stream: describe topic %s: %w", topic, r.Error)
		}
		for _, e := range r.ConfigEntries {
			out[e.ConfigName] = e.ConfigValue
		}
	}
	return out, nil
}
