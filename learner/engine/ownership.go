package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// Unit is a unit of ownership: the models that share a topic (an events or
// a labels topic), with every topic they read. One instance of a group
// learns a unit at a time; its state moves between instances as a whole
// (see Export and Acquire).
type Unit struct {
	// Name is the names of its models joined by "+", in configuration
	// order ('+' is not allowed in a model name).
	Name string
	// Models are its models' names, in configuration order.
	Models []string
	// Topics are the events and labels topics its models read.
	Topics []string
	// Hash identifies the models' configuration (defaults applied): two
	// instances with different hashes for one unit run different models.
	Hash string
	// Standby is set when some model of the unit derives features from
	// entity histories: an instance that serves the unit without owning it
	// must then follow it (see Follow), so that Predict with an entity key
	// reads the same histories everywhere.
	Standby bool
}

// UnitState is a unit's complete state as of one checkpoint, as it moves
// between instances: every model's state, monitor, histories, waiting
// events, detections, its newest snapshots, and the next offset of each of
// its partitions. Epoch and Seq order states: a higher Epoch is a later
// owner, and a higher Seq a later checkpoint of the same owner.
type UnitState struct {
	Epoch, Seq uint64
	Data       []byte
}

// Newer reports whether s is a later state than other (nil is older than
// anything).
func (s *UnitState) Newer(other *UnitState) bool {
	if other == nil {
		return s != nil
	}
	return s != nil && (s.Epoch > other.Epoch || s.Epoch == other.Epoch && s.Seq > other.Seq)
}

// ExportedSnapshots is how many of a model's newest snapshots, besides the
// one it serves, its exported state carries: a new owner can roll back or
// promote among them. Older ones stay in the store of the instance that
// made them.
const ExportedSnapshots = 16

// part is one unit and whether this engine holds it.
type part struct {
	Unit
	models []int // indices in Config.Models
	held   bool  // its models are in memory and learn
	follow bool  // held as a standby: learns, but neither snapshots nor publishes (another instance owns it)
	owned  bool  // acquired (Acquire) and not relinquished or followed since
	epoch  uint64
	seq    uint64 // of the newest checkpoint that stored it
}

// ErrNotHeld is returned for a model whose unit another instance learns.
var ErrNotHeld = errors.New("learner: model not learned by this instance")

// unitsOf groups models that share a topic into units, in configuration
// order of their first model.
func unitsOf(models []learner.ModelConfig) ([]*part, error) {
	var parts []*part
	owner := make(map[string]*part) // topic -> part
	for i, mc := range models {
		topics := []string{mc.Topic}
		if mc.LabelsTopic != "" {
			topics = append(topics, mc.LabelsTopic)
		}
		var p *part
		for _, t := range topics {
			q := owner[t]
			switch {
			case q == nil || q == p:
			case p == nil:
				p = q
			default: // this model joins two units: merge q into p
				p.models = append(p.models, q.models...)
				for _, t := range q.Topics {
					owner[t] = p
				}
				p.Topics = append(p.Topics, q.Topics...)
				parts = slices.DeleteFunc(parts, func(r *part) bool { return r == q })
			}
		}
		if p == nil {
			p = &part{}
			parts = append(parts, p)
		}
		p.models = append(p.models, i)
		for _, t := range topics {
			if owner[t] == nil {
				owner[t] = p
				p.Topics = append(p.Topics, t)
			}
		}
	}
	for _, p := range parts {
		slices.Sort(p.models)
		h := sha256.New()
		for _, i := range p.models {
			p.Models = append(p.Models, models[i].Name)
			data, err := json.Marshal(models[i])
			if err != nil {
				return nil, fmt.Errorf("learner: model %s configuration: %w", models[i].Name, err)
			}
			h.Write(data)
		}
		p.Name = strings.Join(p.Models, "+")
		for _, i := range p.models {
			p.Standby = p.Standby || models[i].Features.HasHistory()
		}
		p.Hash = hex.EncodeToString(h.Sum(nil))[:16]
	}
	return parts, nil
}

