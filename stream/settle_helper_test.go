//go:build processtests

package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
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
	envBounded = "EDDY_SETTLE_BOUNDED_CLOSE" // group mode: "1" closes the group as closeHelperGroup does
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
	dialer := &helperDialer{}
	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                settleGroup,
		Brokers:           []string{broker},
		Topics:            []string{settleTopic},
		Dialer:            dialer.kafkaDialer(),
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
		closeHelperGroup(group, dialer, broker, memberID, log)
	} else {
		group.Close()
	}
}

// The bounded close, as proposed for Consumer.Run: kafka-go's
// ConsumerGroup.Close waits for its run goroutine, which does not look at
// Close while a JoinGroup (deadline Timeout + RebalanceTimeout, 15 s) or a
// SyncGroup (Timeout + SessionTimeout) is parked at the coordinator, and
// leaves the group only after that. So Close is given helperCloseGrace; then
// the group's connections are closed, which fails the parked request at
// once and lets the run goroutine return; then the member leaves the group
// itself, so that the others need not wait a session timeout for it.
const (
	helperCloseGrace = 1500 * time.Millisecond
	helperAbortWait  = time.Second
	helperLeaveWait  = time.Second
)

func closeHelperGroup(group *kafka.ConsumerGroup, dialer *helperDialer, broker, memberID string, log *slog.Logger) {
	closed := make(chan struct{})
	go func() {
		group.Close()
		close(closed)
	}()
	select {
	case <-closed:
		return
	case <-time.After(helperCloseGrace):
	}
	dialer.abort()
	select {
	case <-closed:
	case <-time.After(helperAbortWait):
		log.Warn("consumer group close still blocked after its connections were closed; not waiting for it")
	}
	if memberID == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperLeaveWait)
	defer cancel()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(broker), Timeout: helperLeaveWait, Transport: transport}
	resp, err := client.LeaveGroup(ctx, &kafka.LeaveGroupRequest{GroupID: settleGroup, Members: []kafka.LeaveGroupRequestMember{{ID: memberID}}})
	if err == nil {
		err = resp.Error
	}
	if err != nil && !errors.Is(err, kafka.UnknownMemberId) {
		log.Warn("leaving the consumer group failed; the others wait a session timeout for this member", "err", err)
	} else {
		log.Info("left the consumer group after cutting its close short")
	}
}

// errHelperAborted fails the dials of a group whose connections were
// aborted.
var errHelperAborted = errors.New("consumer group closed")

// helperDialer dials a ConsumerGroup's connections and can close them
// all, to cut short a request parked at the coordinator.
type helperDialer struct {
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	aborted bool
}

// kafkaDialer is kafka.DefaultDialer dialing through d.
func (d *helperDialer) kafkaDialer() *kafka.Dialer {
	return &kafka.Dialer{Timeout: 10 * time.Second, DualStack: true, DialFunc: d.dial}
}

func (d *helperDialer) dial(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.aborted {
		c.Close()
		return nil, errHelperAborted
	}
	if d.conns == nil {
		d.conns = make(map[net.Conn]struct{})
	}
	tc := &helperConn{Conn: c, d: d}
	d.conns[tc] = struct{}{}
	return tc, nil
}

func (d *helperDialer) abort() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.aborted = true
	for c := range d.conns {
		c.(*helperConn).Conn.Close()
	}
	d.conns = nil
}

type helperConn struct {
	net.Conn
	d *helperDialer
}

func (c *helperConn) Close() error {
	c.d.mu.Lock()
	delete(c.d.conns, c)
	c.d.mu.Unlock()
	return c.Conn.Close()
}
