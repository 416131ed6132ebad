package stream

// A StateLog keeps, on one compacted single-partition topic, the newest
// complete checkpoint of each of many units. This comment is the format and
// the argument that it survives compaction; the code below implements it.
//
// # Records
//
// Every record has a key; every value starts with a format version byte and
// a kind byte. Integers are big-endian.
//
//	commit  key c/<unit>/<epoch>/<slot>
//	        value 1 'c' uvarint(len(unit)) unit epoch:u64 seq:u64 slot:u8
//	              chunks:u32 size:u64 crc:u32
//	chunk   key d/<unit>/<epoch>/<slot>/<index>
//	        value 1 'd' uvarint(len(unit)) unit epoch:u64 seq:u64 slot:u8
//	              index:u32 then up to ChunkSize bytes of Data
//	tombstone  any of those keys with a nil value
//
// <epoch>, <slot> (0 or 1) and <index> are decimal; a unit may contain '/'
// because keys are parsed from the right. The value repeats what the key
// says, and a record whose value disagrees with its key is garbage. crc is
// CRC-32 (Castagnoli) of the whole Data, size its length.
//
// # Writing
//
// Write stores checkpoint (unit, E, S) in four steps, each acknowledged by
// all in-sync replicas before the next starts:
//
//  1. Pick the slot s that does not hold the newest checkpoint of (unit, E)
//     whose commit was acknowledged (slot 0 if there is none).
//  2. Write the chunks d/unit/E/s/0..n-1, each carrying seq S.
//  3. Write the commit c/unit/E/s naming S, n, size and crc.
//  4. Tombstone the keys this StateLog knows of that are obsolete now: every
//     key of the unit with an epoch below E (and both commit keys of such an
//     epoch), and chunks d/unit/E/s/i with i ≥ n left by a larger checkpoint
//     that used the slot before. Then write the commit again, so that the
//     log ends with a live record (see "Reading to the end").
//
// The slot is not Seq%2: after a commit whose acknowledgement was lost, the
// commit may or may not be stored, so only the slot of the last
// acknowledged commit is known to be intact, and the next write must avoid
// exactly that one, whatever its seq.
//
// The argument below assumes what Write's documentation asks of callers: an
// epoch is written by one StateLog (a restarted process takes a new epoch,
// or Reads the unit first, which tells it the slot), and Writes of a unit
// do not overlap. It also relies on kafka-go's Writer sending one
// partition's batches one at a time, in order: a batch of a failed Write
// that is still retried lands before anything a later Write sends.
//
// # Reading
//
// A reader keeps the latest record of each key of the unit and, among the
// unit's commits in descending (epoch, seq) order, returns the first whose
// chunks 0..n-1 are all present, each naming the commit's unit, epoch, seq,
// slot and index, and whose bytes have the commit's size and crc. So a
// reader can never assemble a mix of two checkpoints: a chunk of another
// checkpoint names another seq (or epoch), and the checksum covers the rest.
//
// # Why compaction cannot break it
//
// Compaction removes a record only when a later record has the same key. Let
// C = (E, S, slot s) be the newest checkpoint of a unit whose commit was
// acknowledged. Its records' keys are written again only by
//
//   - its own writer writing slot s again, which step 1 allows only after a
//     newer commit (in slot 1-s) has been acknowledged;
//   - its own writer's step 4, which touches only other epochs and indexes
//     ≥ n of the slot just written, never C's own chunks or commit;
//   - the owner of a higher epoch, whose step 4 tombstones them only after
//     that owner's own commit has been acknowledged.
//
// Keys carry the epoch, so a zombie (an evicted owner of epoch E1 < E that
// wakes up) writes keys no newer owner uses and cannot displace a record of
// C; readers rank its commits below C's. Hence every record of C survives
// until a newer complete checkpoint is durable, and a writer that crashes
// anywhere in steps 2–3 has only touched keys C does not use: readers still
// find C. A crash in step 4 comes after the new commit is durable, and
// leaves keys for a later Write to tombstone. What stays, per unit: the live
// epoch's two commits and the chunks of both slots; tombstones until the
// topic's delete.retention.ms (24h by default) has passed; chunks left by a
// torn write; and records a zombie wrote after the new owner's tombstones,
// until a later owner that has read them writes (they never win a Read).
//
// # Reading to the end
//
// Read stops at the end offset it listed when called. Compaction running
// while it reads may remove a record of the unit because a newer write of
// the same key landed after that end; the newest commit it saw then lacks a
// chunk, or a commit it would have found is gone. Read detects the first
// case, and the case of records without any complete checkpoint, and then
// reads on to the new end (up to readRounds times). The window that
// remains: compaction runs during the Read and the unit's keys are all
// written again after its end (two more checkpoints of the same epoch),
// removing every record of the unit it would have seen; Read then returns
// nil and a maxEpoch of 0. That needs the previous owner to go on writing
// while the new one restores (a zombie) and the cleaner to run just then;
// a caller that must exclude it takes epochs from elsewhere (the group
// generation, say) rather than from maxEpoch.
//
// Compaction may also leave no record between a reader's position and the
// end (an expired tombstone at the tail, on a broker that compacts the
// active segment). The Reader would then wait for a record that never
// comes, so a reader that stalls below the end asks the broker once whether
// anything remains before the end (tailEmpty). Write's final commit makes
// this rare.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
)

