package engine

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/eddyhq/eddy/features/codec"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/store"
)

// SnapshotInfo describes a stored snapshot.
type SnapshotInfo struct {
	Version uint64
	Created time.Time
	Reason  string
	Learned uint64
	Metrics learner.Metrics
	// Pinned is true for the champion an operator chose (Promote,
	// Rollback): it serves until Release, whatever automatic promotion
	// decides meanwhile.
	Pinned bool
	// Provenance is where it came from; nil for a snapshot taken before
	// provenance was recorded.
	Provenance *Provenance
}

// infoOf describes s as listings show it.
func infoOf(s *learner.Snapshot) SnapshotInfo {
	return SnapshotInfo{Version: s.Version(), Created: s.Created(), Reason: s.Reason(), Learned: s.Learned(), Metrics: s.Metrics()}
}

// Snapshots lists the stored snapshots of a model, oldest first. It reads
// one point-in-time view of the store (so it never fails or mixes states
// while checkpoints promote and retire snapshots), reads no weights, and is
// safe to call from any goroutine. What it shows is durable: admin commands
// answer only once stored.
func (e *Engine) Snapshots(model string) ([]SnapshotInfo, error) {
	return snapshotInfos(e.store, model)
}

// snapshotInfos lists the stored snapshots of model, oldest first, marking
// the pinned one, all read from one point-in-time view of the store: a
// checkpoint committing meanwhile (a new snapshot, retention deleting old
// ones, a pin) is seen entirely or not at all. It reads no weights.
func snapshotInfos(s *store.Store, model string) (infos []SnapshotInfo, err error) {
	view := s.NewView()
	defer func() { err = errors.Join(err, view.Close()) }()
	var pinned uint64
	if v, ok, err := view.Get(monitorKey(model)); err != nil {
		return nil, fmt.Errorf("learner: %w", err)
	} else if ok {
		champion, isPinned, err := learner.MonitorChampion(v)
		if err != nil {
			return nil, fmt.Errorf("learner: model %s monitor: %w", model, err)
		}
		if isPinned {
			pinned = champion
		}
	}
	prefix := snapshotInfoPrefix(model)
	err = view.Scan(prefix, func(key, value []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: snapshot info key %q", learner.ErrCorrupt, key)
		}
		in, err := decodeSnapshotInfo(binary.BigEndian.Uint64(key[len(prefix):]), value)
		if err != nil {
			return fmt.Errorf("learner: model %s: %w", model, err)
		}
		in.Pinned = in.Version == pinned
		if data, ok, err := view.Get(provenanceKey(model, in.Version)); err != nil {
			return fmt.Errorf("learner: %w", err)
		} else if ok {
			var p Provenance
			if err := json.Unmarshal(data, &p); err != nil {
				return fmt.Errorf("%w: provenance of %s v%d: %v", learner.ErrCorrupt, model, in.Version, err)
			}
			in.Provenance = &p
		}
		infos = append(infos, in)
		return nil
	})
	return infos, err
}

// snapshotInfoVersion is the first byte of an encoded SnapshotInfo, stored
// beside each snapshot so that listing snapshots reads no weights. Layout:
// version u8 | created (Unix nanoseconds, varint) | reason string | learned
// uvarint | metrics: n uvarint, accuracy, log loss, MAE, RMSE, rolling (8
// bytes each). Snapshots stored before infos existed get theirs when the
// Engine opens the store.
const snapshotInfoVersion = 1

func appendSnapshotInfo(dst []byte, in SnapshotInfo) []byte {
	dst = append(dst, snapshotInfoVersion)
	dst = binary.AppendVarint(dst, in.Created.UnixNano())
	dst = codec.AppendString(dst, in.Reason)
	dst = binary.AppendUvarint(dst, in.Learned)
	dst = binary.AppendUvarint(dst, in.Metrics.N)
	for _, x := range []float64{in.Metrics.Accuracy, in.Metrics.LogLoss, in.Metrics.MAE, in.Metrics.RMSE, in.Metrics.Rolling} {
		dst = codec.AppendFloat(dst, x)
	}
	return dst
}

func decodeSnapshotInfo(version uint64, data []byte) (SnapshotInfo, error) {
	r := codec.NewReader(data, learner.ErrCorrupt)
	if v := r.Byte(); r.Err() == nil && v != snapshotInfoVersion {
		return SnapshotInfo{}, fmt.Errorf("%w: unknown snapshot info version %d", learner.ErrCorrupt, v)
	}
	in := SnapshotInfo{Version: version}
	in.Created = time.Unix(0, r.Varint()).UTC()
	in.Reason = r.String()
	in.Learned = r.Uvarint()
	in.Metrics.N = r.Uvarint()
	in.Metrics.Accuracy, in.Metrics.LogLoss = r.Float(), r.Float()
	in.Metrics.MAE, in.Metrics.RMSE, in.Metrics.Rolling = r.Float(), r.Float(), r.Float()
	if r.Err() != nil {
		return SnapshotInfo{}, fmt.Errorf("snapshot info of version %d: %w", version, r.Err())
	}
	return in, nil
}
