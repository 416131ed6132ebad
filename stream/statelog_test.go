package stream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/eddyhq/eddy/stream/devbroker"
)

// stateLogEnv is a broker of its own and what a test needs to reach it
// directly, bypassing the StateLog: to simulate crashes, write garbage and
// inspect the topic.
type stateLogEnv struct {
	broker *devbroker.Broker
	addr   string
	logs   *syncBuffer
}

func newStateLogEnv(t *testing.T) *stateLogEnv {
	t.Helper()
	b, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return &stateLogEnv{broker: b, addr: b.Addr(), logs: &syncBuffer{}}
}

// open returns a StateLog of topic (created if absent) that logs to e.logs.
func (e *stateLogEnv) open(t *testing.T, topic string, chunkSize int) *StateLog {
	t.Helper()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	l, err := NewStateLog(StateLogConfig{Brokers: []string{e.addr}, Topic: topic, ChunkSize: chunkSize}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if err := l.EnsureTopic(testContext(t)); err != nil {
		t.Fatal(err)
	}
	return l
}

// produce writes msgs to topic as they are, the way a crashing or buggy
// writer would have left them.
func (e *stateLogEnv) produce(t *testing.T, topic string, msgs ...kafka.Message) {
	t.Helper()
	w := &kafka.Writer{Addr: kafka.TCP(e.addr), Topic: topic, RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchBytes: 4 << 20, Transport: &kafka.Transport{}}
	defer w.Close()
	if err := w.WriteMessages(testContext(t), msgs...); err != nil {
		t.Fatal(err)
	}
}

// records returns every record topic holds now, in offset order.
func (e *stateLogEnv) records(t *testing.T, topic string) []kafka.Message {
	t.Helper()
	ctx := testContext(t)
	conn, err := kafka.DialLeader(ctx, "tcp", e.addr, topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	end, err := conn.ReadLastOffset()
	conn.Close()
	if err != nil {
		t.Fatal(err)
	}
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{e.addr}, Topic: topic, MaxBytes: 8 << 20, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	var out []kafka.Message
	for len(out) == 0 || out[len(out)-1].Offset < end-1 {
		if end == 0 {
			break
		}
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("read back %s: %v", topic, err)
		}
		out = append(out, m)
	}
	return out
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// randomData returns n reproducible pseudo-random bytes.
func randomData(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n+8)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	return b[:n]
}

func mustWrite(t *testing.T, l *StateLog, cp Checkpoint) {
	t.Helper()
	if err := l.Write(testContext(t), cp); err != nil {
		t.Fatalf("write %s epoch %d seq %d: %v", cp.Unit, cp.Epoch, cp.Seq, err)
	}
}

// wantRead asserts that Read of want.Unit returns exactly want and maxEpoch.
func wantRead(t *testing.T, l *StateLog, want Checkpoint, wantMaxEpoch uint64) {
	t.Helper()
	got, maxEpoch, err := l.Read(testContext(t), want.Unit)
	if err != nil {
		t.Fatalf("read %s: %v", want.Unit, err)
	}
	if got == nil {
		t.Fatalf("read %s: no checkpoint, want epoch %d seq %d", want.Unit, want.Epoch, want.Seq)
	}
	if got.Unit != want.Unit || got.Epoch != want.Epoch || got.Seq != want.Seq || !bytes.Equal(got.Data, want.Data) {
		t.Fatalf("read %s: got epoch %d seq %d (%d bytes), want epoch %d seq %d (%d bytes)",
			want.Unit, got.Epoch, got.Seq, len(got.Data), want.Epoch, want.Seq, len(want.Data))
	}
	if maxEpoch != wantMaxEpoch {
		t.Fatalf("read %s: max epoch %d, want %d", want.Unit, maxEpoch, wantMaxEpoch)
	}
}

// tornChunks returns the chunk messages of cp's first n chunks in slot, as
// a writer that crashed after writing them (before the commit) left them.
func tornChunks(l *StateLog, cp Checkpoint, slot uint8, n int) []kafka.Message {
	return l.chunkMessages(cp, slot)[:n]
}

func TestStateLogRoundTripsDataOfEverySizeAcrossChunks(t *testing.T) {
	e := newStateLogEnv(t)
	cases := []struct {
		name       string
		chunkSize  int
		size       int
		wantChunks int
	}{
		{"empty", 1 << 10, 0, 0},
		{"a few bytes", 1 << 10, 10, 1},
		{"exactly one chunk", 1 << 10, 1 << 10, 1},
		{"one byte over a chunk", 1 << 10, 1<<10 + 1, 2},
		{"300 KiB in 1 KiB chunks", 1 << 10, 300 << 10, 300},
		{"3 MB in the default 512 KiB chunks", 0, 3_000_000, 6},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("state-%d", i)
			l := e.open(t, topic, tc.chunkSize)
			cp := Checkpoint{Unit: "learner/7", Epoch: 3, Seq: 1, Data: randomData(uint64(i), tc.size)}
			mustWrite(t, l, cp)
			wantRead(t, l, cp, 3)

			chunkSize := tc.chunkSize
			if chunkSize == 0 {
				chunkSize = DefaultStateLogChunkSize
			}
			chunks := 0
			for _, m := range e.records(t, topic) {
				if strings.HasPrefix(string(m.Key), "d/") {
					chunks++
					if len(m.Value) > chunkSize+recordOverhead {
						t.Errorf("chunk %s holds %d bytes, more than a chunk of %d", m.Key, len(m.Value), chunkSize)
					}
				}
			}
			if chunks != tc.wantChunks {
				t.Errorf("%d chunk records, want %d", chunks, tc.wantChunks)
			}
		})
	}
}

