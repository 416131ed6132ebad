package stream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedBroker is an in-process Kafka-protocol broker (kfake) for
// development and tests. It speaks the real protocol over TCP on 127.0.0.1,
// so any Kafka client can use it, but it is not durable unless given a data
// directory and is not meant for production.
type EmbeddedBroker struct {
	cluster *kfake.Cluster
}

// EmbeddedConfig configures an EmbeddedBroker. The zero value is valid.
type EmbeddedConfig struct {
	// Port to listen on at 127.0.0.1; 0 picks a free port.
	Port int
	// DataDir, if set, persists the broker's data there across restarts.
	DataDir string
}

// StartEmbeddedBroker starts a single-node broker.
func StartEmbeddedBroker(cfg EmbeddedConfig) (*EmbeddedBroker, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.GroupMinSessionTimeout(time.Second),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("stream: embedded broker on 127.0.0.1:%d: %w", cfg.Port, err)
	}
	return &EmbeddedBroker{cluster: c}, nil
}

// Addr returns the broker's host:port.
func (b *EmbeddedBroker) Addr() string { return b.cluster.ListenAddrs()[0] }

// Close stops the broker.
func (b *EmbeddedBroker) Close() { b.cluster.Close() }

// TopicSpec describes a topic to create.
type TopicSpec struct {
	Name       string
	Partitions int
	Configs    map[string]string // topic configs, e.g. max.message.bytes
}

// EnsureTopics creates the topics that do not exist yet. Existing topics are
// left as they are, whatever their partition count.
func EnsureTopics(ctx context.Context, brokers []string, topics []TopicSpec) error {
	client := &kafka.Client{Addr: kafka.TCP(brokers...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}
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

// PortOf returns the port of a host:port address, or 0.
func PortOf(addr string) int {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}