// Checkpoint is one unit's state as of one moment.
type Checkpoint struct {
	Unit  string
	Epoch uint64 // the writer's ownership epoch: strictly higher for each new owner; fences zombies
	Seq   uint64 // increases with every checkpoint the same epoch writes
	Data  []byte
}

// newer reports whether (epoch, seq) is above (than.epoch, than.seq).
func newer(epoch, seq, thanEpoch, thanSeq uint64) bool {
	return epoch > thanEpoch || epoch == thanEpoch && seq > thanSeq
}

// StateLogConfig configures a StateLog. The zero value of every field but
// Brokers and Topic means its documented default.
type StateLogConfig struct {
	// Brokers are the bootstrap addresses. Required.
	Brokers []string
	// TLS and SASL secure its connections (see Cluster).
	TLS  *tls.Config
	SASL sasl.Mechanism
	// Topic is the compacted topic. Required.
	Topic string
	// ChunkSize is the number of bytes of Data per Kafka message. The
	// default is 512 KiB. A topic not created by EnsureTopic must accept
	// messages (max.message.bytes) of MaxMessageBytes.
	ChunkSize int
}

func (c *StateLogConfig) cluster() Cluster {
	return Cluster{Brokers: c.Brokers, TLS: c.TLS, SASL: c.SASL}
}

// StateLog defaults and limits.
const (
	DefaultStateLogChunkSize = 512 << 10
	// MaxUnitLen bounds a unit's name, in bytes, so that a chunk's key and
	// header fit in a fixed allowance.
	MaxUnitLen = 255
)

// EnsureDefaults fills zero fields with their defaults.
func (c *StateLogConfig) EnsureDefaults() {
	if c.ChunkSize == 0 {
		c.ChunkSize = DefaultStateLogChunkSize
	}
}

// Validate reports the first invalid setting.
func (c *StateLogConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("stream: state log: no brokers")
	case c.Topic == "":
		return errors.New("stream: state log: no topic")
	case c.ChunkSize < 0:
		return errors.New("stream: state log: chunk size must not be negative")
	}
	return nil
}

// recordOverhead bounds what a chunk message adds to its ChunkSize bytes of
// data: key and header (both at most ~MaxUnitLen plus 40 bytes) and the
// record's framing.
const recordOverhead = 1 << 10

// batchBytes is the Writer's BatchBytes: one chunk per produce request, or
// many tombstones. Two or four chunks per request wrote no faster against
// kfake, and one keeps the default chunk size within Kafka's default
// max.message.bytes (1 MiB).
func (c *StateLogConfig) batchBytes() int {
	return max(c.ChunkSize+recordOverhead, 64<<10)
}

// MaxMessageBytes is the max.message.bytes the topic needs (577 KiB for the
// default chunk size): a batch of batchBytes as the client estimates it,
// plus the batch header and what the encoding may add to the estimate,
// generously.
func (c *StateLogConfig) MaxMessageBytes() int {
	cfg := *c
	cfg.EnsureDefaults()
	return cfg.batchBytes() + 64<<10
}

// StateLog stores checkpoints on a compacted topic; see the comment at the
// top of statelog.go for the format. Create it with NewStateLog.
//
// Read, Write, Follow and Close may be called from any goroutine, but Writes
// of one unit must not overlap: each decides its slot from the last one's
// outcome.
type StateLog struct {
	cfg     StateLogConfig
	log     *slog.Logger
	writer  *kafka.Writer
	client  *kafka.Client
	garbage *rateLimitedLog

	mu    sync.Mutex
	units map[string]*knownUnit // what this StateLog knows of each unit's records

	hooks stateLogHooks
}

// stateLogHooks let tests stop a Write or a Read at a chosen point; nil
// hooks do nothing.
type stateLogHooks struct {
	// afterChunks runs once a Write's chunks are stored; an error aborts
	// the Write there, as a crash would.
	afterChunks func() error
	// afterEnd runs once Read has listed the end offset it reads to.
	afterEnd func()
}

// knownUnit is what a StateLog has learned of one unit's records from its
// own Writes, its Reads and Follow: enough to pick a slot and to tombstone
// obsolete keys.
type knownUnit struct {
	// live holds the keys believed to hold a value (not a tombstone). An
	// extra key only costs a needless tombstone.
	live map[string]struct{}
	// newest is, per epoch, the newest commit known to be complete: the
	// last acknowledged Write, or what Read or Follow found.
	newest map[uint64]commitRecord
}

// NewStateLog returns a StateLog for cfg. It does not contact the brokers.
func NewStateLog(cfg StateLogConfig, log *slog.Logger) (*StateLog, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log = log.With("component", "statelog", "topic", cfg.Topic)
	transport := cfg.cluster().Transport()
	return &StateLog{
		cfg: cfg,
		log: log,
		writer: &kafka.Writer{
			Addr:         kafka.TCP(cfg.Brokers...),
			Topic:        cfg.Topic,
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
			BatchBytes:   int64(cfg.batchBytes()),
			BatchSize:    10000,
			// Everything goes to partition 0, which readers read, even on
			// a topic someone created with more partitions.
			Balancer:  kafka.BalancerFunc(func(kafka.Message, ...int) int { return 0 }),
			Transport: transport,
		},
		client:  &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: 10 * time.Second, Transport: transport},
		garbage: &rateLimitedLog{log: log, every: 10 * time.Second},
		units:   make(map[string]*knownUnit),
	}, nil
}

