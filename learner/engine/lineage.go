package engine

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// OffsetRange is the offsets [From, To) of one partition of a model's
// events topic.
type OffsetRange struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	From      int64  `json:"from"`
	To        int64  `json:"to"`
}

// Provenance is where a snapshot came from: its parent (the model's
// previous snapshot), the configuration (by hash; ConfigYAML has it) and
// build that made it, the offsets of its events topic consumed since its
// parent and since its lineage began, the event times and the examples
// learned and rejected over the same spans. A model's lineage begins with
// its first event, or, once a post-drift challenger replaces it, at the
// last checkpoint before the detection that started the challenger.
type Provenance struct {
	Version    uint64    `json:"version"`
	Parent     uint64    `json:"parent"` // 0: the first snapshot
	Created    time.Time `json:"created"`
	Reason     string    `json:"reason"`
	Detection  uint64    `json:"detection,omitempty"` // a drift promotion: the detection (its sequence) it answers
	ConfigHash string    `json:"config_hash"`         // sha256 of the configuration, JSON, defaults applied
	Build      string    `json:"build"`               // eddy's module version and VCS revision, and the Go version

	Learned             uint64 `json:"learned"` // over the model's whole life
	LearnedSinceParent  uint64 `json:"learned_since_parent"`
	Rejected            uint64 `json:"rejected"` // over the lineage
	RejectedSinceParent uint64 `json:"rejected_since_parent"`

	// Origin is how the lineage (SinceBegan) began: "" with the model's
	// first event, OriginChallenger or OriginImport (Imported says from
	// which export).
	Origin   string        `json:"origin,omitempty"`
	Imported *ImportOrigin `json:"imported,omitempty"`

	SinceParent []OffsetRange `json:"since_parent"`
	SinceBegan  []OffsetRange `json:"since_began"`
	// Event times (zero: no event had one) since the parent and since the
	// lineage began.
	FirstEventTime, LastEventTime   time.Time `json:",omitzero"`
	BeganEventTime, NewestEventTime time.Time `json:",omitzero"`
}

// lineage is what a model records between snapshots for their
// provenance. Stored under lineageKey at every checkpoint; the fields
// the engine's goroutine updates per event are marked live.
type lineage struct {
	Began        map[int]int64 `json:"began"`         // partition → first offset of the lineage
	Last         map[int]int64 `json:"last"`          // partition → next offset at the newest snapshot
	Next         map[int]int64 `json:"next"`          // partition → next offset at the last checkpoint
	Rejected     uint64        `json:"rejected"`      // live: over the lineage
	RejectedLast uint64        `json:"rejected_last"` // at the newest snapshot
	LearnedLast  uint64        `json:"learned_last"`
	MinTime      time.Time     `json:"min_time,omitzero"` // live: event times since the newest snapshot
	MaxTime      time.Time     `json:"max_time,omitzero"`
	BeganTime    time.Time     `json:"began_time,omitzero"` // live: the lineage's first event time
	NewestTime   time.Time     `json:"newest_time,omitzero"`
	// ChallengerBegan is the position at the last detection (the next
	// offset of each partition the challenger learns): where a
	// challenger's lineage begins if it replaces the model.
	ChallengerBegan map[int]int64 `json:"challenger_began,omitempty"`
	// Origin is how the lineage began: "" with the model's first event,
	// OriginChallenger, or OriginImport.
	Origin   string        `json:"origin,omitempty"`
	Imported *ImportOrigin `json:"imported,omitempty"` // Origin import: the export file's snapshot

	first []int64 // live, not stored: per partition, the first offset since the last checkpoint (-1: none)
	seen  []int64 // live, not stored: per partition, the offset after the last one since the last checkpoint (-1: none)
}

// How a lineage began, when not with the model's first event.
const (
	OriginChallenger = "challenger" // a post-drift challenger replaced the model
	OriginImport     = "import"     // an operator seeded the model with an export file
)

// ImportOrigin is the exported snapshot an import seeded a model with.
type ImportOrigin struct {
	Model      string `json:"model"`
	Version    uint64 `json:"version"`
	Learned    uint64 `json:"learned"`
	ConfigHash string `json:"config_hash,omitempty"`
	Build      string `json:"build,omitempty"`
	SHA256     string `json:"sha256"` // of the export file
}

