//go:build processtests

// The settle tests run consumer-group members as child processes and SIGKILL
// them, so they are built only with the processtests tag:
//
//	go test -tags processtests ./stream -run 'TestGroupSettlesAfterKillChurn|TestSIGTERMDuringARebalance' -v
//
// EDDY_SETTLE_SEED (default 1) seeds the churn; EDDY_SETTLE_CHURN (default
// 30s) is how long it lasts and EDDY_SETTLE_BOUND (default 40s) how long
// the group may take to settle after it; EDDY_SETTLE_LOGDIR, if set, keeps
// each member's log there. The members are stream.Consumers unless
// EDDY_SETTLE_MODE=group makes them bare kafka-go groups (see
// TestHelperMember), to try other group settings or a bounded close
// (EDDY_SETTLE_BOUNDED_CLOSE=1) before consumer.go takes them.
package stream

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/stream/devbroker"
)

// settleMember is one child member process and what its log says of it.
type settleMember struct {
	name string
	cmd  *exec.Cmd
	exit chan struct{} // closed when the process has been waited for

	// Guarded by settleCluster.mu.
	gen     int64        // the latest generation it was assigned partitions in
	parts   map[int]bool // its partitions in gen
	ended   bool         // gen has ended
	dead    bool         // killed or stopped
	closeMs int64        // from its "stopped" record; -1 until then
	tail    []string     // its last log records
}

// settleCluster is a broker with the topic and the members of one test.
type settleCluster struct {
	t      *testing.T
	broker *devbroker.Broker
	logDir string
	env    []string // extra environment of every member

	mu      sync.Mutex
	members []*settleMember
	next    int
}