// EnsureTopic creates the topic (1 partition, cleanup.policy=compact,
// max.message.bytes=MaxMessageBytes) if absent. An existing topic is left
// as it is.
func (l *StateLog) EnsureTopic(ctx context.Context) error {
	err := l.cfg.cluster().EnsureTopics(ctx, []TopicSpec{{
		Name:       l.cfg.Topic,
		Partitions: 1,
		Configs: map[string]string{
			"cleanup.policy":    "compact",
			"max.message.bytes": strconv.Itoa(l.cfg.MaxMessageBytes()),
		},
	}})
	if err != nil {
		return fmt.Errorf("stream: state log %s: %w", l.cfg.Topic, err)
	}
	return nil
}

// Close flushes and closes the writer. The StateLog must not be used after.
func (l *StateLog) Close() error {
	err := l.writer.Close()
	if t, ok := l.client.Transport.(*kafka.Transport); ok {
		t.CloseIdleConnections()
	}
	if err != nil {
		return fmt.Errorf("stream: state log %s: close: %w", l.cfg.Topic, err)
	}
	return nil
}

func (l *StateLog) errorf(format string, args ...any) error {
	return fmt.Errorf("stream: state log %s: "+format, append([]any{l.cfg.Topic}, args...)...)
}

func validUnit(unit string) error {
	if unit == "" || len(unit) > MaxUnitLen {
		return fmt.Errorf("unit name must be 1 to %d bytes, not %d", MaxUnitLen, len(unit))
	}
	return nil
}

// ---- Writing ----

// Write stores cp durably (acknowledged by all in-sync replicas) and returns
// once a Read would return it (unless a higher epoch of the unit exists:
// Write does not refuse a lower epoch, readers fence it). cp.Seq must be
// above that of the last checkpoint of cp.Epoch this StateLog wrote or
// read. The caller may reuse cp.Data once Write returns.
//
// An epoch must be written through one StateLog: a process that restarts
// takes a new epoch, or Reads the unit before it writes with the old one,
// because Write picks its slot from what this StateLog knows.
//
// If Write fails, the previous checkpoint stays readable; the failed one
// may or may not be.
func (l *StateLog) Write(ctx context.Context, cp Checkpoint) error {
	if err := validUnit(cp.Unit); err != nil {
		return l.errorf("write: %w", err)
	}
	slot, err := l.slotFor(cp)
	if err != nil {
		return l.errorf("write %q: %w", cp.Unit, err)
	}
	chunks := l.chunkMessages(cp, slot)
	commit := commitRecord{
		unit: cp.Unit, epoch: cp.Epoch, seq: cp.Seq, slot: slot,
		chunks: uint32(len(chunks)), size: uint64(len(cp.Data)),
		crc: crc32.Checksum(cp.Data, castagnoli),
	}
	commitMsg := kafka.Message{Key: []byte(commit.key()), Value: commit.encode()}
	// The keys are noted before they are written: if the write fails they
	// may exist, and a needless tombstone later is harmless.
	l.noteLive(cp.Unit, chunks, commitMsg)
	if err := l.writer.WriteMessages(ctx, chunks...); err != nil {
		return l.errorf("write %q epoch %d seq %d: %d chunks: %w", cp.Unit, cp.Epoch, cp.Seq, len(chunks), err)
	}
	if l.hooks.afterChunks != nil {
		if err := l.hooks.afterChunks(); err != nil {
			return l.errorf("write %q epoch %d seq %d: %w", cp.Unit, cp.Epoch, cp.Seq, err)
		}
	}
	if err := l.writer.WriteMessages(ctx, commitMsg); err != nil {
		return l.errorf("write %q epoch %d seq %d: commit: %w", cp.Unit, cp.Epoch, cp.Seq, err)
	}
	l.noteComplete(commit)
	l.tombstoneObsolete(ctx, commit, commitMsg)
	return nil
}

// slotFor picks the slot cp goes to: the one that does not hold the newest
// acknowledged checkpoint of its (unit, epoch).
func (l *StateLog) slotFor(cp Checkpoint) (uint8, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.units[cp.Unit]
	if u == nil {
		return 0, nil
	}
	last, ok := u.newest[cp.Epoch]
	if !ok {
		return 0, nil
	}
	if cp.Seq <= last.seq {
		return 0, fmt.Errorf("epoch %d: seq %d is not above %d, already stored", cp.Epoch, cp.Seq, last.seq)
	}
	return 1 - last.slot, nil
}

// chunkMessages splits cp.Data into chunk messages for slot.
func (l *StateLog) chunkMessages(cp Checkpoint, slot uint8) []kafka.Message {
	n := (len(cp.Data) + l.cfg.ChunkSize - 1) / l.cfg.ChunkSize
	msgs := make([]kafka.Message, n)
	for i := range n {
		part := cp.Data[i*l.cfg.ChunkSize : min((i+1)*l.cfg.ChunkSize, len(cp.Data))]
		c := chunkRecord{unit: cp.Unit, epoch: cp.Epoch, seq: cp.Seq, slot: slot, index: uint32(i), data: part}
		msgs[i] = kafka.Message{Key: []byte(c.key()), Value: c.encode()}
	}
	return msgs
}

