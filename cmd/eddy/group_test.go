//go:build processtests

package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
	"github.com/eddyhq/eddy/stream"
)

// group is several `eddy serve` processes in one consumer group over a real
// broker process, each with its own data directory and metrics port, as on
// several machines.
type group struct {
	t       *testing.T
	bin     string
	broker  string
	name    string
	args    []string // extra serve flags
	dirs    []string
	metrics []string
	procs   []*process
	logDir  string   // with it, members log at info as JSON, one file per run
	logs    []string // those files
}

// newGroup builds eddy, starts a broker process and creates the events
// topic with partitions.
func newGroup(t *testing.T, name string, members, partitions int, args ...string) *group {
	bin := filepath.Join(t.TempDir(), "eddy")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	g := &group{t: t, bin: bin, broker: freeAddr(t), name: name, args: args}
	g.procs = append(g.procs, startProcess(t, bin, "broker", "--addr", g.broker)) // procs[0] is the broker
	waitBroker(t, g.broker)
	if err := stream.EnsureTopics(context.Background(), []string{g.broker}, []stream.TopicSpec{{Name: "events", Partitions: partitions}, {Name: "events.dlq", Partitions: 1}}); err != nil {
		t.Fatal(err)
	}
	for range members {
		g.dirs = append(g.dirs, t.TempDir())
		g.metrics = append(g.metrics, freeAddr(t))
		g.procs = append(g.procs, nil)
	}
	return g
}

// start starts member i (0-based) on its data directory.
func (g *group) start(i int) {
	args := append([]string{"serve", "--brokers", g.broker, "--data-dir", g.dirs[i], "--grpc-addr", "127.0.0.1:0",
		"--metrics-addr", g.metrics[i], "--checkpoint-every", "200", "--group", g.name}, g.args...)
	if g.logDir == "" {
		g.procs[i+1] = startProcess(g.t, g.bin, append(args, "--log-level", "warn")...)
		return
	}
	f := filepath.Join(g.logDir, fmt.Sprintf("member%d-run%d.log", i, len(g.logs)))
	g.logs = append(g.logs, f)
	g.procs[i+1] = startProcessLogging(g.t, f, g.bin, append(args, "--log-level", "info", "--log-format", "json")...)
}

func (g *group) member(i int) *process { return g.procs[i+1] }

// owner returns the member that learns the model now, or -1.
func (g *group) owner() int {
	for i, m := range g.metrics {
		if g.member(i) != nil && scrape(m, `eddy_unit_owned{unit="default"}`) == 1 {
			return i
		}
	}
	return -1
}

// learned returns what the owner reports as learned, or -1.
func (g *group) learned() float64 {
	if i := g.owner(); i >= 0 {
		return scrape(g.metrics[i], `eddy_model_examples{model="default"}`)
	}
	return -1
}

// stopAll stops every member with SIGTERM (each within 5 s, exit code 0),
// then the broker.
func (g *group) stopAll() {
	g.t.Helper()
	for i := range g.dirs {
		if p := g.member(i); p != nil {
			start := time.Now()
			if code := p.stop(g.t, syscall.SIGTERM, 5*time.Second); code != 0 {
				g.t.Fatalf("member %d exited with %d after SIGTERM, want 0", i, code)
			}
			g.t.Logf("member %d stopped in %v", i, time.Since(start).Round(time.Millisecond))
			g.procs[i+1] = nil
		}
	}
}

// exported is the model as the newest state in the group's state topic
// holds it: what any instance that takes it over continues from.
type exported struct {
	weights   []float64
	intercept float64
	learned   uint64
	next      map[int]int64 // next offset per partition of "events"
}

