package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
)

const benchEntitiesUsage = `bench-entities [flags]

Measures entity histories beyond memory, through the real engine and a
Pebble store (events generated in this process, no Kafka): a model keyed by
"user" with a window of the last 10 amounts, holding at most --bound
histories in memory after each checkpoint (every 1000 events).

  1. fill:     one event each for --entities distinct users
  2. hot:      --events events of --hot users (a set that fits the bound)
  3. uniform:  --events events of users drawn uniformly from all of them
  4. restart:  the store reopened: time to the first learned event
  5. load-all: what restarts did before: every stored history read into
               memory (the first --load-all of them), before any event

and prints events/s, histories in memory, the hit ratio and the peak RSS
(VmHWM) after each. The store is a temporary directory unless --dir is given.
Use it to fill BENCHMARKS.md.
`

func runBenchEntities(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet(env, "bench-entities", benchEntitiesUsage)
	entities := fs.Int("entities", 10_000_000, "distinct users to fill the store with")
	bound := fs.Int("bound", features.DefaultMaxEntitiesInMemory, "max_entities_in_memory")
	hot := fs.Int("hot", 0, "users of the hot run (0: half the bound)")
	events := fs.Int("events", 2_000_000, "events of the hot and the uniform run")
	loadAll := fs.Int("load-all", 1_000_000, "histories the load-everything restart reads (0: skip)")
	dir := fs.String("dir", "", "store directory (default: a temporary one, removed afterwards)")
	hashBits := fs.Int("hash-bits", features.DefaultHashBits, "hash_bits of the model: its state, written whole at every checkpoint, is 8 bytes times 2^hash_bits")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	if err := parseFlags(fs, env, args); err != nil {
		return helpOK(err)
	}
	if *entities < 1 || *bound < 1 || *events < 0 || *loadAll < 0 || *hot < 0 {
		fmt.Fprintln(env.stderr, "eddy bench-entities: --entities and --bound must be positive, the others not negative")
		return errUsage
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if *hot == 0 {
		*hot = max(*bound/2, 1)
	}
	if *dir == "" {
		d, err := os.MkdirTemp("", "eddy-bench-entities-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		*dir = d
	}
	b := &entityBench{out: env.stdout, progress: env.stderr, dir: *dir, cfg: engine.Config{Models: []learner.ModelConfig{{
		Name: "m", Topic: "events", Features: features.Config{Key: "user", MaxEntitiesInMemory: *bound, HashBits: *hashBits,
			Windows: []features.WindowConfig{{Field: "amount", Size: 10, Aggs: []string{"mean"}}}},
	}}}}
	if err := b.open(); err != nil {
		return err
	}
	defer b.close()
	per := features.NewHistory(b.cfg.Models[0].Features).EntityBytes()
	fmt.Fprintf(b.out, "eddy bench-entities: %d users, max_entities_in_memory %d (about %d MB of histories at %d bytes each), hash_bits %d, GOMAXPROCS=%d, GOMEMLIMIT=%s, store %s\n",
		*entities, *bound, *bound*per>>20, per, *hashBits, runtime.GOMAXPROCS(0), cmp.Or(os.Getenv("GOMEMLIMIT"), "off"), *dir)
	if err := b.run(ctx, "fill", *entities, func(i int) int { return i }); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	if err := b.run(ctx, "hot", *events, func(int) int { return rng.IntN(min(*hot, *entities)) }); err != nil {
		return err
	}
	if err := b.run(ctx, "uniform", *events, func(int) int { return rng.IntN(*entities) }); err != nil {
		return err
	}
	if err := b.restart(*entities); err != nil {
		return err
	}
	if *loadAll > 0 {
		return b.loadEverything(*loadAll)
	}
	return nil
}

// entityBench is one engine on one store, and where it is in the topic.
type entityBench struct {
	out, progress io.Writer
	dir           string
	cfg           engine.Config
	st            *store.Store
	e             *engine.Engine
	reg           *prometheus.Registry
	next          int64 // the next offset of the generated topic
	fields        []features.Field
	user          []byte
}

func (b *entityBench) open() error {
	st, err := store.Open(b.dir, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	if err != nil {
		return err
	}
	b.reg = prometheus.NewRegistry()
	e, err := engine.New(b.cfg, st, func(*learner.Snapshot) {}, b.reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		st.Close()
		return err
	}
	b.st, b.e = st, e
	if next, ok := e.NextOffsets("events")[0]; ok {
		b.next = next
	}
	return nil
}

func (b *entityBench) close() {
	if b.st != nil {
		b.st.Close()
		b.st, b.e = nil, nil
	}
}

// process learns one event of user at offset b.next.
func (b *entityBench) process(user int, amount float64) error {
	b.user = strconv.AppendInt(append(b.user[:0], "user-"...), int64(user), 10)
	b.fields = append(b.fields[:0], features.Field{Name: []byte("user"), Kind: features.String, Str: b.user},
		features.Field{Name: []byte("amount"), Kind: features.Number, Num: amount})
	err := b.e.Process("events", &engine.Example{Offset: b.next, Fields: b.fields, Label: float64(user % 2), HasLabel: true})
	b.next++
	return err
}

func (b *entityBench) checkpoint() error {
	return b.e.Checkpoint([]engine.Offset{{TopicPartition: engine.TopicPartition{Topic: "events"}, Next: b.next}})
}

// run learns n events, the i-th of user pick(i), checkpointing every 1000,
// and prints the figures of the run.
func (b *entityBench) run(ctx context.Context, name string, n int, pick func(int) int) error {
	before := b.cache()
	start := time.Now()
	for i := range n {
		if err := b.process(pick(i), float64(i%97)); err != nil {
			return err
		}
		if i%1000 == 999 || i == n-1 {
			if err := b.checkpoint(); err != nil {
				return err
			}
		}
		if i%1_000_000 == 999_999 {
			if err := ctx.Err(); err != nil {
				return err
			}
			fmt.Fprintf(b.progress, "  %s: %d of %d events, %.0f/s, RSS %s\n", name, i+1, n, float64(i+1)/time.Since(start).Seconds(), mib(rss("VmRSS")))
		}
	}
	elapsed := time.Since(start)
	after := b.cache()
	hits, misses := after[0]-before[0], after[1]-before[1]
	fmt.Fprintf(b.out, "%-8s %10d events %9.0f events/s  in memory %8.0f  hit ratio %.3f  store reads %.0f  peak RSS %s  Go runtime %s\n",
		name, n, float64(n)/elapsed.Seconds(), b.metric("eddy_history_entities"), ratio(hits, hits+misses), misses, mib(rss("VmHWM")), mib(goRuntimeBytes()))
	return nil
}

// restart closes the store and measures the time from opening it again to
// the first event learned (of a stored user, read back from the store).
func (b *entityBench) restart(entities int) error {
	b.close()
	runtime.GC()
	start := time.Now()
	if err := b.open(); err != nil {
		return err
	}
	opened := time.Since(start)
	if err := b.process(entities/2, 1); err != nil {
		return err
	}
	first := time.Since(start)
	if err := b.checkpoint(); err != nil {
		return err
	}
	fmt.Fprintf(b.out, "restart  %d users stored: store and engine open in %v, first event learned after %v (histories in memory then: %d)\n",
		entities, opened.Round(time.Microsecond), first.Round(time.Microsecond), int(b.metric("eddy_history_entities")))
	return nil
}

// loadEverything reads up to n stored histories into one History, as a
// restart did before histories were read lazily, and prints how long that
// took before the first event could be learned.
func (b *entityBench) loadEverything(n int) error {
	h := features.NewHistory(b.cfg.Models[0].Features)
	prefix := []byte("history/m/")
	errEnough := fmt.Errorf("enough")
	loaded := 0
	start := time.Now()
	err := b.st.Scan(prefix, func(key, value []byte) error {
		if loaded == n {
			return errEnough
		}
		loaded++
		return h.Load(key[len(prefix):], value)
	})
	if err != nil && err != errEnough {
		return err
	}
	elapsed := time.Since(start)
	fmt.Fprintf(b.out, "load-all %d histories read into memory before the first event (the restart before lazy loading): %v, about %s of histories, %d in memory\n",
		loaded, elapsed.Round(time.Millisecond), mib(h.EstimatedBytes()), h.Entities())
	return nil
}

// cache returns the model's cache hits and misses so far.
func (b *entityBench) cache() [2]float64 {
	return [2]float64{b.metric("eddy_history_cache_hits_total"), b.metric("eddy_history_cache_misses_total")}
}

func (b *entityBench) metric(name string) float64 {
	families, err := b.reg.Gather()
	if err != nil {
		return 0
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// rss returns a size line of /proc/self/status (VmRSS, VmHWM) in bytes, 0
// where there is none.
func rss(field string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// goRuntimeBytes is the memory the Go runtime holds from the OS (what
// GOMEMLIMIT bounds): all it mapped, less what it released.
func goRuntimeBytes() int64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return int64(s[0].Value.Uint64() - s[1].Value.Uint64())
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