// tombstoneObsolete deletes the keys that written made obsolete (step 4 of
// the format), then writes its commit again so that the log ends with a
// live record. A failure is logged, not returned: written is durable, and
// the keys stay known, to be tombstoned by the next Write.
func (l *StateLog) tombstoneObsolete(ctx context.Context, written commitRecord, commitMsg kafka.Message) {
	keys := l.obsoleteKeys(written)
	if len(keys) == 0 {
		return
	}
	msgs := make([]kafka.Message, 0, len(keys)+1)
	for _, k := range keys {
		msgs = append(msgs, kafka.Message{Key: []byte(k)})
	}
	msgs = append(msgs, commitMsg)
	if err := l.writer.WriteMessages(ctx, msgs...); err != nil {
		l.log.Warn("tombstoning obsolete state log records failed; the next write retries",
			"unit", written.unit, "epoch", written.epoch, "records", len(keys), "err", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		delete(l.units[written.unit].live, k)
	}
}

// obsoleteKeys lists the keys of written's unit that written supersedes:
// every key of a lower epoch, both commit keys of such an epoch, and chunks
// of written's slot beyond its chunk count. Keys of higher epochs are never
// touched: they belong to a newer owner.
func (l *StateLog) obsoleteKeys(written commitRecord) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.units[written.unit]
	var keys []string
	olderEpochs := make(map[uint64]bool)
	for k := range u.live {
		rk, ok := parseKey(k)
		if !ok {
			continue
		}
		switch {
		case rk.epoch < written.epoch:
			keys = append(keys, k)
			olderEpochs[rk.epoch] = true
		case rk.epoch == written.epoch && rk.kind == kindChunk && rk.slot == written.slot && rk.index >= written.chunks:
			keys = append(keys, k)
		}
	}
	for epoch := range olderEpochs {
		for slot := range uint8(2) {
			k := commitKey(written.unit, epoch, slot)
			if _, listed := u.live[k]; !listed {
				keys = append(keys, k)
			}
		}
		delete(u.newest, epoch)
	}
	slices.Sort(keys)
	return keys
}

// noteLive records that msgs' keys may now hold values.
func (l *StateLog) noteLive(unit string, chunks []kafka.Message, commit kafka.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.unitLocked(unit)
	for _, m := range chunks {
		u.live[string(m.Key)] = struct{}{}
	}
	u.live[string(commit.Key)] = struct{}{}
}

// noteComplete records that c is complete, if it is the newest of its
// epoch known.
func (l *StateLog) noteComplete(c commitRecord) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.unitLocked(c.unit)
	if last, ok := u.newest[c.epoch]; !ok || c.seq > last.seq {
		u.newest[c.epoch] = c
	}
}

// noteKey records that key now holds a value (live) or a tombstone.
func (l *StateLog) noteKey(unit, key string, live bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.unitLocked(unit)
	if live {
		u.live[key] = struct{}{}
	} else {
		delete(u.live, key)
	}
}

func (l *StateLog) unitLocked(unit string) *knownUnit {
	u := l.units[unit]
	if u == nil {
		u = &knownUnit{live: make(map[string]struct{}), newest: make(map[uint64]commitRecord)}
		l.units[unit] = u
	}
	return u
}

// ---- Reading ----

// readRounds bounds how many times Read reads on past the end it listed
// when what it found looks overtaken by writes after that end.
const readRounds = 3

// stallProbe is how long a reader below the end waits for a record before
// it asks whether any remains (tailEmpty).
const stallProbe = 2 * time.Second

// Read reads the topic from its start to its end offset as of the call and
// returns the newest complete checkpoint of unit (nil if none), and the
// highest epoch any record of unit carries (complete or not, tombstones
// included, garbage not; 0 if none). It holds only unit's records in
// memory. A new owner should write with an epoch above maxEpoch.
//
// Read fails, rather than waits, when the broker does: the caller decides
// whether to retry.
//
// Read reads past that end offset only when what it found looks overtaken
// by later writes (see "Reading to the end" in the format comment).
func (l *StateLog) Read(ctx context.Context, unit string) (cp *Checkpoint, maxEpoch uint64, err error) {
	if err := validUnit(unit); err != nil {
		return nil, 0, l.errorf("read: %w", err)
	}
	first, end, err := l.offsets(ctx)
	if err != nil {
		return nil, 0, l.errorf("read %q: %w", unit, err)
	}
	if l.hooks.afterEnd != nil {
		l.hooks.afterEnd()
	}
	view := newUnitView(unit)
	if end <= first {
		return nil, 0, nil
	}
	r := l.newReader(10 * time.Millisecond) // Read never waits for new records
	defer r.Close()
	next := first
	var best *assembled
	for round := 0; ; round++ {
		if err := l.scan(ctx, r.FetchMessage, &next, end, func(m *kafka.Message) { l.readRecord(view, m) }); err != nil {
			return nil, 0, l.errorf("read %q: %w", unit, err)
		}
		best = l.newestComplete(view, 0, 0, false)
		if view.settled(best) || round == readRounds {
			break
		}
		_, newEnd, err := l.offsets(ctx)
		if err != nil {
			return nil, 0, l.errorf("read %q: %w", unit, err)
		}
		if newEnd <= end {
			break
		}
		end = newEnd
	}
	l.learn(view, best)
	if best == nil {
		return nil, view.maxEpoch, nil
	}
	return best.checkpoint, view.maxEpoch, nil
}

// readRecord adds m to view if it belongs to view's unit.
func (l *StateLog) readRecord(view *unitView, m *kafka.Message) {
	rk, ok := parseKey(string(m.Key))
	if !ok {
		l.garbage.skip(m, errors.New("unrecognised key"))
		return
	}
	if rk.unit != view.unit {
		return
	}
	if err := view.apply(rk, m); err != nil {
		l.garbage.skip(m, err)
	}
}