func TestStateLogDefaultChunksFitATopicWithTheDefaultMessageLimit(t *testing.T) {
	e := newStateLogEnv(t)
	// Created by someone else, without max.message.bytes (1 MiB by default).
	if err := EnsureTopics(testContext(t), []string{e.addr}, []TopicSpec{{Name: "state", Partitions: 1, Configs: map[string]string{"cleanup.policy": "compact"}}}); err != nil {
		t.Fatal(err)
	}
	l := e.open(t, "state", 0)
	cp := Checkpoint{Unit: "u", Epoch: 1, Seq: 1, Data: randomData(1, 2<<20)}
	mustWrite(t, l, cp)
	wantRead(t, l, cp, 1)
}

func TestStateLogNewerSeqReplacesOlder(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	var last Checkpoint
	for seq := uint64(1); seq <= 4; seq++ {
		last = Checkpoint{Unit: "u", Epoch: 1, Seq: seq, Data: randomData(seq, int(seq)*3000)}
		mustWrite(t, l, last)
		wantRead(t, l, last, 1)
	}
	// A fresh instance, knowing nothing, finds the same.
	wantRead(t, e.open(t, "state", 1<<10), last, 1)
}

func TestStateLogHigherEpochWinsOverALaterWriteOfALowerEpoch(t *testing.T) {
	e := newStateLogEnv(t)
	old := e.open(t, "state", 1<<10)
	mustWrite(t, old, Checkpoint{Unit: "u", Epoch: 1, Seq: 1, Data: randomData(1, 5000)})
	mustWrite(t, old, Checkpoint{Unit: "u", Epoch: 1, Seq: 2, Data: randomData(2, 5000)})

	// The new owner restores, then writes with a higher epoch.
	owner := e.open(t, "state", 1<<10)
	wantRead(t, owner, Checkpoint{Unit: "u", Epoch: 1, Seq: 2, Data: randomData(2, 5000)}, 1)
	winner := Checkpoint{Unit: "u", Epoch: 2, Seq: 1, Data: randomData(3, 4000)}
	mustWrite(t, owner, winner)

	// The old owner wakes up and writes on with its old epoch, later in the
	// log and with a higher seq.
	mustWrite(t, old, Checkpoint{Unit: "u", Epoch: 1, Seq: 3, Data: randomData(4, 6000)})
	mustWrite(t, old, Checkpoint{Unit: "u", Epoch: 1, Seq: 4, Data: randomData(5, 6000)})

	reader := e.open(t, "state", 1<<10)
	wantRead(t, reader, winner, 2)
	e.broker.Compact()
	wantRead(t, reader, winner, 2)
}

