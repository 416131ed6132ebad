//go:build processtests

package stream

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// The settle tests run group members as child processes of the test binary,
// so that a member can be killed for real (SIGKILL: no LeaveGroup, its TCP
// connections die with it). A child is this binary re-executed with
// -test.run=^TestHelperMember$ and these variables set.
const (
	envMember  = "EDDY_SETTLE_MEMBER"  // the member's name; set only in a child
	envBroker  = "EDDY_SETTLE_BROKER"  // the broker's host:port
	envMode    = "EDDY_SETTLE_MODE"    // "consumer" (default) or "group"
	envSession = "EDDY_SETTLE_SESSION" // the session timeout; unset: the Consumer's default
	// group mode: the other kafka-go settings, as durations; unset: the Consumer's
	envHeart   = "EDDY_SETTLE_HEARTBEAT"
	envRebal   = "EDDY_SETTLE_REBALANCE"
	envBackoff = "EDDY_SETTLE_BACKOFF"
	envBounded = "EDDY_SETTLE_BOUNDED_CLOSE" // group mode: "1" closes the group as Consumer.Run does
)

const (
	settleTopic      = "settle"
	settleGroup      = "settle"
	settlePartitions = 6
)

// TestHelperMember is not a test: it is the body of a child member process
// of the settle tests, and skips when run any other way.
//
// In "consumer" mode the member is a stream.Consumer with its defaults (the
// 10 s session timeout unless EDDY_SETTLE_SESSION says otherwise): exactly
// what `eddy serve` runs. It logs JSON to
// stdout, and the parent follows its "partition assigned" and "generation
// ended; rebalancing" records. In "group" mode it is a bare kafka-go
// ConsumerGroup with the Consumer's settings unless the EDDY_SETTLE_*
// variables say otherwise, driven the way Consumer.Run drives it (Next;
// after an error, wait a second and call Next again; the generation's work
// runs under gen.Start), and it writes the same records: it tries a change
// to consumer.go before consumer.go takes it. Either way SIGTERM stops it,
// and it logs "stopped" with how long the stop took.
func TestHelperMember(t *testing.T) {
	name := os.Getenv(envMember)
	if name == "" {
		t.Skip("the body of a child process of the settle tests")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	var stopAt atomic.Int64
	context.AfterFunc(ctx, func() { stopAt.Store(time.Now().UnixNano()) })
	log := slog.New(slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelDebug})).With("member", name)
	broker := os.Getenv(envBroker)
	switch mode := os.Getenv(envMode); mode {
	case "", "consumer":
		c, err := NewConsumer(ConsumerConfig{Brokers: []string{broker}, Topics: []string{settleTopic}, GroupID: settleGroup,
			SessionTimeout: envDuration(t, envSession, 0)}, nopHandler{}, prometheus.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(ctx); err != nil {
			t.Fatal(err)
		}
	case "group":
		runHelperGroup(ctx, t, log, broker)
	default:
		t.Fatalf("%s=%q", envMode, mode)
	}
	log.Info("stopped", "close_ms", time.Since(time.Unix(0, stopAt.Load())).Milliseconds())
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}

// runHelperGroup is group mode: Consumer.Run's group loop over a bare
// kafka-go ConsumerGroup.
func runHelperGroup(ctx context.Context, t *testing.T, log *slog.Logger, broker string) {
	session := envDuration(t, envSession, DefaultSessionTimeout)
	dialer := &abortableDialer{}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                settleGroup,
		Brokers:           []string{broker},
		Topics:            []string{settleTopic},
		Dialer:            dialer.kafkaDialer(Cluster{Brokers: []string{broker}}),
		SessionTimeout:    session,
		HeartbeatInterval: envDuration(t, envHeart, session/4),
		RebalanceTimeout:  envDuration(t, envRebal, session),
		JoinGroupBackoff:  envDuration(t, envBackoff, time.Second),
		StartOffset:       kafka.FirstOffset,
		ErrorLogger: kafka.LoggerFunc(func(msg string, args ...any) {
			log.Debug("kafka-go", "msg", fmt.Sprintf(msg, args...))
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	var memberID string
	for {
		gen, err := group.Next(ctx)
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			log.Debug("consumer group join failed again", "err", err.Error())
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			continue
		}
		memberID = gen.MemberID
		for _, a := range gen.Assignments[settleTopic] {
			log.Info("partition assigned", "topic", settleTopic, "partition", a.ID, "generation", gen.ID)
		}
		var ended sync.WaitGroup
		ended.Add(1)
		gen.Start(func(gctx context.Context) {
			defer ended.Done()
			select {
			case <-gctx.Done():
				log.Info("generation ended; rebalancing", "generation", gen.ID)
			case <-ctx.Done():
			}
		})
		ended.Wait()
	}
	if os.Getenv(envBounded) == "1" {
		// The Consumer's own bounded close, over this bare group.
		c := &Consumer{cfg: ConsumerConfig{Brokers: []string{broker}, GroupID: settleGroup}, log: log}
		c.closeGroup(group, dialer, memberID)
	} else {
		group.Close()
	}
}