// learn records what a Read found of a unit, for the Writes that follow:
// the keys that hold values, and the newest complete checkpoint.
func (l *StateLog) learn(view *unitView, best *assembled) {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.unitLocked(view.unit)
	for k, live := range view.keys {
		if live {
			u.live[k] = struct{}{}
		} else {
			delete(u.live, k)
		}
	}
	if best != nil {
		if last, ok := u.newest[best.commit.epoch]; !ok || best.commit.seq > last.seq {
			u.newest[best.commit.epoch] = best.commit
		}
	}
}

// Follow reads the topic from its start and keeps reading until ctx ends.
// It calls fn, from one goroutine, for every complete checkpoint that is
// newer (higher epoch, then seq) than the last one delivered for its unit;
// fn may keep the Checkpoint. caughtUp, if not nil, is called once, when
// Follow has read everything that was in the topic when it started.
//
// Follow returns nil when ctx ends. It returns an error only if it cannot
// start (the topic's offsets cannot be listed): once reading, it outlasts
// broker outages, retrying every second and logging a warning once per
// outage, because a restarted Follow reads and delivers everything again.
//
// Follow holds the records of a unit only until they are delivered or
// superseded: for each unit, the latest record of each key newer than what
// it delivered.
func (l *StateLog) Follow(ctx context.Context, fn func(*Checkpoint), caughtUp func()) error {
	first, end, err := l.offsets(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return l.errorf("follow: %w", err)
	}
	if caughtUp == nil {
		caughtUp = func() {}
	}
	r := l.newReader(250 * time.Millisecond)
	defer r.Close()
	f := &follower{log: l, fn: fn, units: make(map[string]*followedUnit)}
	fetch := l.retryingFetch(r)
	next := first
	// With a retrying fetch, scan fails only when ctx ends (or a stall
	// probe fails, which the next round retries).
	for next < end {
		if err := l.scan(ctx, fetch, &next, end, f.record); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			l.log.Debug("catching up failed; retrying", "err", err)
		}
	}
	caughtUp()
	for {
		m, err := fetch(ctx)
		if err != nil {
			return nil // only ctx ends a retrying fetch
		}
		f.record(&m)
	}
}

// retryingFetch returns a fetch from r that retries failures every second
// until ctx ends, logging a warning when they start and a line when they
// stop. kafka-go's Reader reconnects by itself; it reports failures to
// FetchMessage and goes on.
func (l *StateLog) retryingFetch(r *kafka.Reader) func(context.Context) (kafka.Message, error) {
	var failingSince time.Time
	return func(ctx context.Context) (kafka.Message, error) {
		for {
			m, err := r.FetchMessage(ctx)
			if err == nil {
				if !failingSince.IsZero() {
					l.log.Info("state log reads recovered", "failing_for", time.Since(failingSince).Round(time.Millisecond))
					failingSince = time.Time{}
				}
				return m, nil
			}
			if ctx.Err() != nil {
				return m, ctx.Err()
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
				l.log.Warn("state log reads failing; retrying every second", "err", err)
			}
			select {
			case <-ctx.Done():
				return m, ctx.Err()
			case <-time.After(time.Second):
			}
		}
	}
}

// newReader returns a Reader of partition 0 positioned at the first offset.
// A small queue bounds what it prefetches: each message may be a chunk.
// maxWait bounds a fetch that waits for new records, and so how long
// closing the Reader takes: the Reader fetches ahead once at the end.
func (l *StateLog) newReader(maxWait time.Duration) *kafka.Reader {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:       l.cfg.Brokers,
		Dialer:        l.cfg.cluster().Dialer(),
		Topic:         l.cfg.Topic,
		Partition:     0,
		MinBytes:      1,
		MaxBytes:      max(l.cfg.batchBytes(), 1<<20),
		MaxWait:       maxWait,
		QueueCapacity: 8,
		ErrorLogger:   kafka.LoggerFunc(func(msg string, args ...any) { l.log.Debug("kafka-go", "msg", fmt.Sprintf(msg, args...)) }),
	})
	// A partition Reader starts at the first offset; no seek needed.
	return r
}

// offsets returns partition 0's first offset and end offset (the offset the
// next record will get).
func (l *StateLog) offsets(ctx context.Context) (first, end int64, err error) {
	resp, err := l.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{
		Topics: map[string][]kafka.OffsetRequest{l.cfg.Topic: {kafka.FirstOffsetOf(0), kafka.LastOffsetOf(0)}},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("list offsets: %w", err)
	}
	for _, p := range resp.Topics[l.cfg.Topic] {
		if p.Partition != 0 {
			continue
		}
		if p.Error != nil {
			return 0, 0, fmt.Errorf("list offsets: %w", p.Error)
		}
		return p.FirstOffset, p.LastOffset, nil
	}
	return 0, 0, errors.New("list offsets: no answer for partition 0")
}

// scan hands every record from *next up to end to fn, advancing *next. If
// no record arrives for stallProbe, it asks whether any remains below end,
// and stops if none does. A record at or past end may be handed over too:
// it is newer, never wrong.
func (l *StateLog) scan(ctx context.Context, fetch func(context.Context) (kafka.Message, error), next *int64, end int64, fn func(*kafka.Message)) error {
	for *next < end {
		fctx, cancel := context.WithTimeout(ctx, stallProbe)
		m, err := fetch(fctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded):
			empty, err := l.tailEmpty(ctx, *next, end)
			if err != nil {
				return err
			}
			if empty {
				l.log.Debug("no record left before the end offset; compaction removed the tail", "from", *next, "end", end)
				*next = end
			}
			continue
		case err != nil:
			return fmt.Errorf("fetch at offset %d of %d: %w", *next, end, err)
		}
		fn(&m)
		*next = m.Offset + 1
	}
	return nil
}