// Units returns the engine's units of ownership, in configuration order.
func (e *Engine) Units() []Unit {
	out := make([]Unit, len(e.parts))
	for i, p := range e.parts {
		out[i] = p.Unit
		out[i].Models = slices.Clone(p.Models)
		out[i].Topics = slices.Clone(p.Topics)
	}
	return out
}

func (e *Engine) part(name string) *part {
	for _, p := range e.parts {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// partOf returns the unit of the configured model named model, or nil.
func (e *Engine) partOf(model string) *part {
	for _, p := range e.parts {
		if slices.Contains(p.Models, model) {
			return p
		}
	}
	return nil
}

// Epoch returns the owner epoch of the unit of model as this engine holds
// it: 0 if it does not hold it or has not acquired it (a state restored
// from the local store before its unit was assigned). Engine goroutine
// only; the publish function of New may call it.
func (e *Engine) Epoch(model string) uint64 {
	if p := e.partOf(model); p != nil && p.held && !p.follow {
		return p.epoch
	}
	return 0
}

// Following reports whether the engine holds model's unit as a standby
// (Follow): it learns it to keep its histories current, and whatever it
// would promote is not served. Engine goroutine only; the publish function
// of New may call it.
func (e *Engine) Following(model string) bool {
	p := e.partOf(model)
	return p != nil && p.held && p.follow
}

// Follow holds unit as a standby of its owner elsewhere: it keeps the newer
// of the local state and remote (the owner's newest export), and from then
// on learns the unit's events like the owner (NextOffsets says where to
// resume) but creates no snapshot and publishes nothing: the served
// champion comes from the owner. Its state is then a consistent state of its
// own, with its own positions, so a later Acquire may continue from it with
// little to replay. Engine goroutine only.
func (e *Engine) Follow(unit string, remote *UnitState) error {
	p := e.part(unit)
	if p == nil {
		return fmt.Errorf("learner: no unit named %q", unit)
	}
	if p.held && p.follow {
		return nil
	}
	if err := e.readPosition(p); err != nil {
		return err
	}
	local := &UnitState{Epoch: p.epoch, Seq: p.seq}
	source := "local store"
	if reset, err := e.resetPending(p); err != nil {
		return err
	} else if reset {
		// Another instance owns the unit: resetting it here would make
		// this standby's state differ from what the group serves.
		if err := e.cancelReset(p); err != nil {
			return err
		}
		e.log.Warn("the reset of these models did not happen: another instance of the group owns them; to reset them, "+
			"stop the other instances or start the one that owns them with --reset-model", "unit", unit, "models", p.Models)
	}
	if remote.Newer(local) {
		if err := e.importState(p, remote); err != nil {
			return err
		}
		source = "kafka checkpoint"
	}
	p.follow, p.owned = true, false // before load: restore publishes nothing for a follower
	e.noteOwnership()
	if err := e.load(p); err != nil {
		p.follow = false
		return err
	}
	p.held = true
	e.log.Info("following unit as a standby", "unit", unit, "from", source, "state_epoch", p.epoch, "seq", p.seq)
	e.updateStats()
	return nil
}

// unitKey holds a unit's epoch and sequence as of the newest checkpoint.
func unitKey(name string) []byte { return []byte("unit/" + name) }

// readPosition reads the stored epoch and sequence of p.
func (e *Engine) readPosition(p *part) error {
	v, ok, err := e.store.Get(unitKey(p.Name))
	switch {
	case err != nil:
		return fmt.Errorf("learner: %w", err)
	case !ok:
		p.epoch, p.seq = 0, 0
	case len(v) != 16:
		return fmt.Errorf("%w: unit key of %s", learner.ErrCorrupt, p.Name)
	default:
		p.epoch, p.seq = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	}
	return nil
}

func appendPosition(dst []byte, epoch, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(dst, epoch), seq)
}

// prefixes returns the store prefixes that hold p's state, and the exact
// keys (model, monitor, unit), each with a flag: true for a prefix.
func (e *Engine) keyspace(p *part) (prefixes, exact [][]byte) {
	for _, name := range p.Models {
		exact = append(exact, modelKey(name), monitorKey(name), featureDriftKey(name), schemaKey(name), lineageKey(name), pendingCountKey(name))
		prefixes = append(prefixes, historyKey(name, nil), pendingKey(name, nil), pendingAtPrefix(name), detectionPrefix(name),
			snapshotPrefix(name), snapshotInfoPrefix(name), auditPrefix(name), provenancePrefix(name), configPrefix(name))
	}
	for _, t := range p.Topics {
		prefixes = append(prefixes, []byte(offsetPrefix+t+"/"))
	}
	return prefixes, append(exact, unitKey(p.Name))
}

// stateMagic starts an exported unit state; the byte after it is the
// format version.
const stateMagic = "eddy-unit"

// Export returns the state of a held unit as of the last checkpoint that
// committed, read from one consistent view of the store: call it right after
// Checkpoint to move exactly what that checkpoint stored. Engine goroutine
// only (it reads which snapshots the models keep).
func (e *Engine) Export(unit string) (*UnitState, error) {
	p := e.part(unit)
	if p == nil {
		return nil, fmt.Errorf("learner: no unit named %q", unit)
	}
	if !p.held {
		return nil, fmt.Errorf("%w: unit %s", ErrNotHeld, unit)
	}
	view := e.store.NewView()
	defer view.Close()
	st := &UnitState{Epoch: p.epoch, Seq: p.seq}
	data := append([]byte(stateMagic), 1)
	data = binary.AppendUvarint(data, uint64(len(p.Hash)))
	data = append(data, p.Hash...)
	add := func(key, value []byte) error {
		data = binary.AppendUvarint(data, uint64(len(key)))
		data = append(data, key...)
		data = binary.AppendUvarint(data, uint64(len(value)))
		data = append(data, value...)
		return nil
	}
	prefixes, exact := e.keyspace(p)
	for _, key := range exact[:len(exact)-1] { // the unit key travels as Epoch and Seq
		v, ok, err := view.Get(key)
		if err != nil {
			return nil, fmt.Errorf("learner: export %s: %w", unit, err)
		}
		if ok {
			add(key, v)
		}
	}
	keep := e.exportedVersions(p)
	for _, prefix := range prefixes {
		err := view.Scan(prefix, func(key, value []byte) error {
			if v, isSnap := snapshotVersionOf(key); isSnap && !keep[string(key[:len(key)-8])][v] {
				return nil
			}
			return add(key, value)
		})
		if err != nil {
			return nil, fmt.Errorf("learner: export %s: %w", unit, err)
		}
	}
	st.Data = data
	return st, nil
}

// exportedVersions returns, per snapshot and snapshot-info prefix of p's
// models, the versions an export carries: the served one and the newest
// ExportedSnapshots.
func (e *Engine) exportedVersions(p *part) map[string]map[uint64]bool {
	out := make(map[string]map[uint64]bool)
	for _, name := range p.Models {
		versions := make(map[uint64]bool)
		if u := e.byName(name); u != nil {
			for i, k := range u.kept {
				if i >= len(u.kept)-ExportedSnapshots {
					versions[k.version] = true
				}
			}
			if c := u.mon.Champion(); c != nil {
				versions[c.Version()] = true
			}
		}
		out[string(snapshotPrefix(name))] = versions
		out[string(snapshotInfoPrefix(name))] = versions
	}
	return out
}

// snapshotVersionOf returns the version of a snapshot or snapshot-info key.
func snapshotVersionOf(key []byte) (uint64, bool) {
	if (!bytes.HasPrefix(key, []byte("snapshot/")) && !bytes.HasPrefix(key, []byte("snapshot-info/"))) || len(key) < 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(key[len(key)-8:]), true
}

// Acquire makes this engine the owner of unit, as a new owner in epoch
// (raised above the epochs of the local and the remote state if it is not
// already: an epoch is never used twice):
// it keeps the newer of the unit's state in the local store and remote
// (the newest state the previous owner exported; nil if none), replacing
// the local one if remote is newer, loads it if it is not in memory, and
// publishes each model's champion again under the new epoch. Consumption
// resumes from the chosen state's own offsets (NextOffsets). Engine
// goroutine only.
func (e *Engine) Acquire(unit string, remote *UnitState, epoch uint64) error {
	p := e.part(unit)
	if p == nil {
		return fmt.Errorf("learner: no unit named %q", unit)
	}
	if err := e.readPosition(p); err != nil {
		return err
	}
	local := &UnitState{Epoch: p.epoch, Seq: p.seq}
	source := "local store"
	if p.follow {
		source = "standby"
	}
	reload := !p.held
	reset, err := e.resetPending(p)
	if err != nil {
		return err
	}
	switch {
	case reset:
		// Reset on purpose: the fresh local state wins, under an epoch
		// above the exported one (below).
		source = "reset"
	// A standby's own state is consistent but its own lineage: the
	// owner's export, as new or newer by epoch, is what the owner served
	// from, so it wins (a standby speeds up serving, not failover).
	case remote.Newer(local) || p.follow && remote != nil && remote.Epoch >= local.Epoch:
		if err := e.importState(p, remote); err != nil {
			return err
		}
		source, reload = "kafka checkpoint", true
	}
	if reload {
		if err := e.load(p); err != nil {
			return err
		}
	}
	epoch = max(epoch, local.Epoch+1, remoteEpoch(remote)+1)
	batch := e.store.NewBatch()
	defer batch.Close()
	if err := batch.Set(unitKey(p.Name), appendPosition(nil, epoch, p.seq)); err != nil {
		return fmt.Errorf("learner: acquire %s: %w", unit, err)
	}
	if reset {
		if err := batch.Delete(resetKey(p.Name)); err != nil {
			return fmt.Errorf("learner: acquire %s: %w", unit, err)
		}
	}
	if err := batch.Commit(); err != nil {
		return fmt.Errorf("learner: acquire %s: %w", unit, err)
	}
	p.held, p.follow, p.owned, p.epoch = true, false, true, epoch
	e.noteOwnership()
	for _, name := range p.Models {
		e.byName(name).standby = false
	}
	e.raiseVersions(p)
	if remote == nil && local.Epoch == 0 && local.Seq == 0 && !reset {
		e.log.Warn("unit has no state, neither in the local store nor exported to the state topic: its models start untrained, "+
			"at the start position of their topics (--start, earliest by default); if they learned before, restore the data directory "+
			"or check that --group names the group whose state topic holds them", "unit", unit, "topics", p.Topics)
	}
	e.log.Info("unit acquired", "unit", unit, "epoch", epoch, "from", source, "state_epoch", max(local.Epoch, remoteEpoch(remote)), "seq", p.seq)
	for _, name := range p.Models {
		if c := e.byName(name).mon.Champion(); c != nil {
			e.publish(c)
		}
	}
	e.updateStats()
	return nil
}

// resetKey marks a unit reset on purpose (Reset) whose reset the next
// Acquire completes.
func resetKey(unit string) []byte { return []byte("reset/" + unit) }

// Reset starts the named models afresh on purpose: their unit's state
// (weights, histories, snapshots, detections, offsets) is deleted from the
// local store, and the unit is marked so that the next Acquire keeps the
// fresh state instead of the newer one exported to the state topic, under
// an epoch above it, so that the fresh state supersedes the old one in the
// whole group. The models then start untrained at their topics' start
// position. The models of one unit share their state and must all be
// named. If another instance owns the unit and this one follows it
// (Follow) before acquiring it, the reset does not happen and the engine
// says so. Call it after New and before the consumer runs. Engine
// goroutine only.
func (e *Engine) Reset(models []string) error {
	var parts []*part
	for _, name := range models {
		p := e.partOf(name)
		if p == nil {
			return fmt.Errorf("learner: cannot reset model %q: no model of that name is configured", name)
		}
		if !slices.Contains(parts, p) {
			parts = append(parts, p)
		}
	}
	for _, p := range parts {
		var missing []string
		for _, m := range p.Models {
			if !slices.Contains(models, m) {
				missing = append(missing, m)
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("learner: cannot reset %s alone: the models %s share topics (%s) and so one state; reset them together (%s)",
				strings.Join(namedIn(models, p), ", "), strings.Join(p.Models, ", "), strings.Join(p.Topics, ", "), strings.Join(p.Models, ","))
		}
	}
	for _, p := range parts {
		batch := e.store.NewBatch()
		prefixes, exact := e.keyspace(p)
		for _, prefix := range prefixes {
			if isAuditPrefix(prefix) {
				continue // the audit log outlives a reset, which it records
			}
			if err := batch.DeleteRange(prefix, store.PrefixEnd(prefix)); err != nil {
				batch.Close()
				return fmt.Errorf("learner: reset %s: %w", p.Name, err)
			}
		}
		for _, key := range exact {
			if err := batch.Delete(key); err != nil {
				batch.Close()
				return fmt.Errorf("learner: reset %s: %w", p.Name, err)
			}
		}
		audited, err := e.auditReset(batch, p.Models)
		if err != nil {
			batch.Close()
			return fmt.Errorf("learner: reset %s: %w", p.Name, err)
		}
		if err := batch.Set(resetKey(p.Name), []byte{1}); err != nil {
			batch.Close()
			return fmt.Errorf("learner: reset %s: %w", p.Name, err)
		}
		err = batch.Commit()
		batch.Close()
		if err != nil {
			return fmt.Errorf("learner: reset %s: %w", p.Name, err)
		}
		for m, seq := range audited {
			if u := e.byName(m); u != nil {
				u.auditSeq = seq
			}
		}
		p.epoch, p.seq = 0, 0
		if p.held {
			if err := e.load(p); err != nil {
				return err
			}
		}
		e.log.Warn("models reset on purpose: their local state is deleted; they start untrained at the start position of their topics, "+
			"and replace the state in the group's state topic once this instance acquires them",
			"unit", p.Name, "models", p.Models, "topics", p.Topics)
	}
	e.updateStats()
	return nil
}

// cancelReset drops p's pending reset.
func (e *Engine) cancelReset(p *part) error {
	batch := e.store.NewBatch()
	defer batch.Close()
	if err := batch.Delete(resetKey(p.Name)); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	if err := batch.Commit(); err != nil {
		return fmt.Errorf("learner: %w", err)
	}
	return nil
}

// namedIn returns those of models that are p's.
func namedIn(models []string, p *part) []string {
	var out []string
	for _, m := range models {
		if slices.Contains(p.Models, m) {
			out = append(out, m)
		}
	}
	return out
}

// resetPending reports whether p was reset (Reset) and not yet acquired.
func (e *Engine) resetPending(p *part) (bool, error) {
	_, ok, err := e.store.Get(resetKey(p.Name))
	if err != nil {
		return false, fmt.Errorf("learner: %w", err)
	}
	return ok, nil
}

// Discard drops everything learned since the last checkpoint that
// committed: every held unit is read again from the store, so that the
// engine's state matches its stored offsets (NextOffsets) again. The
// consumer calls it when a generation ends while checkpoints fail (a full
// disk): the events are then learned again from the stored offsets, never
// twice. Admin commands run since are answered with an error. Engine
// goroutine only.
func (e *Engine) Discard() error {
	for _, a := range e.answers {
		a.done <- adminResult{err: errors.New("learner: the checkpoint that would store this command could not be written; it was discarded, try again")}
	}
	e.answers = e.answers[:0]
	for _, p := range e.parts {
		if !p.held {
			continue
		}
		if err := e.readPosition(p); err != nil {
			return err
		}
		if err := e.load(p); err != nil {
			return err
		}
	}
	e.dirty = false
	e.log.Warn("learning since the last checkpoint discarded; the models continue from the stored state")
	e.updateStats()
	return nil
}

// SetVersionFloor gives the engine, before the consumer runs, a function
// that returns the highest version of a model served anywhere (from the
// snapshots topic): a new owner numbers its snapshots above it, so that a
// version number never names two snapshots, also when the previous owner
// crashed after publishing versions its last exported state does not know.
func (e *Engine) SetVersionFloor(floor func(model string) uint64) { e.floor = floor }

// raiseVersions numbers p's next snapshots above every version served.
func (e *Engine) raiseVersions(p *part) {
	if e.floor == nil {
		return
	}
	for _, name := range p.Models {
		if u := e.byName(name); u != nil {
			if f := e.floor(name); f > u.model.Version() {
				e.log.Info("numbering snapshots after the newest version served", "model", name, "state_version", u.model.Version(), "served_version", f)
				u.model.SetVersion(f)
			}
		}
	}
}

// SnapshotData returns the stored encoding of a snapshot (what
// learner.Model.DecodeSnapshot reads), and false if it is not stored. It
// reads the store only and may be called from any goroutine.
func (e *Engine) SnapshotData(model string, version uint64) ([]byte, bool, error) {
	data, ok, err := e.store.Get(snapshotKey(model, version))
	if err != nil {
		return nil, false, fmt.Errorf("learner: %w", err)
	}
	return data, ok, nil
}

func remoteEpoch(s *UnitState) uint64 {
	if s == nil {
		return 0
	}
	return s.Epoch
}

// Relinquish stops learning unit and frees its models' memory: another
// instance owns it now. Its state stays in the local store (a later Acquire
// compares it with the newest exported one). Call it after the checkpoint
// and export that hand the unit over. Engine goroutine only.
func (e *Engine) Relinquish(unit string) error {
	p := e.part(unit)
	if p == nil {
		return fmt.Errorf("learner: no unit named %q", unit)
	}
	if !p.held {
		return nil
	}
	p.held, p.follow, p.owned = false, false, false
	e.noteOwnership()
	for _, name := range p.Models {
		e.metrics.forget(name)
	}
	e.states = slices.DeleteFunc(e.states, func(u *modelState) bool { return slices.Contains(p.Models, u.cfg.Name) })
	e.index()
	if e.onLoad != nil {
		for _, name := range p.Models {
			e.onLoad(name)
		}
	}
	e.log.Info("unit released to another instance", "unit", unit, "epoch", p.epoch, "seq", p.seq)
	e.updateStats()
	return nil
}

// load (re)reads p's models and offsets from the store into memory.
func (e *Engine) load(p *part) error {
	e.states = slices.DeleteFunc(e.states, func(u *modelState) bool { return slices.Contains(p.Models, u.cfg.Name) })
	for _, i := range p.models {
		u, err := e.restore(e.cfg.Models[i])
		if err != nil {
			return err
		}
		u.standby = p.follow
		e.states = append(e.states, u)
	}
	order := make(map[string]int)
	for i, mc := range e.cfg.Models {
		order[mc.Name] = i
	}
	slices.SortFunc(e.states, func(a, b *modelState) int { return order[a.cfg.Name] - order[b.cfg.Name] })
	e.index()
	if e.onLoad != nil {
		for _, name := range p.Models {
			e.onLoad(name)
		}
	}
	offsets, err := readOffsets(e.store)
	if err != nil {
		return err
	}
	e.offsets = offsets
	return nil
}

// index rebuilds byTopic, models and the live models from states.
func (e *Engine) index() {
	e.byTopic = make(map[string][]*modelState)
	e.models = e.models[:0]
	live := make(map[string]*learner.Model, len(e.states))
	for _, u := range e.states {
		e.byTopic[u.cfg.Topic] = append(e.byTopic[u.cfg.Topic], u)
		e.models = append(e.models, u.model)
		live[u.cfg.Name] = u.model
	}
	e.live.Store(&live)
}

// Live returns the live model named model if this engine holds it (as
// owner or standby), else nil. It is safe for concurrent use; the model
// itself belongs to the engine's goroutine, but decoding a snapshot with it
// (learner.Model.DecodeSnapshot) is safe anywhere, and the snapshot then
// derives its history features from the live histories.
func (e *Engine) Live(model string) *learner.Model {
	if m := e.live.Load(); m != nil {
		return (*m)[model]
	}
	return nil
}

// Holding says how an engine holds a model's unit.
type Holding uint8

const (
	NotHeld   Holding = iota // another instance learns it (Relinquish), or nothing does yet
	Restored                 // in memory from the local store; no consumer has assigned it yet
	Owned                    // acquired: this engine learns it for the group
	Following                // held as a standby (Follow)
)

// Holds reports how this engine holds the unit of model. Safe for
// concurrent use.
func (e *Engine) Holds(model string) Holding {
	if m := e.owns.Load(); m != nil {
		return (*m)[model]
	}
	return NotHeld
}

// Owns reports whether this engine has acquired the unit of model and
// learns it as its owner. Safe for concurrent use.
func (e *Engine) Owns(model string) bool { return e.Holds(model) == Owned }

// noteOwnership refreshes what Holds reports.
func (e *Engine) noteOwnership() {
	owns := make(map[string]Holding)
	for _, p := range e.parts {
		h := NotHeld
		switch {
		case p.owned:
			h = Owned
		case p.held && p.follow:
			h = Following
		case p.held:
			h = Restored
		}
		for _, name := range p.Models {
			owns[name] = h
		}
	}
	e.owns.Store(&owns)
}

// SetOnLoad gives the engine a function it calls, on its goroutine, with
// the name of every model it loads again from the store (Acquire, Follow):
// a snapshot decoded with the model that was replaced reads stale
// histories, so the caller decodes it again with Live.
func (e *Engine) SetOnLoad(fn func(model string)) { e.onLoad = fn }

// importState replaces p's state in the store with st, in one synced batch.
func (e *Engine) importState(p *part, st *UnitState) error {
	rest, ok := bytes.CutPrefix(st.Data, []byte(stateMagic))
	if !ok || len(rest) == 0 || rest[0] != 1 {
		return fmt.Errorf("%w: unit %s: not an exported unit state", learner.ErrCorrupt, p.Name)
	}
	rest = rest[1:]
	hash, rest, err := readChunk(rest)
	if err != nil {
		return fmt.Errorf("%w: unit %s state: %v", learner.ErrCorrupt, p.Name, err)
	}
	if string(hash) != p.Hash {
		e.log.Warn("the unit's state was written with a different model configuration; restoring it under this one",
			"unit", p.Name, "state_config", string(hash), "config", p.Hash)
	}
	batch := e.store.NewBatch()
	defer batch.Close()
	prefixes, exact := e.keyspace(p)
	for _, prefix := range prefixes {
		if err := batch.DeleteRange(prefix, store.PrefixEnd(prefix)); err != nil {
			return fmt.Errorf("learner: import %s: %w", p.Name, err)
		}
	}
	for _, key := range exact {
		if err := batch.Delete(key); err != nil {
			return fmt.Errorf("learner: import %s: %w", p.Name, err)
		}
	}
	for len(rest) > 0 {
		var key, value []byte
		if key, rest, err = readChunk(rest); err == nil {
			value, rest, err = readChunk(rest)
		}
		if err != nil {
			return fmt.Errorf("%w: unit %s state: %v", learner.ErrCorrupt, p.Name, err)
		}
		if !belongs(key, prefixes, exact) {
			return fmt.Errorf("%w: unit %s state holds key %q of another unit", learner.ErrCorrupt, p.Name, key)
		}
		if err := batch.Set(key, value); err != nil {
			return fmt.Errorf("learner: import %s: %w", p.Name, err)
		}
	}
	if err := batch.Set(unitKey(p.Name), appendPosition(nil, st.Epoch, st.Seq)); err != nil {
		return fmt.Errorf("learner: import %s: %w", p.Name, err)
	}
	if err := batch.Commit(); err != nil {
		return fmt.Errorf("learner: import %s: %w", p.Name, err)
	}
	p.epoch, p.seq = st.Epoch, st.Seq
	return nil
}

func belongs(key []byte, prefixes, exact [][]byte) bool {
	for _, k := range exact {
		if bytes.Equal(key, k) {
			return true
		}
	}
	for _, prefix := range prefixes {
		if bytes.HasPrefix(key, prefix) {
			return true
		}
	}
	return false
}

// readChunk reads one uvarint-length-prefixed byte string.
func readChunk(data []byte) (chunk, rest []byte, err error) {
	n, k := binary.Uvarint(data)
	if k <= 0 || n > uint64(len(data)-k) {
		return nil, nil, errors.New("truncated")
	}
	return data[k : k+int(n)], data[k+int(n):], nil
}