func TestStateLogTornWriteLeavesThePreviousCheckpoint(t *testing.T) {
	const chunkSize = 1 << 10
	cases := []struct {
		name    string
		prior   []Checkpoint // written completely
		torn    Checkpoint   // written in part, by a writer that then crashed
		written int          // of torn's 5 chunks
		want    Checkpoint
		wantMax uint64
	}{
		{
			name:    "same epoch, crash in the middle of the chunks",
			prior:   []Checkpoint{{Unit: "u", Epoch: 1, Seq: 1, Data: randomData(1, 5*chunkSize)}, {Unit: "u", Epoch: 1, Seq: 2, Data: randomData(2, 5*chunkSize)}},
			torn:    Checkpoint{Unit: "u", Epoch: 1, Seq: 3, Data: randomData(3, 5*chunkSize)},
			written: 2,
			want:    Checkpoint{Unit: "u", Epoch: 1, Seq: 2, Data: randomData(2, 5*chunkSize)},
			wantMax: 1,
		},
		{
			name:    "same epoch, crash after every chunk but before the commit",
			prior:   []Checkpoint{{Unit: "u", Epoch: 1, Seq: 1, Data: randomData(1, 5*chunkSize)}, {Unit: "u", Epoch: 1, Seq: 2, Data: randomData(2, 5*chunkSize)}},
			torn:    Checkpoint{Unit: "u", Epoch: 1, Seq: 3, Data: randomData(3, 5*chunkSize)},
			written: 5,
			want:    Checkpoint{Unit: "u", Epoch: 1, Seq: 2, Data: randomData(2, 5*chunkSize)},
			wantMax: 1,
		},
		{
			name:    "a new owner's first checkpoint",
			prior:   []Checkpoint{{Unit: "u", Epoch: 1, Seq: 1, Data: randomData(1, 5*chunkSize)}},
			torn:    Checkpoint{Unit: "u", Epoch: 2, Seq: 1, Data: randomData(3, 5*chunkSize)},
			written: 3,
			want:    Checkpoint{Unit: "u", Epoch: 1, Seq: 1, Data: randomData(1, 5*chunkSize)},
			wantMax: 2,
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newStateLogEnv(t)
			topic := fmt.Sprintf("state-%d", i)
			writer := e.open(t, topic, chunkSize)
			for _, cp := range tc.prior {
				mustWrite(t, writer, cp)
			}
			slot, err := writer.slotFor(tc.torn)
			if err != nil {
				t.Fatal(err)
			}
			e.produce(t, topic, tornChunks(writer, tc.torn, slot, tc.written)...)

			reader := e.open(t, topic, chunkSize)
			wantRead(t, reader, tc.want, tc.wantMax)
			e.broker.Compact()
			wantRead(t, reader, tc.want, tc.wantMax)

			// The writer, restarted by the same owner, completes it.
			mustWrite(t, writer, tc.torn)
			wantRead(t, reader, tc.torn, tc.wantMax)
		})
	}
}