// tailEmpty reports whether partition 0 holds no record in [from, end):
// the broker answers a fetch at from with the first batch holding records
// at or after from. The probe starts no lower than the log's first offset,
// which kfake (unlike Kafka) moves up when compaction empties the head.
func (l *StateLog) tailEmpty(ctx context.Context, from, end int64) (bool, error) {
	first, _, err := l.offsets(ctx)
	if err != nil {
		return false, err
	}
	from = max(from, first)
	resp, err := l.client.Fetch(ctx, &kafka.FetchRequest{
		Topic: l.cfg.Topic, Partition: 0, Offset: from,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 100 * time.Millisecond,
	})
	if err != nil {
		return false, fmt.Errorf("probe offset %d: %w", from, err)
	}
	if resp.Error != nil {
		return false, fmt.Errorf("probe offset %d: %w", from, resp.Error)
	}
	if resp.Records == nil {
		return resp.HighWatermark >= end, nil
	}
	for {
		rec, err := resp.Records.ReadRecord()
		if err != nil {
			// io.EOF: no record at or after from in the answer.
			return resp.HighWatermark >= end, nil
		}
		if rec.Offset >= from {
			return rec.Offset >= end, nil
		}
	}
}

// ---- Assembling ----

// unitView holds the latest record of each key of one unit, as read.
type unitView struct {
	unit     string
	commits  map[recordKey]commitRecord // slot key (kind, epoch, slot)
	chunks   map[recordKey]chunkRecord  // (kind, epoch, slot, index)
	keys     map[string]bool            // every key seen: live or tombstoned
	maxEpoch uint64
}

func newUnitView(unit string) *unitView {
	return &unitView{
		unit:    unit,
		commits: make(map[recordKey]commitRecord),
		chunks:  make(map[recordKey]chunkRecord),
		keys:    make(map[string]bool),
	}
}

// apply makes m, whose key rk names the view's unit, the latest record of
// its key. An undecodable value removes the key's earlier value (it is no
// longer what the key holds) and is returned as an error.
//
// maxEpoch counts well-formed records and tombstones, not garbage: a
// garbled record's epoch cannot be trusted.
func (v *unitView) apply(rk recordKey, m *kafka.Message) error {
	v.keys[string(m.Key)] = m.Value != nil
	delete(v.commits, rk.id())
	delete(v.chunks, rk.id())
	switch {
	case m.Value == nil:
	case rk.kind == kindCommit:
		c, err := decodeCommit(rk, m.Value)
		if err != nil {
			return err
		}
		v.commits[rk.id()] = c
	default:
		c, err := decodeChunk(rk, m.Value)
		if err != nil {
			return err
		}
		v.chunks[rk.id()] = c
	}
	v.maxEpoch = max(v.maxEpoch, rk.epoch)
	return nil
}

// settled reports whether best, the newest complete checkpoint found, can
// be trusted not to have been overtaken during the read: it is the newest
// commit seen, or nothing at all of the unit was seen.
func (v *unitView) settled(best *assembled) bool {
	if best == nil {
		return len(v.keys) == 0
	}
	for _, c := range v.commits {
		if newer(c.epoch, c.seq, best.commit.epoch, best.commit.seq) {
			return false
		}
	}
	return true
}

// assembled is a complete checkpoint and the commit that names it.
type assembled struct {
	commit     commitRecord
	checkpoint *Checkpoint
}

// newestComplete returns the newest complete checkpoint in view that is
// newer than (afterEpoch, afterSeq) when after is set, or nil.
func (l *StateLog) newestComplete(view *unitView, afterEpoch, afterSeq uint64, after bool) *assembled {
	commits := make([]commitRecord, 0, len(view.commits))
	for _, c := range view.commits {
		if !after || newer(c.epoch, c.seq, afterEpoch, afterSeq) {
			commits = append(commits, c)
		}
	}
	slices.SortFunc(commits, func(a, b commitRecord) int {
		return cmp.Or(cmp.Compare(b.epoch, a.epoch), cmp.Compare(b.seq, a.seq))
	})
	for _, c := range commits {
		data, err := view.assemble(c)
		if err != nil {
			l.garbage.skipCommit(c, err)
			continue
		}
		if data != nil {
			return &assembled{commit: c, checkpoint: &Checkpoint{Unit: c.unit, Epoch: c.epoch, Seq: c.seq, Data: data}}
		}
	}
	return nil
}

// assemble returns c's data if all its chunks are present; nil, nil if one
// is missing or belongs to another checkpoint (a torn or overwritten slot,
// which is normal); an error if they are all there but do not add up.
func (v *unitView) assemble(c commitRecord) ([]byte, error) {
	total := uint64(0)
	for i := range c.chunks {
		ch, ok := v.chunks[recordKey{kind: kindChunk, epoch: c.epoch, slot: c.slot, index: i}]
		if !ok || ch.seq != c.seq {
			return nil, nil
		}
		total += uint64(len(ch.data))
	}
	if total != c.size {
		return nil, fmt.Errorf("chunks hold %d bytes, the commit says %d", total, c.size)
	}
	data := make([]byte, 0, total)
	for i := range c.chunks {
		data = append(data, v.chunks[recordKey{kind: kindChunk, epoch: c.epoch, slot: c.slot, index: i}].data...)
	}
	if sum := crc32.Checksum(data, castagnoli); sum != c.crc {
		return nil, fmt.Errorf("checksum %08x, the commit says %08x", sum, c.crc)
	}
	return data, nil
}

