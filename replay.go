package eddy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/learner/store"
	"github.com/eddyhq/eddy/stream"
)

// ReplayOptions says what Replay reproduces and where the data is.
type ReplayOptions struct {
	// Cluster is the Kafka cluster that holds the model's events topic.
	Cluster stream.Cluster
	// Export is the export file (eddy export, Admin ExportSnapshot) of the
	// snapshot to reproduce: its configuration and provenance say what to
	// learn, its state is what the result is compared with.
	Export []byte
	// Decoder is the event limits the service ran with (zero: defaults).
	Decoder stream.DecoderConfig
	// Progress, if set, is called with the events replayed so far every
	// 10,000 events.
	Progress func(events int64)
	Log      *slog.Logger
}

// ReplayReport is what a replay found.
type ReplayReport struct {
	Model   string `json:"model"`
	Version uint64 `json:"version"`
	// Ranges are the offsets the lineage names (Provenance.SinceBegan).
	Ranges []stream.OffsetRange `json:"ranges"`
	// Missing are the offsets of Ranges Kafka no longer holds: the replay
	// did not run.
	Missing      []stream.OffsetRange `json:"missing,omitempty"`
	Events       int64                `json:"events"`      // read from Kafka
	Undecodable  int                  `json:"undecodable"` // of those, not events (the service dead-lettered them)
	Learned      uint64               `json:"learned"`     // by the replayed model
	WantLearned  uint64               `json:"want_learned"`
	Rejected     uint64               `json:"rejected"` // by the replayed model (the service dead-lettered them)
	WantRejected uint64               `json:"want_rejected"`
	Diff         learner.StateDiff    `json:"diff"`
	// Interleaved is true when the lineage spans several partitions: the
	// replay learns their events in order of message time, which is not
	// in general the order the service learned them in (each partition's
	// events reach the engine as they are fetched), so the result is close
	// but not bitwise identical.
	Interleaved bool `json:"interleaved"`
}

// Reproduced reports whether the replay gave the exported state bitwise.
func (r *ReplayReport) Reproduced() bool { return len(r.Missing) == 0 && r.Diff.Identical }

// ErrReplayRefused is wrapped by Replay's error when the export's lineage
// cannot be replayed from Kafka; ErrDataMissing when Kafka no longer holds
// all of it.
var (
	ErrReplayRefused = errors.New("cannot replay")
	ErrDataMissing   = errors.New("data missing from Kafka")
)