func TestStateLogWriteNeverReusesTheSlotOfTheNewestAcknowledgedCheckpoint(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	first := Checkpoint{Unit: "u", Epoch: 1, Seq: 1, Data: randomData(1, 3000)}
	mustWrite(t, l, first) // slot 0

	// A write that fails (here: cancelled) may or may not have landed; the
	// next one must still keep off slot 0, whatever its seq's parity.
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()
	if err := l.Write(cancelled, Checkpoint{Unit: "u", Epoch: 1, Seq: 2, Data: randomData(2, 3000)}); err == nil {
		t.Fatal("a write with a cancelled context succeeded")
	}
	fourth := Checkpoint{Unit: "u", Epoch: 1, Seq: 4, Data: randomData(4, 3000)}
	mustWrite(t, l, fourth)

	for _, m := range e.records(t, "state") {
		rk, ok := parseKey(string(m.Key))
		if !ok || m.Value == nil {
			continue
		}
		var seq uint64
		if rk.kind == kindChunk {
			c, err := decodeChunk(rk, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			seq = c.seq
		}
		if seq == 4 && rk.slot == 0 {
			t.Fatalf("seq 4 wrote %s, into the slot of seq 1, the newest acknowledged checkpoint", m.Key)
		}
	}
	wantRead(t, l, fourth, 1)

	err := l.Write(testContext(t), Checkpoint{Unit: "u", Epoch: 1, Seq: 4, Data: []byte("again")})
	if err == nil || !strings.Contains(err.Error(), "not above") {
		t.Fatalf("rewriting seq 4: err %v, want a refusal", err)
	}
}

func TestStateLogCrashOfANewOwnersFirstWriteKeepsTheOldEpochsCheckpoint(t *testing.T) {
	e := newStateLogEnv(t)
	previous := Checkpoint{Unit: "u", Epoch: 1, Seq: 7, Data: randomData(1, 6000)}
	mustWrite(t, e.open(t, "state", 1<<10), previous)

	// The new owner knows the old epoch's keys (it read them), so its
	// first Write will tombstone them: only after its own commit.
	owner := e.open(t, "state", 1<<10)
	wantRead(t, owner, previous, 1)
	owner.hooks.afterChunks = func() error { return errors.New("crashed") }
	if err := owner.Write(testContext(t), Checkpoint{Unit: "u", Epoch: 2, Seq: 1, Data: randomData(2, 3000)}); err == nil {
		t.Fatal("the crashing write succeeded")
	}
	reader := e.open(t, "state", 1<<10)
	wantRead(t, reader, previous, 2)
	e.broker.Compact()
	wantRead(t, reader, previous, 2)
}

func TestStateLogReadOvertakenByWritesAndCompactionReadsOn(t *testing.T) {
	e := newStateLogEnv(t)
	writer := e.open(t, "state", 1<<10)
	for seq := uint64(1); seq <= 2; seq++ {
		mustWrite(t, writer, Checkpoint{Unit: "u", Epoch: 1, Seq: seq, Data: randomData(seq, 3000)})
	}
	// Between the end offset Read lists and its reading, the writer
	// overwrites both slots and the broker compacts: every chunk Read
	// would have found before that end is gone.
	reader := e.open(t, "state", 1<<10)
	newest := Checkpoint{Unit: "u", Epoch: 1, Seq: 4, Data: randomData(4, 3000)}
	reader.hooks.afterEnd = func() {
		reader.hooks.afterEnd = nil
		mustWrite(t, writer, Checkpoint{Unit: "u", Epoch: 1, Seq: 3, Data: randomData(3, 3000)})
		mustWrite(t, writer, newest)
		e.broker.Compact()
	}
	wantRead(t, reader, newest, 1)
}

func TestStateLogCompactionLeavesABoundedTopicAndTheNewestCheckpoint(t *testing.T) {
	const chunkSize, maxChunks, writes = 1 << 10, 8, 25
	e := newStateLogEnv(t)
	sizes := rand.New(rand.NewPCG(7, 7))
	writeMany := func(l *StateLog, epoch uint64) Checkpoint {
		var cp Checkpoint
		for seq := uint64(1); seq <= writes; seq++ {
			// Varying sizes leave stale chunks beyond a slot's count.
			cp = Checkpoint{Unit: "u", Epoch: epoch, Seq: seq, Data: randomData(epoch*100+seq, 1+sizes.IntN(maxChunks*chunkSize))}
			mustWrite(t, l, cp)
		}
		return cp
	}
	writeMany(e.open(t, "state", chunkSize), 1)
	owner := e.open(t, "state", chunkSize)
	if _, _, err := owner.Read(testContext(t), "u"); err != nil {
		t.Fatal(err)
	}
	writeMany(owner, 2)
	// A small last checkpoint leaves stale chunks in its slot, so the last
	// Write ends by tombstoning them.
	newest := Checkpoint{Unit: "u", Epoch: 2, Seq: writes + 1, Data: []byte("small")}
	mustWrite(t, owner, newest)
	all := e.records(t, "state")
	if last := all[len(all)-1]; last.Value == nil {
		t.Errorf("the topic ends with a tombstone (%s); a Write must end with a live record", last.Key)
	}
	// The compactor, like Kafka's with its active segment, keeps the last
	// batch whole and lets nothing in it supersede older records: another
	// unit's write moves u's tombstones out of it.
	mustWrite(t, owner, Checkpoint{Unit: "other", Epoch: 1, Seq: 1, Data: []byte("x")})
	written := len(all) + 2

	e.broker.Compact()
	wantRead(t, e.open(t, "state", chunkSize), newest, 2)
	records := e.records(t, "state")
	// Live: two commits and two slots of chunks. Tombstones (kept for
	// delete.retention.ms): at most every key ever used. The last batch is
	// kept whole, so allow a few duplicates.
	const bound = 2*(2+2*maxChunks) + 2*maxChunks + 2 + 4
	if len(records) > bound {
		t.Errorf("%d records after compaction (of %d written), want at most %d", len(records), written, bound)
	}
	counts := make(map[recordKey]uint32) // commit (epoch, slot) → chunk count
	for _, m := range records {
		rk, _ := parseKey(string(m.Key))
		if rk.kind == kindCommit && m.Value != nil && rk.unit == "u" {
			c, err := decodeCommit(rk, m.Value)
			if err != nil {
				t.Fatal(err)
			}
			counts[rk.id()] = c.chunks
		}
	}
	for _, m := range records {
		rk, _ := parseKey(string(m.Key))
		switch {
		case m.Value == nil, rk.unit != "u":
		case rk.epoch != 2:
			t.Errorf("record %s of the old epoch survived its new owner's writes", m.Key)
		case rk.kind == kindChunk && rk.index >= counts[recordKey{kind: kindCommit, epoch: rk.epoch, slot: rk.slot}]:
			t.Errorf("stale chunk %s beyond its slot's count survived", m.Key)
		}
	}
}

func TestStateLogKeepsUnitsApart(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	// Units whose names are prefixes of one another's keys.
	units := []string{"a", "a/1", "a/1/2", "b"}
	newest := make(map[string]Checkpoint)
	for seq := uint64(1); seq <= 4; seq++ {
		for i, unit := range units {
			cp := Checkpoint{Unit: unit, Epoch: uint64(i + 1), Seq: seq, Data: randomData(seq*10+uint64(i), 500*(i+1)*int(seq))}
			mustWrite(t, l, cp)
			newest[unit] = cp
		}
	}
	reader := e.open(t, "state", 1<<10)
	for i, unit := range units {
		wantRead(t, reader, newest[unit], uint64(i+1))
	}
	e.broker.Compact()
	for i, unit := range units {
		wantRead(t, reader, newest[unit], uint64(i+1))
	}
}

// delivery names a delivered checkpoint.
type delivery struct {
	unit       string
	epoch, seq uint64
}

// followRecorder collects what Follow delivers.
type followRecorder struct {
	mu        sync.Mutex
	got       []delivery
	caughtUp  int
	atCatchUp int // deliveries when caughtUp was called
	badData   []string
	want      map[delivery][]byte
	arrived   chan delivery
}

func newFollowRecorder(want map[delivery][]byte) *followRecorder {
	return &followRecorder{want: want, arrived: make(chan delivery, 100)}
}

// expect registers the data a delivery must carry.
func (r *followRecorder) expect(cp Checkpoint) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want[delivery{cp.Unit, cp.Epoch, cp.Seq}] = cp.Data
}

