package eddy

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/serving"
	"github.com/eddyhq/eddy/stream"
)

// champions fans served snapshots out through the snapshots topic: the
// instance that learns a model writes every champion it serves there
// (promotions and operator actions alike), and every instance serves, from
// the topic, the newest champion of every model, decoded from the same
// bytes, so that all answer with the same version and bitwise the same
// prediction.
//
// A champion is ordered by the epoch of its unit's owner and a sequence
// within it: an instance serves a record only if it is newer than what it
// serves, so that what an evicted owner still writes (an older epoch) never
// replaces what its successor serves. A snapshot an engine publishes before
// its unit is acquired (restored from the local store at start) is served
// locally only, and replaced by the topic's.
type champions struct {
	log    *slog.Logger
	server *serving.Server
	engine *engine.Engine // set once New has created it
	topic  *stream.StateLog
	models map[string]*learner.Model // one per model, only to decode its snapshots

	mu      sync.Mutex
	served  map[string]position // what each model serves
	fromLog map[string][]byte   // the encoding of what it serves, when it came from the topic
	highest map[string]uint64   // the highest version served, from here or the topic
	outbox  map[string]outgoing // newest champion per model not written yet
	kick    chan struct{}
}

type position struct{ epoch, seq uint64 }

func (p position) after(q position) bool {
	return p.epoch > q.epoch || p.epoch == q.epoch && p.seq > q.seq
}

type outgoing struct {
	at      position
	version uint64
}

func newChampions(cfg Config, cluster stream.Cluster, server *serving.Server, log *slog.Logger) (*champions, error) {
	topic, err := stream.NewStateLog(stream.StateLogConfig{Brokers: cluster.Brokers, TLS: cluster.TLS, SASL: cluster.SASL, Topic: cfg.SnapshotsTopic()}, log)
	if err != nil {
		return nil, err
	}
	c := &champions{
		log: log.With("component", "champions"), server: server, topic: topic,
		models: make(map[string]*learner.Model), served: make(map[string]position),
		fromLog: make(map[string][]byte), highest: make(map[string]uint64),
		outbox: make(map[string]outgoing), kick: make(chan struct{}, 1),
	}
	for _, mc := range cfg.Learner.Models {
		m, err := learner.NewModel(mc, cfg.Learner.RollingWindow)
		if err != nil {
			return nil, err
		}
		c.models[mc.Name] = m
	}
	return c, nil
}

// publish serves snap here and, once the model's unit is acquired, queues
// it for the topic. Engine goroutine only (it reads the unit's epoch).
func (c *champions) publish(snap *learner.Snapshot) {
	if c.engine != nil && c.engine.Following(snap.Model()) {
		return // a standby's: the owner's champion serves
	}
	if err := c.server.Publish(servedSnapshot{snap}); err != nil {
		c.log.Error("publish snapshot", "err", err)
		return
	}
	if c.engine == nil {
		return // engine.New restores: its unit is not assigned yet, so served here only
	}
	epoch := c.engine.Epoch(snap.Model())
	if epoch == 0 {
		return // restored before its unit was assigned: served here only
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	at := position{epoch, 1}
	if last := c.served[snap.Model()]; last.epoch == epoch {
		at.seq = last.seq + 1
	}
	c.served[snap.Model()] = at
	delete(c.fromLog, snap.Model())
	c.highest[snap.Model()] = max(c.highest[snap.Model()], snap.Version())
	c.outbox[snap.Model()] = outgoing{at: at, version: snap.Version()}
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// write writes queued champions to the topic until ctx ends. A write that
// fails is retried every second unless a newer champion replaces it.
func (c *champions) write(ctx context.Context) error {
	failing := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-c.kick:
		}
		c.mu.Lock()
		batch := c.outbox
		c.outbox = make(map[string]outgoing)
		c.mu.Unlock()
		for model, out := range batch {
			err := c.writeOne(ctx, model, out)
			switch {
			case err == nil && failing:
				failing = false
				c.log.Info("writing champions to the snapshots topic works again")
			case err != nil && ctx.Err() == nil:
				if !failing {
					failing = true
					c.log.Warn("writing a champion to the snapshots topic failed; other instances serve the previous one until a retry succeeds",
						"model", model, "version", out.version, "err", err)
				}
				c.requeue(model, out)
			}
		}
	}
}

func (c *champions) writeOne(ctx context.Context, model string, out outgoing) error {
	data, ok, err := c.engine.SnapshotData(model, out.version)
	if err != nil || !ok {
		return err // not stored any more: a newer champion replaced it
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.topic.Write(wctx, stream.Checkpoint{Unit: model, Epoch: out.at.epoch, Seq: out.at.seq, Data: data})
}

// requeue puts a failed write back unless a newer one is queued, and
// retries it in a second.
func (c *champions) requeue(model string, out outgoing) {
	c.mu.Lock()
	if queued, ok := c.outbox[model]; !ok || out.at.after(queued.at) {
		c.outbox[model] = out
	}
	c.mu.Unlock()
	time.AfterFunc(time.Second, func() {
		select {
		case c.kick <- struct{}{}:
		default:
		}
	})
}

// follow serves every newer champion the topic carries until ctx ends,
// reading it again from the start after an error.
func (c *champions) follow(ctx context.Context, caughtUp func()) error {
	var once sync.Once
	for {
		err := c.topic.Follow(ctx, c.receive, func() { once.Do(caughtUp) })
		if ctx.Err() != nil {
			return nil
		}
		c.log.Warn("reading the snapshots topic failed; reading it again in a second", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (c *champions) receive(cp *stream.Checkpoint) {
	if c.models[cp.Unit] == nil {
		return // a model this instance is not configured with
	}
	at := position{cp.Epoch, cp.Seq}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !at.after(c.served[cp.Unit]) {
		return
	}
	snap, ok := c.serve(cp.Unit, cp.Data)
	if !ok {
		return
	}
	c.served[cp.Unit] = at
	c.fromLog[cp.Unit] = cp.Data
	c.highest[cp.Unit] = max(c.highest[cp.Unit], snap.Version())
	c.log.Debug("champion from the snapshots topic", "model", cp.Unit, "version", snap.Version(), "epoch", cp.Epoch, "seq", cp.Seq)
}

// serve decodes a champion of model and serves it. It decodes with the
// engine's live model when the engine holds the model (as its owner or a
// standby), so that the snapshot derives history features from the live
// histories; with a model of its own otherwise (one without histories).
// c.mu must be held.
func (c *champions) serve(model string, data []byte) (*learner.Snapshot, bool) {
	m := c.models[model]
	if c.engine != nil {
		if live := c.engine.Live(model); live != nil {
			m = live
		}
	}
	snap, err := m.DecodeSnapshot(data)
	if err != nil {
		c.log.Error("a champion on the snapshots topic cannot be decoded; still serving the previous one", "model", model, "err", err)
		return nil, false
	}
	if err := c.server.Publish(servedSnapshot{snap}); err != nil {
		c.log.Error("publish snapshot", "err", err)
		return nil, false
	}
	return snap, true
}

// reloaded serves the topic's champion of model again, decoded with the
// model the engine has just loaded (engine.SetOnLoad): the one served was
// decoded with the model it replaced, whose histories no longer advance.
func (c *champions) reloaded(model string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if data := c.fromLog[model]; data != nil {
		c.serve(model, data)
	}
}

// highestVersion returns the highest version of model served so far
// (engine.SetVersionFloor).
func (c *champions) highestVersion(model string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.highest[model]
}

func (c *champions) close() { c.topic.Close() }