func exportedModel(t *testing.T, broker, groupName string) exported {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	sl, err := stream.NewStateLog(stream.StateLogConfig{Brokers: []string{broker}, Topic: groupName + ".state"}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cp, _, err := sl.Read(ctx, "default")
	if err != nil || cp == nil {
		t.Fatalf("no exported state of the model in %s.state (err %v)", groupName, err)
	}
	db, err := store.Open(filepath.Join(t.TempDir(), "pebble"), log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	e, err := engine.New(engine.Config{Models: []learner.ModelConfig{{Name: "default"}}}, db, func(*learner.Snapshot) {}, prometheus.NewRegistry(), log)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Acquire("default", &engine.UnitState{Epoch: cp.Epoch, Seq: cp.Seq, Data: cp.Data}, cp.Epoch+1); err != nil {
		t.Fatal(err)
	}
	m := e.Models()[0]
	w, b := m.Weights()
	return exported{weights: w, intercept: b, learned: m.Learned(), next: e.NextOffsets("events")}
}

// requireExactlyOnce checks that the exported model learned exactly n
// events and that its positions account for every one of them: each
// partition is consumed from 0 in order, so positions that add up to n
// with n examples learned mean none was skipped or learned twice.
func requireExactlyOnce(t *testing.T, ex exported, n int) {
	t.Helper()
	var sum int64
	for _, next := range ex.next {
		sum += next
	}
	if ex.learned != uint64(n) || sum != int64(n) {
		t.Fatalf("the model learned %d examples and its positions %v add up to %d; want exactly %d each", ex.learned, ex.next, sum, n)
	}
}

func sameWeights(t *testing.T, got, want exported) {
	t.Helper()
	if math.Float64bits(got.intercept) != math.Float64bits(want.intercept) || len(got.weights) != len(want.weights) {
		t.Fatalf("intercept %v vs %v, %d vs %d weights", got.intercept, want.intercept, len(got.weights), len(want.weights))
	}
	for i := range want.weights {
		if math.Float64bits(got.weights[i]) != math.Float64bits(want.weights[i]) {
			t.Fatalf("weight %d = %v, uninterrupted %v", i, got.weights[i], want.weights[i])
		}
	}
}

// TestFailoverAfterTheOwnerIsKilledAndItsDiskIsLost runs three instances at
// default settings (10 s session timeout); SIGKILLs the one that learns the
// model mid-stream and deletes its data directory; another takes the model
// over from the state topic, and in the end the model has learned exactly
// every event. With one partition its weights are bitwise those of an
// uninterrupted run.
func TestFailoverAfterTheOwnerIsKilledAndItsDiskIsLost(t *testing.T) {
	events := envInt(t, "EDDY_FAILOVER_EVENTS", 40000)
	for _, partitions := range []int{6, 1} {
		t.Run(fmt.Sprintf("%d partitions", partitions), func(t *testing.T) {
			g := newGroup(t, "failover", 3, partitions)
			for i := range 3 {
				g.start(i)
			}
			prod := newPacedProducer(g.broker, events)
			prod.every = 25 * time.Millisecond // about 4,000 events/s
			go prod.run()
			waitFor(t, 60*time.Second, "a quarter of the events learned", func() bool { return g.learned() >= float64(events/4) })
			victim := g.owner()
			before := g.learned()
			g.member(victim).stop(t, syscall.SIGKILL, 5*time.Second)
			killed := time.Now()
			g.procs[victim+1] = nil
			if err := os.RemoveAll(g.dirs[victim]); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 60*time.Second, "another instance learning the model", func() bool { return g.owner() >= 0 && g.learned() > 0 })
			t.Logf("killed the owner at %v learned; member %d learns from %v after %v", before, g.owner(), g.learned(), time.Since(killed).Round(time.Millisecond))
			if n := prod.wait(t); n != events {
				t.Fatalf("produced %d", n)
			}
			waitFor(t, 120*time.Second, "every event learned", func() bool { return g.learned() >= float64(events) })
			time.Sleep(2 * time.Second)
			if got := g.learned(); got != float64(events) {
				t.Fatalf("the new owner reports %v examples learned, want exactly %d", got, events)
			}
			g.stopAll()
			got := exportedModel(t, g.broker, "failover")
			requireExactlyOnce(t, got, events)
			if partitions == 1 {
				// The reference: one instance of another group over the same
				// topic, uninterrupted.
				ref := &group{t: t, bin: g.bin, broker: g.broker, name: "reference", dirs: []string{t.TempDir()}, metrics: []string{freeAddr(t)}, procs: []*process{nil, nil}}
				ref.start(0)
				waitFor(t, 120*time.Second, "the reference learned every event", func() bool { return ref.learned() == float64(events) })
				ref.stopAll()
				sameWeights(t, got, exportedModel(t, g.broker, "reference"))
				t.Logf("weights bitwise equal to an uninterrupted run")
			}
		})
	}
}

// TestChurnOfThreeInstancesLearnsEveryEventExactlyOnce SIGKILLs a random
// one of three instances at random moments, at least 15 times, restarting
// it on its own data directory, while events stream into 6 partitions;
// then it checks that the model learned exactly every event. With a short
// session timeout and with the default one. Then the same with graceful
// rolling restarts (SIGTERM), where no event may be learned twice even
// transiently: the handover makes the next owner start exactly where the
// last one stopped. EDDY_CHURN_EVENTS (default 30000), EDDY_CHURN_KILLS
// (default 15) and EDDY_CRASH_SEED vary it.
func TestChurnOfThreeInstancesLearnsEveryEventExactlyOnce(t *testing.T) {
	events := envInt(t, "EDDY_CHURN_EVENTS", 30000)
	kills := envInt(t, "EDDY_CHURN_KILLS", 15)
	seed := uint64(envInt(t, "EDDY_CRASH_SEED", 1))
	for _, tc := range []struct {
		name    string
		sig     syscall.Signal
		session string
	}{
		{"SIGKILL, 2s session", syscall.SIGKILL, "2s"},
		{"SIGKILL, default session", syscall.SIGKILL, ""},
		{"SIGTERM rolling restarts", syscall.SIGTERM, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.session != "" {
				args = append(args, "--session-timeout", tc.session)
			}
			g := newGroup(t, "churn", 3, 6, args...)
			g.logDir = t.TempDir()
			if dir := os.Getenv("EDDY_KEEP_LOGS"); dir != "" { // to look into a failure
				g.logDir = filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_"))
				if err := os.MkdirAll(g.logDir, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for i := range 3 {
				g.start(i)
			}
			rng := rand.New(rand.NewPCG(seed, 11))
			prod := newPacedProducer(g.broker, events)
			prod.every = 50 * time.Millisecond // about 2,000 events/s: the stream spans the churn
			go prod.run()
			for k := range kills {
				time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
				i := rng.IntN(3)
				if tc.sig == syscall.SIGTERM {
					if code := g.member(i).stop(t, syscall.SIGTERM, 5*time.Second); code != 0 {
						t.Fatalf("restart %d: member %d exited with %d after SIGTERM", k, i, code)
					}
				} else {
					g.member(i).stop(t, syscall.SIGKILL, 5*time.Second)
				}
				g.start(i)
			}
			if n := prod.wait(t); n != events {
				t.Fatalf("produced %d", n)
			}
			waitFor(t, envDuration(t, "EDDY_CHURN_SETTLE", 180*time.Second), "every event learned", func() bool { return g.learned() >= float64(events) })
			time.Sleep(2 * time.Second)
			if got := g.learned(); got != float64(events) {
				t.Fatalf("the owner reports %v examples learned, want exactly %d", got, events)
			}
			g.stopAll()
			requireExactlyOnce(t, exportedModel(t, g.broker, "churn"), events)
			byRuns, runs := g.learnedByEachRun()
			t.Logf("%d events, %d restarts (%v): the model learned exactly %d; the %d runs that stopped cleanly learned %d themselves",
				events, kills, tc.sig, events, runs, byRuns)
			if tc.sig == syscall.SIGTERM && (byRuns != events || runs != kills+3) {
				t.Fatalf("with graceful restarts only, the %d runs (want %d) learned %d events between them, want exactly %d: the handovers replayed %d",
					runs, kills+3, byRuns, events, byRuns-events)
			}
		})
	}
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

// learnedByEachRun adds up what every run of the group's members reported,
// when it stopped cleanly, as learned by itself.
func (g *group) learnedByEachRun() (total int, runs int) {
	g.t.Helper()
	for _, f := range g.logs {
		data, err := os.ReadFile(f)
		if err != nil {
			g.t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, `"msg":"eddy stopped cleanly"`) {
				continue
			}
			_, rest, ok := strings.Cut(line, `"learned_here":`)
			if !ok {
				g.t.Fatalf("a clean stop without learned_here: %s", line)
			}
			n, err := strconv.Atoi(strings.TrimRight(strings.SplitN(rest, ",", 2)[0], "}"))
			if err != nil {
				g.t.Fatalf("learned_here in %s: %v", line, err)
			}
			total += n
			runs++
		}
	}
	return total, runs
}

// TestAZombieOwnerCannotOverwriteItsSuccessor stops the owner with SIGSTOP
// for longer than the session timeout (what a long GC pause or a frozen VM
// looks like), lets another instance take the model over and learn, then
// resumes it with SIGCONT: whatever it still writes (its handover export,
// snapshots, commits) carries its old epoch, so no restorer and no
// instance uses it. The model ends having learned exactly every event, and
// every instance serves the same version.
func TestAZombieOwnerCannotOverwriteItsSuccessor(t *testing.T) {
	events := envInt(t, "EDDY_ZOMBIE_EVENTS", 30000)
	g := newGroup(t, "zombie", 3, 3, "--session-timeout", "2s", "--state-interval", "500ms", "--promote-interval", "200ms")
	for i := range 3 {
		g.start(i)
	}
	prod := newPacedProducer(g.broker, events)
	prod.every = 25 * time.Millisecond
	go prod.run()
	waitFor(t, 60*time.Second, "a quarter of the events learned", func() bool { return g.learned() >= float64(events/4) })
	zombie := g.owner()
	frozenAt := scrape(g.metrics[zombie], `eddy_model_examples{model="default"}`)
	exportsBefore := scrape(g.metrics[zombie], `eddy_state_exports_total{result="ok"}`)
	if err := g.member(zombie).cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	var successor int
	waitFor(t, 60*time.Second, "another instance learning past the frozen owner", func() bool {
		for i, m := range g.metrics {
			if i != zombie && scrape(m, `eddy_unit_owned{unit="default"}`) == 1 && scrape(m, `eddy_model_examples{model="default"}`) > frozenAt+1000 {
				successor = i
				return true
			}
		}
		return false
	})
	if err := g.member(zombie).cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	t.Logf("owner %d frozen at %v examples; member %d took over; the zombie resumed and wrote %v exports with its old epoch since",
		zombie, frozenAt, successor, scrape(g.metrics[zombie], `eddy_state_exports_total{result="ok"}`)-exportsBefore)
	if n := prod.wait(t); n != events {
		t.Fatalf("produced %d", n)
	}
	waitFor(t, 120*time.Second, "every event learned", func() bool {
		return scrape(g.metrics[successor], `eddy_model_examples{model="default"}`) >= float64(events) || g.learned() >= float64(events)
	})
	time.Sleep(3 * time.Second)
	versions := map[float64]bool{}
	for _, m := range g.metrics {
		versions[scrape(m, `eddy_served_model_version{model="default"}`)] = true
	}
	g.stopAll()
	requireExactlyOnce(t, exportedModel(t, g.broker, "zombie"), events)
	if len(versions) != 1 {
		t.Fatalf("the instances serve versions %v: the zombie's snapshots reached some", versions)
	}
}

// TestALocalStateRolledBackToAnOldCopySkipsNothing restarts the only
// instance on a copy of its data directory taken earlier (as a restore
// from a backup or a file system snapshot would): the model continues from
// the newer exported state, or from the old copy's own positions, and in
// the end has learned exactly every event.
func TestALocalStateRolledBackToAnOldCopySkipsNothing(t *testing.T) {
	const first, second = 8000, 6000
	g := newGroup(t, "rollback", 1, 2)
	g.start(0)
	prod := newPacedProducer(g.broker, first)
	prod.every = 10 * time.Millisecond
	go prod.run()
	prod.wait(t)
	waitFor(t, 60*time.Second, "the first events learned", func() bool { return g.learned() == first })
	g.stopAll()
	old := t.TempDir()
	if err := os.CopyFS(old, os.DirFS(g.dirs[0])); err != nil {
		t.Fatal(err)
	}
	g.start(0)
	prod = newPacedProducer(g.broker, second)
	prod.every = 10 * time.Millisecond
	go prod.run()
	prod.wait(t)
	waitFor(t, 60*time.Second, "every event learned", func() bool { return g.learned() == first+second })
	g.stopAll()
	// The disk goes back to the old copy.
	if err := os.RemoveAll(g.dirs[0]); err != nil {
		t.Fatal(err)
	}
	g.dirs[0] = old
	g.start(0)
	prod = newPacedProducer(g.broker, 1000)
	go prod.run()
	prod.wait(t)
	waitFor(t, 60*time.Second, "the restarted instance learned the new events", func() bool { return g.learned() >= first+second+1000 })
	time.Sleep(time.Second)
	if got := g.learned(); got != first+second+1000 {
		t.Fatalf("after the rollback of the local state the model learned %v, want exactly %d", got, first+second+1000)
	}
	g.stopAll()
	requireExactlyOnce(t, exportedModel(t, g.broker, "rollback"), first+second+1000)
}
