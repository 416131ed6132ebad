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
// # Consumer groups under crashes
//
// kfake's classic groups differ from Kafka's in ways that, under repeated
// crash-restarts of members (SIGKILL, no LeaveGroup), can keep a group from
// ever settling:
//
//   - The join phase ends when every member has rejoined or when the
//     rebalance timer fires, and every join, leave and session expiry
//     restarts that timer, where Kafka's deadline runs from the start of
//     the rebalance.
//   - A member waiting in JoinGroup or SyncGroup keeps the session timer of
//     its last heartbeat, where Kafka never expires a member with a request
//     parked: with the rebalance timeout equal to the session timeout, the
//     restarted timer outlasts the sessions of the members it waits for, so
//     they are evicted, their JoinGroup is never answered, and kafka-go
//     rejoins as a new member 16 s later (15 s read deadline, 1 s backoff),
//     restarting the timer again.
//   - A member that joined with an empty member ID (JoinGroup v0-v3, which
//     kafka-go sends) has no session timer until its JoinGroup is answered,
//     and an answer written to a dead connection often arms none either. A
//     process killed while its first JoinGroup is parked leaves a member
//     that is counted as joined, is assigned partitions no one consumes, and
//     never rejoins: later join phases end only when the timer fires.
//
// The broker makes up for these at its edge, with kfake's control and
// listener hooks, and leaves clients' requests otherwise as they are:
//
//   - A JoinGroup's rebalance timeout is capped at half its session timeout,
//     so that the join phase (and the sync phase, which kfake bounds by the
//     same timeout) ends before the sessions of the members waiting in it
//     expire, and the timer, restarted or not, gets its chance to fire. The
//     client's own deadlines are unchanged; a member needs at most a
//     heartbeat interval and its generation's teardown to rejoin.
//   - A member whose creating connection has closed and that never sent a
//     request under its member ID, so that no client can be using it, is
//     removed with a LeaveGroup, as Kafka's session expiry would remove it.
//
// # Concurrency
//
// A Broker serves any number of clients concurrently. Close stops it; Addr
// and Port may be called from any goroutine.
package devbroker