func lineageKey(name string) []byte { return []byte("lineage/" + name) }

func provenancePrefix(name string) []byte { return []byte("provenance/" + name + "/") }

func provenanceKey(name string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(provenancePrefix(name), version)
}

func configKey(name, hash string) []byte { return []byte("config/" + name + "/" + hash) }

func configPrefix(name string) []byte { return []byte("config/" + name + "/") }

// observe records one event of partition at offset with event time at.
// Engine goroutine; allocation-free once the partitions are known.
func (l *lineage) observe(partition int, offset int64, at time.Time) {
	for partition >= len(l.first) {
		l.first = append(l.first, -1)
		l.seen = append(l.seen, -1)
	}
	if l.first[partition] < 0 {
		l.first[partition] = offset
	}
	l.seen[partition] = offset + 1
	if at.IsZero() {
		return
	}
	if l.MinTime.IsZero() || at.Before(l.MinTime) {
		l.MinTime = at
	}
	if at.After(l.MaxTime) {
		l.MaxTime = at
	}
	if l.BeganTime.IsZero() || at.Before(l.BeganTime) {
		l.BeganTime = at
	}
	if at.After(l.NewestTime) {
		l.NewestTime = at
	}
}

// after returns the lineage once a checkpoint with the next offsets of
// topic commits (and, when snapped, a snapshot of learned examples): l
// does not change.
func (l *lineage) after(topic string, offsets []Offset, snapped bool, learned uint64) lineage {
	n := *l
	n.Began, n.Last, n.Next = maps.Clone(l.Began), maps.Clone(l.Last), maps.Clone(l.Next)
	n.first, n.seen = nil, nil
	if n.Began == nil {
		n.Began, n.Last, n.Next = map[int]int64{}, map[int]int64{}, map[int]int64{}
	}
	for p, off := range l.first {
		if off >= 0 {
			if _, ok := n.Began[p]; !ok {
				n.Began[p] = off
			}
			if _, ok := n.Last[p]; !ok {
				n.Last[p] = n.Began[p]
			}
		}
	}
	for _, o := range offsets {
		if o.Topic == topic {
			if _, ok := n.Began[o.Partition]; ok {
				n.Next[o.Partition] = o.Next
			}
		}
	}
	if snapped {
		n.Last = maps.Clone(n.Next)
		n.RejectedLast, n.LearnedLast = n.Rejected, learned
		n.MinTime, n.MaxTime = time.Time{}, time.Time{}
	}
	return n
}

// provenance returns the provenance of snapshot snap of u, taken with the
// lineage next (after this checkpoint) from the lineage before it.
func (l *lineage) provenance(u *modelState, snap *learner.Snapshot, parent uint64, next lineage, hash string) Provenance {
	p := Provenance{Version: snap.Version(), Parent: parent, Created: snap.Created(), Reason: snap.Reason(), ConfigHash: hash, Build: Build(),
		Learned: snap.Learned(), LearnedSinceParent: snap.Learned() - l.LearnedLast, Rejected: l.Rejected, RejectedSinceParent: l.Rejected - l.RejectedLast,
		FirstEventTime: l.MinTime, LastEventTime: l.MaxTime, BeganEventTime: l.BeganTime, NewestEventTime: l.NewestTime,
		Origin: next.Origin, Imported: next.Imported}
	if snap.Reason() == learner.ReasonDrift {
		p.Detection = u.mon.Detections()
	}
	for _, part := range slices.Sorted(maps.Keys(next.Next)) {
		to := next.Next[part]
		from, ok := l.Last[part]
		if !ok {
			from = next.Began[part]
		}
		p.SinceParent = append(p.SinceParent, OffsetRange{Topic: u.cfg.Topic, Partition: part, From: from, To: to})
		p.SinceBegan = append(p.SinceBegan, OffsetRange{Topic: u.cfg.Topic, Partition: part, From: next.Began[part], To: to})
	}
	return p
}

// position returns the next offset of each partition of the lineage after
// the events observed so far.
func (l *lineage) position() map[int]int64 {
	pos := maps.Clone(l.Next)
	if pos == nil {
		pos = map[int]int64{}
	}
	for p, next := range l.seen {
		if next >= 0 {
			pos[p] = next
		}
	}
	return pos
}

