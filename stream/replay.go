package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"
)

// OffsetRange is the offsets [From, To) of one partition of a topic.
type OffsetRange struct {
	Topic     string
	Partition int
	From, To  int64
}

func (r OffsetRange) String() string {
	return fmt.Sprintf("%s partition %d [%d, %d)", r.Topic, r.Partition, r.From, r.To)
}

// Missing returns the parts of ranges that the cluster does not hold:
// before a partition's first offset (retention or DeleteRecords removed
// them) or at and after its end (the topic was recreated, or they were
// never written). Empty: every offset of ranges can be read.
func (c Cluster) Missing(ctx context.Context, ranges []OffsetRange) ([]OffsetRange, error) {
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for _, r := range ranges {
		req.Topics[r.Topic] = append(req.Topics[r.Topic], kafka.FirstOffsetOf(r.Partition), kafka.LastOffsetOf(r.Partition))
	}
	resp, err := c.client(10*time.Second).ListOffsets(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	var missing []OffsetRange
	for _, r := range ranges {
		if r.From >= r.To {
			continue
		}
		first, end, found := int64(0), int64(0), false
		for _, p := range resp.Topics[r.Topic] {
			if p.Partition == r.Partition {
				if p.Error != nil {
					return nil, fmt.Errorf("list offsets of %s partition %d: %w", r.Topic, r.Partition, p.Error)
				}
				first, end, found = p.FirstOffset, p.LastOffset, true
			}
		}
		if !found {
			missing = append(missing, r) // no such partition
			continue
		}
		if first > r.From {
			missing = append(missing, OffsetRange{r.Topic, r.Partition, r.From, min(first, r.To)})
		}
		if end < r.To {
			missing = append(missing, OffsetRange{r.Topic, r.Partition, max(end, r.From), r.To})
		}
	}
	return missing, nil
}

// ReplayConfig says how Replay decodes and waits.
type ReplayConfig struct {
	Decoder DecoderConfig
	// Wait bounds the wait for one message (default 10 s): a range whose
	// next offset does not arrive within it is an error.
	Wait time.Duration
}

// ErrReplayStalled is returned by Replay when a range's next offset does
// not arrive.
var ErrReplayStalled = errors.New("replay stalled")

// Replay reads the messages of ranges (one per partition) and hands each
// event to fn in order of message time across partitions (ties by
// partition, then offset; within a partition, offset order), decoded as
// the consumer decodes it (DecodeMessage). A message that does not decode
// is counted in the returned number and skipped: the consumer
// dead-letters it. fn must not keep ev or its slices.
func (c Cluster) Replay(ctx context.Context, ranges []OffsetRange, cfg ReplayConfig, fn func(topic string, ev *Event) error) (undecodable int, err error) {
	if cfg.Wait <= 0 {
		cfg.Wait = 10 * time.Second
	}
	type source struct {
		r    OffsetRange
		read *kafka.Reader
		head kafka.Message
		next int64 // offset after head (head is valid when next > r.From)
		done bool
	}
	var sources []*source
	defer func() {
		for _, s := range sources {
			err = errors.Join(err, s.read.Close())
		}
	}()
	advance := func(s *source) error {
		if s.next >= s.r.To {
			s.done = true
			return nil
		}
		wait, cancel := context.WithTimeout(ctx, cfg.Wait)
		defer cancel()
		m, err := s.read.ReadMessage(wait)
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			return fmt.Errorf("%w: %s: offset %d not read within %v: %v", ErrReplayStalled, s.r, s.next, cfg.Wait, err)
		}
		s.head, s.next = m, m.Offset+1
		if m.Offset >= s.r.To {
			s.done = true
		}
		return nil
	}
	for _, r := range ranges {
		if r.From >= r.To {
			continue
		}
		read := kafka.NewReader(kafka.ReaderConfig{Brokers: c.Brokers, Dialer: c.Dialer(), Topic: r.Topic, Partition: r.Partition,
			MinBytes: 1, MaxBytes: 2 << 20, MaxWait: 500 * time.Millisecond})
		s := &source{r: r, read: read, next: r.From}
		sources = append(sources, s)
		if err := read.SetOffset(r.From); err != nil {
			return 0, fmt.Errorf("%s: %w", r, err)
		}
		if err := advance(s); err != nil {
			return 0, err
		}
	}
	dec := NewDecoder(cfg.Decoder)
	var ev Event
	for {
		var pick *source
		for _, s := range sources {
			if s.done {
				continue
			}
			if pick == nil || s.head.Time.Before(pick.head.Time) ||
				s.head.Time.Equal(pick.head.Time) && s.r.Partition < pick.r.Partition {
				pick = s
			}
		}
		if pick == nil {
			return undecodable, nil
		}
		if err := dec.DecodeMessage(&pick.head, &ev); err != nil {
			var de *DecodeError
			if !errors.As(err, &de) {
				return undecodable, err
			}
			undecodable++
		} else if err := fn(pick.r.Topic, &ev); err != nil {
			return undecodable, err
		}
		if err := advance(pick); err != nil {
			return undecodable, err
		}
	}
}