func (r *followRecorder) deliver(cp *Checkpoint) {
	d := delivery{cp.Unit, cp.Epoch, cp.Seq}
	r.mu.Lock()
	r.got = append(r.got, d)
	if want, ok := r.want[d]; !ok || !bytes.Equal(want, cp.Data) {
		r.badData = append(r.badData, fmt.Sprint(d))
	}
	r.mu.Unlock()
	r.arrived <- d
}

func (r *followRecorder) caught() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.caughtUp++
	r.atCatchUp = len(r.got)
}

func (r *followRecorder) waitFor(t *testing.T, d delivery) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case got := <-r.arrived:
			if got == d {
				return
			}
		case <-timeout:
			t.Fatalf("Follow did not deliver %v", d)
		}
	}
}

func TestStateLogFollowDeliversNewerCheckpointsInOrderAndSkipsStaleEpochs(t *testing.T) {
	e := newStateLogEnv(t)
	rec := newFollowRecorder(make(map[delivery][]byte))
	write := func(l *StateLog, unit string, epoch, seq uint64) {
		cp := Checkpoint{Unit: unit, Epoch: epoch, Seq: seq, Data: randomData(epoch*1000+seq, 2500)}
		rec.expect(cp)
		mustWrite(t, l, cp)
	}
	zombie := e.open(t, "state", 1<<10)
	write(zombie, "x", 1, 1)
	write(zombie, "x", 1, 2)
	write(zombie, "y", 1, 1)
	owner := e.open(t, "state", 1<<10)
	write(owner, "x", 2, 1)
	write(zombie, "x", 1, 3) // stale: epoch 2 came before

	follower := e.open(t, "state", 1<<10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- follower.Follow(ctx, rec.deliver, rec.caught) }()
	rec.waitFor(t, delivery{"x", 2, 1})

	write(owner, "x", 2, 2)
	torn := Checkpoint{Unit: "x", Epoch: 2, Seq: 3, Data: randomData(9, 2500)}
	slot, err := owner.slotFor(torn)
	if err != nil {
		t.Fatal(err)
	}
	e.produce(t, "state", tornChunks(owner, torn, slot, 2)...)
	write(zombie, "x", 1, 4)
	// A commit that reaches the log before its chunks (a writer's retried
	// batch, say) is delivered once the chunks arrive.
	late := Checkpoint{Unit: "z", Epoch: 1, Seq: 1, Data: randomData(10, 2500)}
	rec.expect(late)
	lateChunks := owner.chunkMessages(late, 0)
	lateCommit := commitRecord{unit: "z", epoch: 1, seq: 1, slot: 0, chunks: uint32(len(lateChunks)), size: uint64(len(late.Data)), crc: crc32.Checksum(late.Data, castagnoli)}
	e.produce(t, "state", kafka.Message{Key: []byte(lateCommit.key()), Value: lateCommit.encode()})
	e.produce(t, "state", lateChunks...)
	write(zombie, "y", 1, 2) // the last record: once it is delivered, Follow has read all
	rec.waitFor(t, delivery{"y", 1, 2})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow returned %v when its context ended, want nil", err)
	}

	rec.mu.Lock()
	defer rec.mu.Unlock()
	wantOrder := []delivery{{"x", 1, 1}, {"x", 1, 2}, {"y", 1, 1}, {"x", 2, 1}, {"x", 2, 2}, {"z", 1, 1}, {"y", 1, 2}}
	if fmt.Sprint(rec.got) != fmt.Sprint(wantOrder) {
		t.Errorf("delivered %v, want %v", rec.got, wantOrder)
	}
	if rec.caughtUp != 1 || rec.atCatchUp != 4 {
		t.Errorf("caughtUp called %d times, after %d deliveries; want once, after the 4 already in the topic", rec.caughtUp, rec.atCatchUp)
	}
	if len(rec.badData) > 0 {
		t.Errorf("delivered wrong data for %v", rec.badData)
	}
}

