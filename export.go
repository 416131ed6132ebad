package eddy

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/eddyhq/eddy/features/codec"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/serving"
)

// exportMagic starts an export file; the byte after it is the format.
const exportMagic = "eddy-model-export\n"

// exportFormat is the layout of an export file: magic | format u8 |
// header (uvarint length, JSON ExportHeader) | snapshot (uvarint length,
// learner.Model.AppendSnapshot's encoding) | sha256 of everything before
// it (32 bytes).
const exportFormat = 1

// ErrBadExport is wrapped by the errors of DecodeExport.
var ErrBadExport = errors.New("not a valid eddy export file")

// ExportHeader describes the snapshot an export file holds.
type ExportHeader struct {
	Model    string    `json:"model"`
	Version  uint64    `json:"version"`
	Task     string    `json:"task"`
	Created  time.Time `json:"created"`
	Reason   string    `json:"reason"`
	Learned  uint64    `json:"learned"`
	Exported time.Time `json:"exported"`
	Build    string    `json:"build"` // the eddy that exported it
	// Config is the model configuration that took the snapshot (JSON,
	// defaults applied): its provenance's, or the exporting instance's for
	// a snapshot without provenance.
	Config     json.RawMessage    `json:"config"`
	Provenance *engine.Provenance `json:"provenance,omitempty"`
}

// EncodeExport returns the export file of snapshot (its stored encoding)
// described by h.
func EncodeExport(h ExportHeader, snapshot []byte) ([]byte, error) {
	header, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	out := append([]byte(exportMagic), exportFormat)
	out = codec.AppendBytes(out, header)
	out = codec.AppendBytes(out, snapshot)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), nil
}

// DecodeExport checks an export file and returns its header and snapshot.
// A file that is not one, was changed or was cut short is an error
// wrapping ErrBadExport that says which.
func DecodeExport(data []byte) (ExportHeader, []byte, error) {
	var h ExportHeader
	if !bytes.HasPrefix(data, []byte(exportMagic)) {
		return h, nil, fmt.Errorf("%w: it does not start as one (eddy export writes them)", ErrBadExport)
	}
	if len(data) < len(exportMagic)+1+sha256.Size {
		return h, nil, fmt.Errorf("%w: cut short (%d bytes)", ErrBadExport, len(data))
	}
	if f := data[len(exportMagic)]; f != exportFormat {
		return h, nil, fmt.Errorf("%w: format %d, this eddy reads format %d (export it again with this release)", ErrBadExport, f, exportFormat)
	}
	body, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return h, nil, fmt.Errorf("%w: checksum mismatch: the file was changed or cut short after it was written", ErrBadExport)
	}
	r := codec.NewReader(body[len(exportMagic)+1:], ErrBadExport)
	header := r.Bytes()
	snapshot := r.Bytes()
	if r.Err() != nil || len(r.Rest()) != 0 {
		return h, nil, fmt.Errorf("%w: malformed sections", ErrBadExport)
	}
	if err := json.Unmarshal(header, &h); err != nil {
		return h, nil, fmt.Errorf("%w: header: %v", ErrBadExport, err)
	}
	return h, bytes.Clone(snapshot), nil
}

// ExportedModel is an export file, read: its header, configuration and
// snapshot, which scores without a live model.
type ExportedModel struct {
	Header ExportHeader
	Config learner.ModelConfig
	*learner.Snapshot
}

// LoadExport reads and checks an export file (DecodeExport) and decodes
// its snapshot. The snapshot derives no history features (an export does
// not carry entity histories): LoadExport refuses a model that uses them.
func LoadExport(path string) (*ExportedModel, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export file: %w", err)
	}
	h, snap, err := DecodeExport(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var cfg learner.ModelConfig
	if err := json.Unmarshal(h.Config, &cfg); err != nil {
		return nil, fmt.Errorf("%s: %w: configuration: %v", path, ErrBadExport, err)
	}
	if f := cfg.Features; len(f.Windows) > 0 || len(f.Lags) > 0 || len(f.Targets) > 0 {
		return nil, fmt.Errorf("%s: model %s derives features from entity histories (windows, lags, targets), which an export does not carry: it cannot score offline", path, h.Model)
	}
	s, err := learner.DecodeStoredSnapshot(cfg, snap)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: snapshot: %v", path, ErrBadExport, err)
	}
	return &ExportedModel{Header: h, Config: cfg, Snapshot: s}, nil
}

// exportSnapshot encodes the stored snapshot version of model as an export
// file.
func exportSnapshot(e *engine.Engine, mc learner.ModelConfig, version uint64) ([]byte, error) {
	data, ok, err := e.SnapshotData(mc.Name, version)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%w: model %s version %d is not stored (ListSnapshots lists those that are)", engine.ErrSnapshotNotFound, mc.Name, version)
	}
	snap, err := learner.DecodeStoredSnapshot(mc, data)
	if err != nil {
		return nil, err
	}
	h := ExportHeader{Model: mc.Name, Version: version, Task: string(snap.Task()), Created: snap.Created(), Reason: snap.Reason(),
		Learned: snap.Learned(), Exported: time.Now().UTC(), Build: engine.Build()}
	if p, config, err := e.SnapshotProvenance(mc.Name, version); err == nil {
		h.Provenance, h.Config = &p, config
	} else if !errors.Is(err, engine.ErrSnapshotNotFound) {
		return nil, err
	}
	if h.Config == nil {
		if h.Config, err = json.Marshal(mc); err != nil {
			return nil, err
		}
	}
	return EncodeExport(h, data)
}

// importExport seeds model with an export file (engine.Import): the file
// must be a valid export (DecodeExport) of a model configured to learn
// alike. Its errors are classified for the Admin service.
func importExport(ctx context.Context, e *engine.Engine, model string, file []byte) (uint64, error) {
	h, snap, err := DecodeExport(file)
	if err != nil {
		return 0, classified{serving.ErrInvalid, err}
	}
	var exported learner.ModelConfig
	if err := json.Unmarshal(h.Config, &exported); err != nil {
		return 0, classified{serving.ErrInvalid, fmt.Errorf("%w: configuration: %v", ErrBadExport, err)}
	}
	sum := sha256.Sum256(file)
	origin := engine.ImportOrigin{Model: h.Model, Version: h.Version, Learned: h.Learned, Build: h.Build, SHA256: hex.EncodeToString(sum[:])}
	if h.Provenance != nil {
		origin.ConfigHash = h.Provenance.ConfigHash
	}
	v, err := e.Import(ctx, model, snap, exported, origin)
	switch {
	case errors.Is(err, engine.ErrImportMismatch):
		return 0, classified{serving.ErrPrecondition, err}
	case errors.Is(err, learner.ErrCorrupt):
		return 0, classified{serving.ErrInvalid, fmt.Errorf("%w: snapshot: %v", ErrBadExport, err)}
	}
	return v, adminError(err)
}