// adoptChallenger begins a new lineage where the challenger that replaces
// the model began (ChallengerBegan).
func (l *lineage) adoptChallenger() {
	if l.ChallengerBegan != nil {
		l.Began = maps.Clone(l.ChallengerBegan)
	}
	l.Rejected, l.RejectedLast = 0, 0
	l.BeganTime = l.MinTime
	l.Origin, l.Imported = OriginChallenger, nil
}

// restart begins a new lineage at the position after the events observed
// so far, for a model seeded by import with what learned examples.
func (l *lineage) restart(from *ImportOrigin, learned uint64) {
	pos := l.position()
	l.Began, l.Last, l.Next = pos, maps.Clone(pos), maps.Clone(pos)
	for i := range l.first {
		l.first[i], l.seen[i] = -1, -1
	}
	l.Rejected, l.RejectedLast, l.LearnedLast = 0, 0, learned
	l.MinTime, l.MaxTime, l.BeganTime, l.NewestTime = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	l.ChallengerBegan = nil
	l.Origin, l.Imported = OriginImport, from
}

// configHash returns the sha256 of mc's JSON encoding and that encoding.
func configHash(mc learner.ModelConfig) (string, []byte) {
	data, err := json.Marshal(mc)
	if err != nil {
		data = []byte(fmt.Sprintf("%+v", mc)) // every field of ModelConfig marshals; never reached
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), data
}

var buildOnce = sync.OnceValue(func() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := info.Main.Version
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += "+modified"
			}
		}
	}
	return v + " " + info.GoVersion
})

// Build returns eddy's module version and VCS revision (when the binary
// was built from a checkout) and the Go version: what provenance records.
func Build() string { return buildOnce() }

// writeLineage adds u's lineage after this checkpoint, and the provenance
// and configuration of its new snapshot (if any), to batch.
func writeLineage(batch *store.Batch, u *modelState, next *lineage, prov *Provenance, config []byte) error {
	data, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("learner: lineage: %w", err)
	}
	if err := batch.Set(lineageKey(u.cfg.Name), data); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	if prov == nil {
		return nil
	}
	if data, err = json.Marshal(prov); err != nil {
		return fmt.Errorf("learner: provenance: %w", err)
	}
	if err := batch.Set(provenanceKey(u.cfg.Name, prov.Version), data); err != nil {
		return fmt.Errorf("learner: checkpoint: %w", err)
	}
	return batch.Set(configKey(u.cfg.Name, prov.ConfigHash), config)
}

// loadLineage reads u's stored lineage, if any.
func loadLineage(s *store.Store, name string) (lineage, error) {
	var l lineage
	data, ok, err := s.Get(lineageKey(name))
	if err != nil || !ok {
		return l, err
	}
	if err := json.Unmarshal(data, &l); err != nil {
		return l, fmt.Errorf("%w: model %s lineage: %v", learner.ErrCorrupt, name, err)
	}
	return l, nil
}

// SnapshotProvenance returns the provenance of a stored snapshot of model
// and its configuration as JSON (ErrSnapshotNotFound when it has none:
// retired, or taken before provenance was recorded). It reads the store
// only and may be called from any goroutine.
func (e *Engine) SnapshotProvenance(model string, version uint64) (Provenance, []byte, error) {
	view := e.store.NewView()
	defer view.Close()
	data, ok, err := view.Get(provenanceKey(model, version))
	if err != nil {
		return Provenance{}, nil, fmt.Errorf("learner: %w", err)
	}
	if !ok {
		return Provenance{}, nil, fmt.Errorf("%w: model %s version %d has no provenance (retired, or taken before eddy recorded provenance)", ErrSnapshotNotFound, model, version)
	}
	var p Provenance
	if err := json.Unmarshal(data, &p); err != nil {
		return Provenance{}, nil, fmt.Errorf("%w: provenance of %s v%d: %v", learner.ErrCorrupt, model, version, err)
	}
	config, _, err := view.Get(configKey(model, p.ConfigHash))
	if err != nil {
		return Provenance{}, nil, fmt.Errorf("learner: %w", err)
	}
	return p, config, nil
}