// follower is Follow's state: per unit, what was delivered and the records
// newer than it.
type follower struct {
	log   *StateLog
	fn    func(*Checkpoint)
	units map[string]*followedUnit
}

type followedUnit struct {
	view       *unitView
	delivered  bool
	epoch, seq uint64 // of the last delivered checkpoint
}

// record takes one record of the topic and delivers what it completes.
func (f *follower) record(m *kafka.Message) {
	rk, ok := parseKey(string(m.Key))
	if !ok {
		f.log.garbage.skip(m, errors.New("unrecognised key"))
		return
	}
	f.log.noteKey(rk.unit, string(m.Key), m.Value != nil)
	u := f.units[rk.unit]
	if u == nil {
		u = &followedUnit{view: newUnitView(rk.unit)}
		f.units[rk.unit] = u
	}
	if u.delivered && rk.epoch < u.epoch {
		return // a zombie's, or left over: never newer than what was delivered
	}
	if err := u.view.apply(rk, m); err != nil {
		f.log.garbage.skip(m, err)
		return
	}
	if u.delivered && !u.newerThanDelivered(rk) {
		return
	}
	if !f.mayComplete(u, rk) {
		return
	}
	best := f.log.newestComplete(u.view, u.epoch, u.seq, u.delivered)
	if best == nil {
		return
	}
	u.delivered, u.epoch, u.seq = true, best.commit.epoch, best.commit.seq
	f.log.noteComplete(best.commit)
	u.prune()
	f.fn(best.checkpoint)
}

// mayComplete reports whether the record just applied under rk can have
// completed a checkpoint: it is a commit, or a chunk whose slot's commit
// names the chunk's seq (chunks normally precede their commit, so this is
// rare, and saves assembling at every chunk).
func (f *follower) mayComplete(u *followedUnit, rk recordKey) bool {
	if rk.kind == kindCommit {
		return true
	}
	ch, ok := u.view.chunks[rk.id()]
	if !ok {
		return false
	}
	c, ok := u.view.commits[recordKey{kind: kindCommit, epoch: rk.epoch, slot: rk.slot}]
	return ok && c.seq == ch.seq
}

// newerThanDelivered reports whether the record just applied under rk
// belongs to a checkpoint newer than the delivered one, and drops it if not:
// it can never be delivered.
func (u *followedUnit) newerThanDelivered(rk recordKey) bool {
	id := rk.id()
	if c, ok := u.view.commits[id]; ok && !newer(c.epoch, c.seq, u.epoch, u.seq) {
		delete(u.view.commits, id)
		return false
	}
	if c, ok := u.view.chunks[id]; ok && !newer(c.epoch, c.seq, u.epoch, u.seq) {
		delete(u.view.chunks, id)
		return false
	}
	return true
}

// prune drops the records of checkpoints no newer than the delivered one.
func (u *followedUnit) prune() {
	for k, c := range u.view.commits {
		if !newer(c.epoch, c.seq, u.epoch, u.seq) {
			delete(u.view.commits, k)
		}
	}
	for k, c := range u.view.chunks {
		if !newer(c.epoch, c.seq, u.epoch, u.seq) {
			delete(u.view.chunks, k)
		}
	}
	clear(u.view.keys) // Follow tracks keys in the StateLog, not here
}

// ---- Records ----