func TestStateLogFollowOfACompactedTopicDeliversTheSurvivors(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	want := make(map[delivery][]byte)
	for seq := uint64(1); seq <= 6; seq++ {
		cp := Checkpoint{Unit: "x", Epoch: 1, Seq: seq, Data: randomData(seq, 4000)}
		want[delivery{"x", 1, seq}] = cp.Data
		mustWrite(t, l, cp)
	}
	e.broker.Compact()

	rec := newFollowRecorder(want)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.open(t, "state", 1<<10).Follow(ctx, rec.deliver, rec.caught) }()
	rec.waitFor(t, delivery{"x", 1, 6})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Both slots' latest survive: seq 5 and seq 6, nothing older.
	if fmt.Sprint(rec.got) != fmt.Sprint([]delivery{{"x", 1, 5}, {"x", 1, 6}}) || len(rec.badData) > 0 || rec.caughtUp != 1 {
		t.Errorf("delivered %v (bad data %v), caughtUp %d times; want seq 5 then 6, caughtUp once", rec.got, rec.badData, rec.caughtUp)
	}
}

func TestStateLogFollowOfAnEmptyTopicCatchesUpAtOnceAndSeesLaterWrites(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	cp := Checkpoint{Unit: "x", Epoch: 1, Seq: 1, Data: []byte("model")}
	rec := newFollowRecorder(map[delivery][]byte{{"x", 1, 1}: cp.Data})
	caught := make(chan struct{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go l.Follow(ctx, rec.deliver, func() { rec.caught(); close(caught) })
	select {
	case <-caught:
	case <-time.After(5 * time.Second):
		t.Fatal("Follow of an empty topic never caught up")
	}
	mustWrite(t, l, cp)
	rec.waitFor(t, delivery{"x", 1, 1})
}

func TestStateLogSkipsGarbageAndLogsItOnce(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	good := Checkpoint{Unit: "u", Epoch: 5, Seq: 1, Data: randomData(1, 3000)}
	mustWrite(t, l, good)

	wrongUnit := commitRecord{unit: "v", epoch: 5, seq: 9, slot: 1, chunks: 0}
	badSum := commitRecord{unit: "u", epoch: 6, seq: 1, slot: 0, chunks: 1, size: 3, crc: 12345}
	e.produce(t, "state",
		kafka.Message{Key: []byte("hello"), Value: []byte("world")},
		kafka.Message{Value: []byte("no key at all")},
		kafka.Message{Key: []byte("c/u/99/0"), Value: []byte("garbled")},
		kafka.Message{Key: []byte("d/u/99/0/0"), Value: []byte{9, 'd', 1, 'u'}},
		kafka.Message{Key: []byte("c/u/5/1"), Value: wrongUnit.encode()},
		kafka.Message{Key: []byte("c/u/5/7"), Value: []byte{}},
		kafka.Message{Key: []byte(badSum.key()), Value: badSum.encode()},
		kafka.Message{Key: []byte(chunkKey("u", 6, 0, 0)), Value: chunkRecord{unit: "u", epoch: 6, seq: 1, index: 0, data: []byte("abc")}.encode()},
	)

	// Well-formed records that do not add up: unit w's epoch 2 commit
	// names seq 2 but its chunk (same bytes, right checksum) is seq 1's;
	// its epoch 3 commit has the right checksum and the wrong size.
	goodW := Checkpoint{Unit: "w", Epoch: 1, Seq: 1, Data: []byte("state")}
	mustWrite(t, l, goodW)
	abc := crc32.Checksum([]byte("abc"), castagnoli)
	otherSeq := commitRecord{unit: "w", epoch: 2, seq: 2, slot: 0, chunks: 1, size: 3, crc: abc}
	wrongSize := commitRecord{unit: "w", epoch: 3, seq: 1, slot: 0, chunks: 1, size: 4, crc: abc}
	e.produce(t, "state",
		kafka.Message{Key: []byte(chunkKey("w", 2, 0, 0)), Value: chunkRecord{unit: "w", epoch: 2, seq: 1, data: []byte("abc")}.encode()},
		kafka.Message{Key: []byte(otherSeq.key()), Value: otherSeq.encode()},
		kafka.Message{Key: []byte(chunkKey("w", 3, 0, 0)), Value: chunkRecord{unit: "w", epoch: 3, seq: 1, data: []byte("abc")}.encode()},
		kafka.Message{Key: []byte(wrongSize.key()), Value: wrongSize.encode()},
	)

	reader := e.open(t, "state", 1<<10)
	// Epoch 6 is a well-formed record of u (its checkpoint fails its
	// checksum); the garbled epoch 99 is not counted.
	wantRead(t, reader, good, 6)
	wantRead(t, reader, goodW, 3)
	if n := strings.Count(e.logs.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings logged, want 1 (rate-limited):\n%s", n, e.logs.String())
	}

	rec := newFollowRecorder(map[delivery][]byte{{"u", 5, 1}: good.Data})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- reader.Follow(ctx, rec.deliver, rec.caught) }()
	rec.waitFor(t, delivery{"u", 5, 1})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow over garbage: %v", err)
	}
}

