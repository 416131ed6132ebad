// Package devbroker runs an in-process Kafka-protocol broker (kfake) for
// development and tests: `eddy serve` without --brokers, `eddy broker`, and
// tests that need a real broker over TCP. It speaks the real protocol on
// 127.0.0.1, so any Kafka client can use it, but it is a single node, keeps
// its data only if given a directory, and is not meant for production.
//
// Only the service's embedded mode (the module's root package), cmd/eddy and
// tests import it, so that a production build of the stream package carries
// no development broker; the dependency test enforces that.
//
// # Concurrency
//
// A Broker serves any number of clients concurrently. Close stops it; Addr
// and Port may be called from any goroutine.
package devbroker

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a running single-node Kafka-protocol broker. Create it with
// Start.
type Broker struct {
	cluster *kfake.Cluster
}

// Config configures a Broker. The zero value is valid: a free port, data
// in memory only.
type Config struct {
	// Port to listen on at 127.0.0.1; 0 picks a free port.
	Port int
	// DataDir, if set, persists the broker's data there across restarts.
	DataDir string
}

// Start starts a single-node broker. Its group session timeouts may be as
// short as 1s (kfake's own minimum is 6s), so that tests of failover need
// not wait long.
func Start(cfg Config) (*Broker, error) {
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
		return nil, fmt.Errorf("devbroker: embedded broker on 127.0.0.1:%d: %w", cfg.Port, err)
	}
	return &Broker{cluster: c}, nil
}

// Addr returns the broker's host:port.
func (b *Broker) Addr() string { return b.cluster.ListenAddrs()[0] }

// Port returns the port the broker listens on, to start it again at the
// same address after Close.
func (b *Broker) Port() int {
	_, port, err := net.SplitHostPort(b.Addr())
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(port)
	return n
}

// Compact compacts every topic whose cleanup.policy is compact, now: of
// each key only the latest record stays, and tombstones older than the
// topic's delete.retention.ms (a day by default) go. The last record batch
// of each partition is kept as it is, as Kafka keeps the active segment.
// Tests use it; on its own the broker compacts hourly.
func (b *Broker) Compact() { b.cluster.Compact() }

// Close stops the broker.
func (b *Broker) Close() { b.cluster.Close() }