func newSettleCluster(t *testing.T, env ...string) *settleCluster {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, []string{b.Addr()}, []TopicSpec{{Name: settleTopic, Partitions: settlePartitions}, {Name: settleTopic + ".dlq", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	dir := os.Getenv("EDDY_SETTLE_LOGDIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	c := &settleCluster{t: t, broker: b, logDir: dir, env: env}
	t.Cleanup(func() {
		c.mu.Lock()
		ms := slices.Clone(c.members)
		c.mu.Unlock()
		for _, m := range ms {
			_ = m.cmd.Process.Kill()
			<-m.exit
		}
	})
	return c
}

// start starts a new member process.
func (c *settleCluster) start() *settleMember {
	c.t.Helper()
	c.mu.Lock()
	c.next++
	name := "m" + strconv.Itoa(c.next)
	c.mu.Unlock()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperMember$", "-test.count=1")
	cmd.Env = append(os.Environ(), envMember+"="+name, envBroker+"="+c.broker.Addr())
	cmd.Env = append(cmd.Env, c.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the test
	logFile, err := os.Create(filepath.Join(c.logDir, name+".log"))
	if err != nil {
		c.t.Fatal(err)
	}
	cmd.Stderr = logFile
	out, err := cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	m := &settleMember{name: name, cmd: cmd, exit: make(chan struct{}), closeMs: -1}
	c.mu.Lock()
	c.members = append(c.members, m)
	c.mu.Unlock()
	go func() {
		defer close(m.exit)
		defer logFile.Close()
		c.follow(m, io.TeeReader(out, logFile))
		_ = cmd.Wait()
		c.mu.Lock()
		m.dead = true
		c.mu.Unlock()
	}()
	return m
}

// follow reads a member's JSON log and keeps its state.
func (c *settleCluster) follow(m *settleMember, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var rec struct {
			Msg        string `json:"msg"`
			Generation *int64 `json:"generation"`
			Partition  *int   `json:"partition"`
			CloseMs    *int64 `json:"close_ms"`
		}
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &rec) != nil {
			continue
		}
		c.mu.Lock()
		m.tail = append(m.tail, time.Now().Format("15:04:05.000")+" "+string(line))
		if len(m.tail) > 12 {
			m.tail = m.tail[1:]
		}
		switch {
		case rec.Msg == "partition assigned" && rec.Generation != nil && rec.Partition != nil:
			if *rec.Generation != m.gen {
				m.gen, m.parts, m.ended = *rec.Generation, map[int]bool{}, false
			}
			m.parts[*rec.Partition] = true
		case rec.Msg == "generation ended; rebalancing" && rec.Generation != nil && *rec.Generation == m.gen:
			m.ended = true
		case rec.Msg == "stopped" && rec.CloseMs != nil:
			m.closeMs = *rec.CloseMs
		}
		c.mu.Unlock()
	}
}

// live returns the members not killed or stopped.
func (c *settleCluster) live() []*settleMember {
	c.mu.Lock()
	defer c.mu.Unlock()
	var live []*settleMember
	for _, m := range c.members {
		if !m.dead {
			live = append(live, m)
		}
	}
	return live
}

// kill SIGKILLs m and waits for it to be gone.
func (c *settleCluster) kill(m *settleMember) {
	c.mu.Lock()
	m.dead = true
	c.mu.Unlock()
	_ = m.cmd.Process.Kill()
	<-m.exit
}

// settled reports whether every live member holds partitions in one and the
// same generation that has not ended, and together they hold every
// partition exactly once: the group is consuming with all its members.
func (c *settleCluster) settled() (int64, bool) {
	live := c.live()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(live) == 0 {
		return 0, false
	}
	gen := live[0].gen
	held := 0
	for _, m := range live {
		if m.gen != gen || gen == 0 || m.ended || len(m.parts) == 0 {
			return 0, false
		}
		held += len(m.parts)
	}
	return gen, held == settlePartitions
}

// waitSettled waits up to bound for a generation that has settled and stays
// so for hold, and returns how long that took (until it settled).
func (c *settleCluster) waitSettled(bound, hold time.Duration) (time.Duration, int64, bool) {
	start := time.Now()
	var since time.Time
	var sinceGen int64
	for time.Since(start) < bound+hold {
		gen, ok := c.settled()
		switch {
		case !ok:
			since = time.Time{}
		case since.IsZero() || gen != sinceGen:
			since, sinceGen = time.Now(), gen
		case time.Since(since) >= hold:
			if took := since.Sub(start); took <= bound {
				return took, gen, true
			}
			return 0, 0, false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return 0, 0, false
}

// report logs the state of every live member and of the group as the broker
// sees it.
func (c *settleCluster) report() {
	c.t.Helper()
	live := c.live()
	c.mu.Lock()
	for _, m := range live {
		parts := make([]int, 0, len(m.parts))
		for p := range m.parts {
			parts = append(parts, p)
		}
		sort.Ints(parts)
		c.t.Logf("%s: generation %d, partitions %v, ended %v; last records:\n\t%s", m.name, m.gen, parts, m.ended, strings.Join(m.tail, "\n\t"))
	}
	c.mu.Unlock()
	transport := &kafka.Transport{}
	defer transport.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.broker.Addr()), Timeout: 5 * time.Second, Transport: transport}
	resp, err := client.DescribeGroups(context.Background(), &kafka.DescribeGroupsRequest{GroupIDs: []string{settleGroup}})
	if err != nil {
		c.t.Logf("describe group: %v", err)
		return
	}
	for _, g := range resp.Groups {
		c.t.Logf("broker: group %s %s, %d members", g.GroupID, g.GroupState, len(g.Members))
	}
}

func settleSeed(t *testing.T) uint64 {
	v := os.Getenv("EDDY_SETTLE_SEED")
	if v == "" {
		return 1
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		t.Fatalf("EDDY_SETTLE_SEED=%q: %v", v, err)
	}
	return n
}

func settleDuration(t *testing.T, name string, def time.Duration) time.Duration {
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

// settleModeEnv is the members' environment: the stream.Consumer as it is,
// unless EDDY_SETTLE_MODE=group asks for a bare kafka-go group with the
// EDDY_SETTLE_* settings (see TestHelperMember).
func settleModeEnv() []string {
	var env []string
	for _, name := range []string{envMode, envSession, envHeart, envRebal, envBackoff, envBounded} {
		if v, ok := os.LookupEnv(name); ok {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// TestGroupSettlesAfterKillChurn runs three members (stream.Consumer, the
// default 10 s session timeout) as child processes; for ~30 s it SIGKILLs a
// random one and starts a replacement every 0.5–5 s (seeded); then it stops
// and requires, within 3 session timeouts plus a rebalance timeout, one
// generation in which every live member holds partitions, held for 3 s.
func TestGroupSettlesAfterKillChurn(t *testing.T) {
	const members = 3
	session := DefaultSessionTimeout
	bound := 3*session + session // 3 session timeouts + the rebalance timeout (= the session timeout)
	churn := settleDuration(t, "EDDY_SETTLE_CHURN", 30*time.Second)
	bound = settleDuration(t, "EDDY_SETTLE_BOUND", bound)
	seed := settleSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0x5e771e))

	c := newSettleCluster(t, settleModeEnv()...)
	for range members {
		c.start()
	}
	if took, gen, ok := c.waitSettled(30*time.Second, time.Second); !ok {
		c.report()
		t.Fatal("the first generation never settled")
	} else {
		t.Logf("first generation %d settled after %v", gen, took.Round(time.Millisecond))
	}

	kills := 0
	for end := time.Now().Add(churn); time.Now().Before(end); {
		time.Sleep(time.Duration(500+rng.IntN(4500)) * time.Millisecond)
		live := c.live()
		if len(live) == 0 {
			t.Fatal("every member exited by itself")
		}
		c.kill(live[rng.IntN(len(live))])
		c.start()
		kills++
	}
	t.Logf("seed %d: %d SIGKILLs and restarts in %v", seed, kills, churn)

	took, gen, ok := c.waitSettled(bound, 3*time.Second)
	if !ok {
		c.report()
		t.Fatalf("seed %d: no settled generation within %v of the end of the churn", seed, bound)
	}
	t.Logf("seed %d: settled in generation %d, %v after the churn ended", seed, gen, took.Round(time.Millisecond))
}

// generationEnded reports whether m's latest generation has ended: it is
// rejoining the group.
func (c *settleCluster) generationEnded(m *settleMember) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m.ended
}

// TestSIGTERMDuringARebalance stops a member with SIGTERM while its
// JoinGroup waits at the coordinator, and requires it to exit within 5 s.
// Three members settle; one is SIGKILLed and a replacement joins at once,
// so the two survivors rejoin and wait: the join phase ends only when the
// killed member's session expires or the broker's rebalance timer fires.
// Half a second into that wait one survivor gets SIGTERM. The members'
// session timeout is 30 s, so that the wait (15 s with the embedded
// broker, which caps the rebalance timeout at half the session) is clearly
// longer than the bound: a stop must not depend on it.
func TestSIGTERMDuringARebalance(t *testing.T) {
	const bound = 5 * time.Second
	const session = 30 * time.Second
	c := newSettleCluster(t, append(settleModeEnv(), envSession+"="+session.String())...)
	for range 3 {
		c.start()
	}
	if _, _, ok := c.waitSettled(30*time.Second, time.Second); !ok {
		c.report()
		t.Fatal("the first generation never settled")
	}
	live := c.live()
	c.kill(live[0])
	c.start()
	survivor := live[1]
	deadline := time.Now().Add(session / 2) // a heartbeat interval is a quarter of the session
	for !c.generationEnded(survivor) || !c.generationEnded(live[2]) {
		if time.Now().After(deadline) {
			c.report()
			t.Fatal("the survivors never started rejoining")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // their JoinGroups are parked
	start := time.Now()
	if err := survivor.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-survivor.exit:
	case <-time.After(30 * time.Second):
		t.Fatal("the member did not exit within 30 s of SIGTERM")
	}
	took := time.Since(start)
	c.mu.Lock()
	closeMs := survivor.closeMs
	c.mu.Unlock()
	t.Logf("SIGTERM during a rebalance: the member exited after %v (its own measure, signal to Run's return: %d ms)", took.Round(time.Millisecond), closeMs)
	if took > bound {
		c.report()
		t.Errorf("the member took %v to exit after SIGTERM; want at most %v", took.Round(time.Millisecond), bound)
	}
	// The rest of the group carries on without it.
	if took, gen, ok := c.waitSettled(session, time.Second); !ok {
		c.report()
		t.Error("the remaining members never settled")
	} else {
		t.Logf("the remaining members settled in generation %d, %v later", gen, took.Round(time.Millisecond))
	}
}