// Replay re-learns the exported snapshot's model from Kafka: a fresh model
// of the recorded configuration learns the events of the offsets its
// lineage names (every partition's since_began range), in offset order
// within a partition and by message time across partitions, on a
// temporary store, with drift detection off (a detection changes what
// serves, never what the live model learns). It then compares the result
// with the snapshot's state. It refuses a lineage that did not begin with
// a fresh model learning from Kafka (one seeded by an import), one with
// delayed labels (the interleaving of two topics is not recorded), and a
// model with entity histories whose lineage did not begin with the model's
// first event or that evicts idle entities (the histories it began with
// are not in the export). When Kafka no longer holds part of the ranges
// the report's Missing lists exactly which offsets, and the error wraps
// ErrDataMissing.
func Replay(ctx context.Context, o ReplayOptions) (*ReplayReport, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	h, snap, err := DecodeExport(o.Export)
	if err != nil {
		return nil, err
	}
	var mc learner.ModelConfig
	if err := json.Unmarshal(h.Config, &mc); err != nil {
		return nil, fmt.Errorf("%w: configuration: %v", ErrBadExport, err)
	}
	r := &ReplayReport{Model: h.Model, Version: h.Version, WantLearned: h.Learned}
	p := h.Provenance
	history := len(mc.Features.Windows) > 0 || len(mc.Features.Lags) > 0 || len(mc.Features.Targets) > 0
	switch {
	case p == nil:
		return r, fmt.Errorf("%w: model %s version %d was taken before eddy recorded provenance", ErrReplayRefused, h.Model, h.Version)
	case p.Origin == engine.OriginImport:
		i := p.Imported
		return r, fmt.Errorf("%w: the lineage of model %s version %d began with an import of model %s version %d (sha256 %s), whose state did not come from this Kafka: replay that version where it was learned",
			ErrReplayRefused, h.Model, h.Version, i.Model, i.Version, i.SHA256)
	case mc.LabelsTopic != "":
		return r, fmt.Errorf("%w: model %s learns delayed labels from %s: the order in which labels met their events is not recorded", ErrReplayRefused, h.Model, mc.LabelsTopic)
	case history && p.Origin != "":
		return r, fmt.Errorf("%w: model %s derives features from entity histories and its lineage began when a %s replaced it: the histories it began with are not in the export", ErrReplayRefused, h.Model, p.Origin)
	case history && mc.Features.EntityTTL > 0:
		return r, fmt.Errorf("%w: model %s evicts entities idle for %v, by the clock of the service: a replay would evict others", ErrReplayRefused, h.Model, mc.Features.EntityTTL)
	}
	r.WantRejected = p.Rejected
	partitions := 0
	for _, b := range p.SinceBegan {
		r.Ranges = append(r.Ranges, stream.OffsetRange{Topic: b.Topic, Partition: b.Partition, From: b.From, To: b.To})
		if b.To > b.From {
			partitions++
		}
	}
	r.Interleaved = partitions > 1
	if r.Missing, err = o.Cluster.Missing(ctx, r.Ranges); err != nil {
		return r, err
	}
	if len(r.Missing) > 0 {
		return r, fmt.Errorf("%w: %d range(s) of the lineage of model %s version %d (first: %s)", ErrDataMissing, len(r.Missing), h.Model, h.Version, r.Missing[0])
	}

	want, err := learner.DecodeSnapshotModel(mc, 0, snap)
	if err != nil {
		return r, fmt.Errorf("%w: snapshot: %v", ErrBadExport, err)
	}
	window := want.StoredRollingWindow()
	if want, err = learner.DecodeSnapshotModel(mc, window, snap); err != nil {
		return r, fmt.Errorf("%w: snapshot: %v", ErrBadExport, err)
	}
	got, err := replayModel(ctx, o, mc, window, r)
	if err != nil {
		return r, err
	}
	r.Learned = got.Learned()
	r.Diff = got.CompareState(want)
	return r, nil
}

// replayModel learns the events of r.Ranges with a fresh model of mc on a
// temporary store and returns it.
func replayModel(ctx context.Context, o ReplayOptions, mc learner.ModelConfig, window int, r *ReplayReport) (_ *learner.Model, err error) {
	dir, err := os.MkdirTemp("", "eddy-replay-")
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer os.RemoveAll(dir)
	st, err := store.Open(dir, o.Log, nil)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	defer func() { err = errors.Join(err, st.Close()) }()
	mc.Drift.Detector = "" // what serves, never what the live model learns
	if mc.FeatureDrift != nil {
		fd := *mc.FeatureDrift
		fd.Challenger = false
		mc.FeatureDrift = &fd
	}
	e, err := engine.New(engine.Config{Models: []learner.ModelConfig{mc}, RollingWindow: window, PromoteInterval: math.MaxInt64},
		st, func(*learner.Snapshot) {}, prometheus.NewRegistry(), o.Log)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	h := &engineHandler{engine: e}
	next := map[int]int64{}
	checkpoint := func() error {
		var offsets []stream.Offset
		for part, n := range next {
			offsets = append(offsets, stream.Offset{Topic: mc.Topic, Partition: part, Next: n})
		}
		return h.Checkpoint(offsets)
	}
	start := time.Now()
	r.Undecodable, err = o.Cluster.Replay(ctx, r.Ranges, stream.ReplayConfig{Decoder: o.Decoder}, func(topic string, ev *stream.Event) error {
		r.Events++
		if err := h.Handle(topic, ev); err != nil {
			var rej stream.Rejection
			if !errors.As(err, &rej) {
				return err
			}
			r.Rejected++
		}
		next[ev.Partition] = ev.Offset + 1
		if r.Events%10000 == 0 {
			if o.Progress != nil {
				o.Progress(r.Events)
			}
			return checkpoint() // bounds what the engine holds
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	r.Events += int64(r.Undecodable)
	o.Log.Info("replay learned the lineage", "model", mc.Name, "events", r.Events, "elapsed", time.Since(start).Round(time.Millisecond))
	return e.Live(mc.Name), nil
}
