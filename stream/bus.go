package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// Bus is a single-partition topic that every instance of a group writes
// small messages to and reads from where the topic ended when it started
// listening: the way an instance asks the others something (an admin
// command for a model another instance learns) and hears the answer,
// through Kafka itself. Messages are not kept for late listeners: a command
// nobody hears times out at its sender.
//
// Send and Listen may be called from any goroutine.
type Bus struct {
	cluster Cluster
	topic   string
	log     *slog.Logger
	writer  *kafka.Writer
}

// NewBus returns a Bus on topic of cluster.
func NewBus(cluster Cluster, topic string, log *slog.Logger) *Bus {
	return &Bus{cluster: cluster, topic: topic, log: log.With("component", "bus", "topic", topic),
		writer: &kafka.Writer{Addr: kafka.TCP(cluster.Brokers...), Topic: topic, RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond, Transport: cluster.Transport()}}
}

// EnsureTopic creates the bus's topic (1 partition, messages kept an hour)
// if it does not exist.
func (b *Bus) EnsureTopic(ctx context.Context) error {
	return b.cluster.EnsureTopics(ctx, []TopicSpec{{Name: b.topic, Partitions: 1, Configs: map[string]string{"retention.ms": "3600000"}}})
}

// Send writes one message, acknowledged by all in-sync replicas.
func (b *Bus) Send(ctx context.Context, key, value []byte) error {
	if err := b.writer.WriteMessages(ctx, kafka.Message{Key: key, Value: value}); err != nil {
		return fmt.Errorf("stream: bus %s: %w", b.topic, err)
	}
	return nil
}

// Listen calls fn, from one goroutine, with every message written after it
// started, until ctx ends; ready is called once it reads (so that a message
// sent after ready returns is heard). It retries through broker errors.
func (b *Bus) Listen(ctx context.Context, fn func(key, value []byte), ready func()) error {
	start, err := b.end(ctx)
	for err != nil {
		if ctx.Err() != nil {
			return nil
		}
		b.log.Debug("bus: cannot read the end offset; retrying", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
		start, err = b.end(ctx)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: b.cluster.Brokers, Dialer: b.cluster.Dialer(), Topic: b.topic, Partition: 0, MinBytes: 1, MaxBytes: 1 << 20,
		MaxWait: 100 * time.Millisecond, ErrorLogger: kafka.LoggerFunc(func(string, ...any) {})})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("stream: bus %s: %w", b.topic, err)
	}
	ready()
	for {
		m, err := r.FetchMessage(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				b.log.Debug("bus: fetch failed; retrying", "err", err)
			}
			continue
		}
		fn(m.Key, m.Value)
	}
}

func (b *Bus) end(ctx context.Context) (int64, error) {
	client := b.cluster.client(10 * time.Second)
	defer client.Transport.(*kafka.Transport).CloseIdleConnections()
	resp, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{b.topic: {kafka.LastOffsetOf(0)}}})
	if err != nil {
		return 0, err
	}
	parts := resp.Topics[b.topic]
	switch {
	case len(parts) == 0:
		return 0, fmt.Errorf("stream: bus %s: no partition 0", b.topic)
	case parts[0].Error != nil:
		return 0, parts[0].Error
	}
	return parts[0].LastOffset, nil
}

// Close flushes and closes the writer.
func (b *Bus) Close() error { return b.writer.Close() }