func TestStateLogReadOfAnEmptyTopicOrAnUnknownUnitFindsNothing(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	for i, step := range []string{"empty topic", "unknown unit"} {
		cp, maxEpoch, err := l.Read(testContext(t), "nobody")
		if err != nil || cp != nil || maxEpoch != 0 {
			t.Fatalf("%s: Read = %v, %d, %v; want nil, 0, nil", step, cp, maxEpoch, err)
		}
		mustWrite(t, l, Checkpoint{Unit: "somebody", Epoch: 1, Seq: uint64(i + 1), Data: []byte("x")})
	}
}

func TestStateLogReportsAMissingTopic(t *testing.T) {
	e := newStateLogEnv(t)
	l, err := NewStateLog(StateLogConfig{Brokers: []string{e.addr}, Topic: "nosuch"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, _, err := l.Read(testContext(t), "u"); err == nil || !strings.Contains(err.Error(), `stream: state log nosuch: read "u": list offsets`) {
		t.Errorf("Read of a missing topic: err %v, want one naming the topic and the step", err)
	}
	if err := l.Follow(testContext(t), func(*Checkpoint) {}, nil); err == nil || !strings.Contains(err.Error(), "stream: state log nosuch") {
		t.Errorf("Follow of a missing topic: err %v, want one naming the topic", err)
	}
}

func TestStateLogRefusesInvalidConfigAndUnits(t *testing.T) {
	for _, cfg := range []StateLogConfig{
		{Topic: "t"},
		{Brokers: []string{"x:1"}},
		{Brokers: []string{"x:1"}, Topic: "t", ChunkSize: -1},
	} {
		if _, err := NewStateLog(cfg, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("NewStateLog(%+v) succeeded", cfg)
		}
	}
	l, err := NewStateLog(StateLogConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, unit := range []string{"", strings.Repeat("u", MaxUnitLen+1)} {
		if err := l.Write(t.Context(), Checkpoint{Unit: unit, Epoch: 1, Seq: 1}); err == nil {
			t.Errorf("Write of unit %q succeeded", unit)
		}
		if _, _, err := l.Read(t.Context(), unit); err == nil {
			t.Errorf("Read of unit %q succeeded", unit)
		}
	}
}

func TestStateLogKeysParseBackWhateverTheUnit(t *testing.T) {
	for _, unit := range []string{"u", "a/b", "a/1/2", "7", "/", "c/d/1/0", strings.Repeat("x", MaxUnitLen)} {
		if rk, ok := parseKey(commitKey(unit, 42, 1)); !ok || rk != (recordKey{kind: kindCommit, unit: unit, epoch: 42, slot: 1}) {
			t.Errorf("commit key of %q parsed as %+v, %v", unit, rk, ok)
		}
		if rk, ok := parseKey(chunkKey(unit, 42, 0, 9)); !ok || rk != (recordKey{kind: kindChunk, unit: unit, epoch: 42, slot: 0, index: 9}) {
			t.Errorf("chunk key of %q parsed as %+v, %v", unit, rk, ok)
		}
	}
	for _, key := range []string{"", "c/", "c/u", "c/u/1", "c/u/1/2", "c//1/0", "d/u/1/0", "d/u/1/0/x", "x/u/1/0", "d/u/1/0/4294967296"} {
		if rk, ok := parseKey(key); ok {
			t.Errorf("key %q parsed as %+v", key, rk)
		}
	}
}

func TestStateLogTailProbeTellsACompactedGapFromTheEnd(t *testing.T) {
	e := newStateLogEnv(t)
	l := e.open(t, "state", 1<<10)
	for i := range 5 { // separate batches, so compaction can drop all but the last
		e.produce(t, "state", kafka.Message{Key: []byte("k"), Value: []byte{byte(i)}})
	}
	e.broker.Compact()
	// kfake keeps the last batch whole and, like Kafka's cleaner, does not
	// let it supersede earlier keys: offsets 3 and 4 remain.
	records := e.records(t, "state")
	if len(records) == 0 || records[0].Offset == 0 {
		t.Fatalf("after compaction: %d records, the first at offset %d; want a gap from offset 0", len(records), records[0].Offset)
	}
	ctx := testContext(t)
	if empty, err := l.tailEmpty(ctx, 0, 5); err != nil || empty {
		t.Errorf("tailEmpty(0, 5) = %v, %v; want false: offset 4 is there", empty, err)
	}
	if empty, err := l.tailEmpty(ctx, 0, 3); err != nil || !empty {
		t.Errorf("tailEmpty(0, 3) = %v, %v; want true: offsets 0-2 are gone", empty, err)
	}
	if empty, err := l.tailEmpty(ctx, 5, 5); err != nil || !empty {
		t.Errorf("tailEmpty(5, 5) = %v, %v; want true", empty, err)
	}
}

func TestStateLogHoldsOnlyTheRecordsItStillNeeds(t *testing.T) {
	l, err := NewStateLog(StateLogConfig{Brokers: []string{"127.0.0.1:1"}, Topic: "t", ChunkSize: 100}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	messages := func(cp Checkpoint, slot uint8) []kafka.Message {
		c := commitRecord{unit: cp.Unit, epoch: cp.Epoch, seq: cp.Seq, slot: slot, chunks: uint32((len(cp.Data) + 99) / 100),
			size: uint64(len(cp.Data)), crc: crc32.Checksum(cp.Data, castagnoli)}
		return append(l.chunkMessages(cp, slot), kafka.Message{Key: []byte(c.key()), Value: c.encode()})
	}
	var log []kafka.Message
	for seq := uint64(1); seq <= 4; seq++ {
		log = append(log, messages(Checkpoint{Unit: "b", Epoch: 1, Seq: seq, Data: randomData(seq, 1000)}, uint8(seq%2))...)
		log = append(log, messages(Checkpoint{Unit: "a", Epoch: 1, Seq: seq, Data: randomData(seq, 500)}, uint8(seq%2))...)
	}

	// Read keeps a's records only, the latest of each key: 5 chunks and a
	// commit in each of two slots.
	view := newUnitView("a")
	for i := range log {
		l.readRecord(view, &log[i])
	}
	if len(view.chunks) != 10 || len(view.commits) != 2 {
		t.Errorf("Read's view holds %d chunks and %d commits, want a's latest: 10 and 2", len(view.chunks), len(view.commits))
	}

	// Follow drops what it delivered and keeps what is incomplete.
	f := &follower{log: l, fn: func(*Checkpoint) {}, units: make(map[string]*followedUnit)}
	for i := range log {
		f.record(&log[i])
	}
	torn := messages(Checkpoint{Unit: "a", Epoch: 1, Seq: 5, Data: randomData(5, 500)}, 1)
	for i := range torn[:3] {
		f.record(&torn[i])
	}
	if a, b := f.units["a"].view, f.units["b"].view; len(a.chunks) != 3 || len(a.commits) != 0 || len(b.chunks) != 0 {
		t.Errorf("Follow holds %d chunks and %d commits of a (want the 3 torn chunks only), %d chunks of b (want 0)",
			len(a.chunks), len(a.commits), len(b.chunks))
	}
}

func BenchmarkStateLogWrite(b *testing.B) {
	broker, err := devbroker.Start(devbroker.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer broker.Close()
	l, err := NewStateLog(StateLogConfig{Brokers: []string{broker.Addr()}, Topic: "state"}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.EnsureTopic(ctx); err != nil {
		b.Fatal(err)
	}
	data := randomData(1, 4<<20)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	seq := uint64(0)
	for b.Loop() {
		seq++
		if err := l.Write(ctx, Checkpoint{Unit: "u", Epoch: 1, Seq: seq, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestStateLogFollowOutlivesABrokerRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := devbroker.Start(devbroker.Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	e := &stateLogEnv{broker: b, addr: b.Addr(), logs: &syncBuffer{}}
	l := e.open(t, "state", 1<<10)
	first := Checkpoint{Unit: "x", Epoch: 1, Seq: 1, Data: []byte("one")}
	second := Checkpoint{Unit: "x", Epoch: 1, Seq: 2, Data: []byte("two")}
	rec := newFollowRecorder(map[delivery][]byte{{"x", 1, 1}: first.Data, {"x", 1, 2}: second.Data})
	mustWrite(t, l, first)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Follow(ctx, rec.deliver, rec.caught) }()
	rec.waitFor(t, delivery{"x", 1, 1})

	port := b.Port()
	b.Close()
	time.Sleep(1500 * time.Millisecond) // long enough for the reader to report errors
	b, err = devbroker.Start(devbroker.Config{Port: port, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	mustWrite(t, l, second)
	rec.waitFor(t, delivery{"x", 1, 2})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Follow: %v", err)
	}
}