const (
	formatVersion = 1
	kindCommit    = 'c'
	kindChunk     = 'd'
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordKey is a parsed key.
type recordKey struct {
	kind  byte
	unit  string
	epoch uint64
	slot  uint8
	index uint32 // chunks only
}

// id is the key without its unit, for maps of one unit's records.
func (k recordKey) id() recordKey { k.unit = ""; return k }

func commitKey(unit string, epoch uint64, slot uint8) string {
	return "c/" + unit + "/" + strconv.FormatUint(epoch, 10) + "/" + strconv.Itoa(int(slot))
}

func chunkKey(unit string, epoch uint64, slot uint8, index uint32) string {
	return "d/" + commitKey(unit, epoch, slot)[len("c/"):] + "/" + strconv.FormatUint(uint64(index), 10)
}

// parseKey parses a record key from the right, so that a unit may contain
// '/'.
func parseKey(key string) (recordKey, bool) {
	var rk recordKey
	var fields int
	switch {
	case strings.HasPrefix(key, "c/"):
		rk.kind, fields = kindCommit, 2
	case strings.HasPrefix(key, "d/"):
		rk.kind, fields = kindChunk, 3
	default:
		return rk, false
	}
	rest := key[2:]
	nums := make([]uint64, fields)
	for i := fields - 1; i >= 0; i-- {
		cut := strings.LastIndexByte(rest, '/')
		if cut < 0 {
			return rk, false
		}
		n, err := strconv.ParseUint(rest[cut+1:], 10, 64)
		if err != nil {
			return rk, false
		}
		nums[i], rest = n, rest[:cut]
	}
	if validUnit(rest) != nil || nums[1] > 1 || fields == 3 && nums[2] > 1<<32-1 {
		return rk, false
	}
	rk.unit, rk.epoch, rk.slot = rest, nums[0], uint8(nums[1])
	if fields == 3 {
		rk.index = uint32(nums[2])
	}
	return rk, true
}

// commitRecord is a commit: which chunks make up a checkpoint.
type commitRecord struct {
	unit       string
	epoch, seq uint64
	slot       uint8
	chunks     uint32
	size       uint64
	crc        uint32
}

func (c commitRecord) key() string { return commitKey(c.unit, c.epoch, c.slot) }

func (c commitRecord) encode() []byte {
	b := appendHeader(make([]byte, 0, 40+len(c.unit)), kindCommit, c.unit, c.epoch, c.seq, c.slot)
	b = binary.BigEndian.AppendUint32(b, c.chunks)
	b = binary.BigEndian.AppendUint64(b, c.size)
	return binary.BigEndian.AppendUint32(b, c.crc)
}

// chunkRecord is one chunk of a checkpoint's data.
type chunkRecord struct {
	unit       string
	epoch, seq uint64
	slot       uint8
	index      uint32
	data       []byte
}

func (c chunkRecord) key() string { return chunkKey(c.unit, c.epoch, c.slot, c.index) }

func (c chunkRecord) encode() []byte {
	b := appendHeader(make([]byte, 0, 32+len(c.unit)+len(c.data)), kindChunk, c.unit, c.epoch, c.seq, c.slot)
	b = binary.BigEndian.AppendUint32(b, c.index)
	return append(b, c.data...)
}

func appendHeader(b []byte, kind byte, unit string, epoch, seq uint64, slot uint8) []byte {
	b = append(b, formatVersion, kind)
	b = binary.AppendUvarint(b, uint64(len(unit)))
	b = append(b, unit...)
	b = binary.BigEndian.AppendUint64(b, epoch)
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, slot)
}

// header is the part every value starts with.
type header struct {
	unit       string
	epoch, seq uint64
	slot       uint8
}

// decodeHeader decodes a value's header, checks it against its key, and
// returns the rest.
func decodeHeader(rk recordKey, value []byte) (header, []byte, error) {
	var h header
	if len(value) < 2 || value[0] != formatVersion || value[1] != rk.kind {
		return h, nil, errors.New("unknown format version or kind")
	}
	n, w := binary.Uvarint(value[2:])
	rest := value[2+max(w, 0):]
	if w <= 0 || n > uint64(len(rest)) {
		return h, nil, errors.New("truncated unit")
	}
	h.unit, rest = string(rest[:n]), rest[n:]
	if len(rest) < 17 {
		return h, nil, errors.New("truncated header")
	}
	h.epoch, h.seq, h.slot = binary.BigEndian.Uint64(rest), binary.BigEndian.Uint64(rest[8:]), rest[16]
	if h.unit != rk.unit || h.epoch != rk.epoch || h.slot != rk.slot {
		return h, nil, errors.New("value does not match its key")
	}
	return h, rest[17:], nil
}

func decodeCommit(rk recordKey, value []byte) (commitRecord, error) {
	h, rest, err := decodeHeader(rk, value)
	if err != nil {
		return commitRecord{}, err
	}
	if len(rest) != 16 {
		return commitRecord{}, errors.New("commit of the wrong length")
	}
	return commitRecord{
		unit: h.unit, epoch: h.epoch, seq: h.seq, slot: h.slot,
		chunks: binary.BigEndian.Uint32(rest),
		size:   binary.BigEndian.Uint64(rest[4:]),
		crc:    binary.BigEndian.Uint32(rest[12:]),
	}, nil
}

func decodeChunk(rk recordKey, value []byte) (chunkRecord, error) {
	h, rest, err := decodeHeader(rk, value)
	if err != nil {
		return chunkRecord{}, err
	}
	if len(rest) < 4 || binary.BigEndian.Uint32(rest) != rk.index {
		return chunkRecord{}, errors.New("chunk index does not match its key")
	}
	return chunkRecord{unit: h.unit, epoch: h.epoch, seq: h.seq, slot: h.slot, index: rk.index, data: rest[4:]}, nil
}

// ---- Logging ----

// rateLimitedLog logs skipped records at most once per interval, with the
// count of those skipped silently since: a topic full of garbage must not
// flood the log, nor go unnoticed.
type rateLimitedLog struct {
	log   *slog.Logger
	every time.Duration

	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (r *rateLimitedLog) skip(m *kafka.Message, reason error) {
	key := m.Key
	if len(key) > 80 {
		key = append(bytes.Clone(key[:80]), "..."...)
	}
	r.warn("skipping unreadable state log record", "offset", m.Offset, "key", string(key), "reason", reason)
}

func (r *rateLimitedLog) skipCommit(c commitRecord, reason error) {
	r.warn("skipping state log checkpoint whose chunks do not match its commit",
		"unit", c.unit, "epoch", c.epoch, "seq", c.seq, "reason", reason)
}

func (r *rateLimitedLog) warn(msg string, args ...any) {
	r.mu.Lock()
	now := time.Now()
	if !r.last.IsZero() && now.Sub(r.last) < r.every {
		r.suppressed++
		r.mu.Unlock()
		return
	}
	suppressed := r.suppressed
	r.last, r.suppressed = now, 0
	r.mu.Unlock()
	r.log.Warn(msg, append(args, "skipped_since_last_report", suppressed)...)
}