import (
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Broker is a running single-node Kafka-protocol broker. Create it with
// Start.
type Broker struct {
	cluster *kfake.Cluster
	reaper  *reaper
}

// Config configures a Broker. The zero value is valid: a free port, data
// in memory only.
type Config struct {
	// Port to listen on at 127.0.0.1; 0 picks a free port.
	Port int
	// DataDir, if set, persists the broker's data there across restarts.
	DataDir string
	// TLS, if set, makes the broker accept TLS connections only (its
	// certificate; ClientAuth for mutual TLS).
	TLS *tls.Config
	// Users, if any, enable SASL: every client must authenticate as one of
	// them (all superusers). The reaper cannot authenticate, so a dead
	// member of a secured broker is only removed by its session timeout.
	Users []User
}

// User is a SASL user of a secured broker.
type User struct {
	Mechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	Name      string
	Password  string
}

// Start starts a single-node broker. Its group session timeouts may be as
// short as 1s (kfake's own minimum is 6s), so that tests of failover need
// not wait long.
func Start(cfg Config) (*Broker, error) {
	r := newReaper()
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(cfg.Port),
		kfake.GroupMinSessionTimeout(time.Second),
		kfake.ListenFn(r.listen),
	}
	if cfg.DataDir != "" {
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.TLS != nil {
		opts = append(opts, kfake.TLS(cfg.TLS))
	}
	if len(cfg.Users) > 0 {
		opts = append(opts, kfake.EnableSASL())
		for _, u := range cfg.Users {
			opts = append(opts, kfake.Superuser(u.Mechanism, u.Name, u.Password))
		}
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: embedded broker on 127.0.0.1:%d: %w", cfg.Port, err)
	}
	if len(cfg.Users) > 0 {
		if err := advertiseSaslHandshakeV0(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	r.start(c)
	return &Broker{cluster: c, reaper: r}, nil
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
func (b *Broker) Close() {
	b.reaper.stop() // first: it asks the cluster for group state
	b.cluster.Close()
}

// reapEvery is how often the reaper looks for dead members.
const reapEvery = 100 * time.Millisecond

// reaper removes classic-group members that kfake will never expire (see
// the package documentation).
type reaper struct {
	mu     sync.Mutex
	closed map[string]time.Time // remote address of a connection that was accepted: when it closed
	seen   map[string]time.Time // member IDs some request carried (a client knows them): when last
	groups map[string]bool      // classic groups that were joined
	kicked map[string]time.Time // member ID: when we last sent its LeaveGroup

	quit chan struct{}
	done chan struct{}
}

func newReaper() *reaper {
	return &reaper{
		closed: make(map[string]time.Time),
		seen:   make(map[string]time.Time),
		groups: make(map[string]bool),
		kicked: make(map[string]time.Time),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
}

// listen is kfake's ListenFn: it records when connections close.
func (r *reaper) listen(network, address string) (net.Listener, error) {
	l, err := net.Listen(network, address)
	if err != nil {
		return nil, err
	}
	return &trackedListener{Listener: l, r: r}, nil
}

type trackedListener struct {
	net.Listener
	r *reaper
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	addr := c.RemoteAddr().String()
	l.r.mu.Lock()
	delete(l.r.closed, addr) // a new connection from a reused port
	l.r.mu.Unlock()
	return &trackedConn{Conn: c, r: l.r, addr: addr}, nil
}

type trackedConn struct {
	net.Conn
	r    *reaper
	addr string
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.r.mu.Lock()
		c.r.closed[c.addr] = time.Now()
		c.r.mu.Unlock()
	})
	return c.Conn.Close()
}

// observe is a kfake control function that sees every request and handles
// none: it learns the joined groups and the member IDs clients use.
func (r *reaper) observe(c *kfake.Cluster) func(kmsg.Request) (kmsg.Response, error, bool) {
	return func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		var group, member string
		switch req := req.(type) {
		case *kmsg.JoinGroupRequest:
			group, member = req.Group, req.MemberID
			capRebalanceTimeout(req)
		case *kmsg.SyncGroupRequest:
			group, member = req.Group, req.MemberID
		case *kmsg.HeartbeatRequest:
			group, member = req.Group, req.MemberID
		case *kmsg.OffsetCommitRequest:
			group, member = req.Group, req.MemberID
		default:
			return nil, nil, false
		}
		r.mu.Lock()
		if _, isJoin := req.(*kmsg.JoinGroupRequest); isJoin {
			r.groups[group] = true
		}
		if member != "" {
			r.seen[member] = time.Now()
		}
		r.mu.Unlock()
		return nil, nil, false
	}
}

// capRebalanceTimeout lowers a join's rebalance timeout to half its session
// timeout (see the package documentation). kfake goes on to handle the very
// request a control function returns unhandled, so it sees the lowered
// value. A JoinGroup v0 carries no rebalance timeout and is left alone.
func capRebalanceTimeout(req *kmsg.JoinGroupRequest) {
	if limit := req.SessionTimeoutMillis / 2; req.Version >= 1 && req.RebalanceTimeoutMillis > limit && limit > 0 {
		req.RebalanceTimeoutMillis = limit
	}
}

func (r *reaper) start(c *kfake.Cluster) {
	c.Control(r.observe(c))
	go r.run(c)
}

func (r *reaper) stop() {
	close(r.quit)
	<-r.done
}

func (r *reaper) run(c *kfake.Cluster) {
	defer close(r.done)
	ticker := time.NewTicker(reapEvery)
	defer ticker.Stop()
	for {
		select {
		case <-r.quit:
			return
		case <-ticker.C:
		}
		r.mu.Lock()
		groups := make([]string, 0, len(r.groups))
		for g := range r.groups {
			groups = append(groups, g)
		}
		r.mu.Unlock()
		looked := time.Now()
		members := make(map[string]bool)
		for _, group := range groups {
			info := c.GroupInfo(group)
			if info == nil {
				continue
			}
			for _, m := range info.Members {
				members[m.MemberID] = true
				if r.dead(m.MemberID, m.ClientHost) {
					r.leave(c.ListenAddrs()[0], group, m.MemberID)
				}
			}
		}
		r.prune(looked, members)
	}
}

// prune forgets what can no longer matter, so that a long-running broker
// (clients dial it every second) does not accumulate it: member IDs that
// no group had when we looked at the groups (since: a request seen later
// may have added its member), and connections closed a minute ago, long
// after any member they created was reaped.
func (r *reaper) prune(looked time.Time, members map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, at := range r.seen {
		if !members[id] && at.Before(looked) {
			delete(r.seen, id)
		}
	}
	for id := range r.kicked {
		if !members[id] {
			delete(r.kicked, id)
		}
	}
	for addr, at := range r.closed {
		if time.Since(at) > time.Minute {
			delete(r.closed, addr)
		}
	}
}

// dead reports whether a member is one no client can be using: its
// creating connection has closed and no request ever carried its ID. A
// member LeaveGroup was sent for is retried after a second.
func (r *reaper) dead(member, host string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, seen := r.seen[member]
	if _, closed := r.closed[host]; seen || !closed {
		return false
	}
	if at, ok := r.kicked[member]; ok && time.Since(at) < time.Second {
		return false
	}
	r.kicked[member] = time.Now()
	return true
}

// leave sends a LeaveGroup (v0: one member by ID) for member and waits for
// the answer.
func (r *reaper) leave(addr, group, member string) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	req := kmsg.NewPtrLeaveGroupRequest()
	req.SetVersion(0)
	req.Group, req.MemberID = group, member
	buf := kmsg.NewRequestFormatter(kmsg.FormatterClientID("eddy-devbroker-reaper")).AppendRequest(nil, req, 1)
	if _, err := conn.Write(buf); err != nil {
		return
	}
	var size [4]byte
	if _, err := io.ReadFull(conn, size[:]); err != nil {
		return
	}
	_, _ = io.CopyN(io.Discard, conn, int64(binary.BigEndian.Uint32(size[:])))
}
