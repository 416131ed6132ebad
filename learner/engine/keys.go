package engine

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// The engine's keys in the store:
//
//	model/<name>                              model state
//	offset/<topic>/<partition u32 BE>          next offset to consume, u64 BE
//	snapshot/<name>/<version u64 BE>           snapshot
//	snapshot-info/<name>/<version u64 BE>      its SnapshotInfo, to list snapshots without their weights
//	monitor/<name>                            champion version and pin, drift detector, challengers
//	detection/<name>/<sequence u64 BE>        one drift detection (time, position, detector state)
//	history/<name>/<entity key>               one entity's recent values and labels
//	pending/<name>/<event id>                 an event waiting for its delayed label
//	pending-at/<name>/<scored at u64 BE><id>   the same, by when it was scored (empty value)
//	pending-count/<name>                      how many events wait, uvarint

func modelKey(name string) []byte { return []byte("model/" + name) }

func monitorKey(name string) []byte { return []byte("monitor/" + name) }

// schemaKey holds a model's schema inference: its progress, or the schema
// it inferred (learner.Model.AppendSchemaState).
func schemaKey(name string) []byte { return []byte("schema/" + name) }

func historyKey(name string, entity []byte) []byte {
	return append([]byte("history/"+name+"/"), entity...)
}

func pendingKey(model string, id []byte) []byte {
	return append([]byte("pending/"+model+"/"), id...)
}

func pendingAtPrefix(model string) []byte { return []byte("pending-at/" + model + "/") }

// pendingAtKey is the index entry of the event id scored at at: the time
// as an unsigned big-endian number (its sign bit flipped), so that keys
// sort by time, also before 1970.
func pendingAtKey(model string, at time.Time, id string) []byte {
	key := binary.BigEndian.AppendUint64(pendingAtPrefix(model), uint64(at.UnixNano())^1<<63)
	return append(key, id...)
}

func pendingCountKey(model string) []byte { return []byte("pending-count/" + model) }

func detectionPrefix(name string) []byte { return []byte("detection/" + name + "/") }

func detectionKey(name string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(detectionPrefix(name), seq)
}

const offsetPrefix = "offset/"

func offsetKey(topic string, partition int) []byte {
	return binary.BigEndian.AppendUint32([]byte(offsetPrefix+topic+"/"), uint32(partition))
}

func snapshotPrefix(name string) []byte { return []byte("snapshot/" + name + "/") }

func snapshotKey(name string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(snapshotPrefix(name), version)
}

func snapshotInfoPrefix(name string) []byte { return []byte("snapshot-info/" + name + "/") }

func snapshotInfoKey(name string, version uint64) []byte {
	return binary.BigEndian.AppendUint64(snapshotInfoPrefix(name), version)
}

// readOffsets returns every stored next offset.
func readOffsets(s *store.Store) (map[TopicPartition]int64, error) {
	out := make(map[TopicPartition]int64)
	err := s.Scan([]byte(offsetPrefix), func(key, value []byte) error {
		rest := key[len(offsetPrefix):]
		if len(rest) < 5 || rest[len(rest)-5] != '/' || len(value) != 8 {
			return fmt.Errorf("%w: offset key %q", learner.ErrCorrupt, key)
		}
		tp := TopicPartition{Topic: string(rest[:len(rest)-5]), Partition: int(binary.BigEndian.Uint32(rest[len(rest)-4:]))}
		out[tp] = int64(binary.BigEndian.Uint64(value))
		return nil
	})
	return out, err
}
