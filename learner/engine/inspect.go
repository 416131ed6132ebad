package engine

import (
	"fmt"

	"github.com/eddyhq/eddy/learner"
)

// Inspect describes what model has learned, listing its top largest
// weights by readable name (0: learner.DefaultInspectTop): version 0 is
// the model as the store holds it after the last checkpoint, another
// version that stored snapshot (ErrSnapshotNotFound when it is not, or
// when the model has not checkpointed yet). It reads the store only and
// may be called from any goroutine.
func (e *Engine) Inspect(model string, version uint64, top int) (learner.Inspection, error) {
	var mc *learner.ModelConfig
	for i := range e.cfg.Models {
		if e.cfg.Models[i].Name == model {
			mc = &e.cfg.Models[i]
		}
	}
	if mc == nil {
		return learner.Inspection{}, fmt.Errorf("%w: no model named %q", ErrSnapshotNotFound, model)
	}
	view := e.store.NewView()
	defer view.Close()
	if version == 0 {
		data, ok, err := view.Get(modelKey(model))
		if err != nil {
			return learner.Inspection{}, fmt.Errorf("learner: %w", err)
		}
		if !ok {
			return learner.Inspection{}, fmt.Errorf("%w: model %s has not checkpointed yet: it has learned nothing here", ErrSnapshotNotFound, model)
		}
		m, _, err := learner.DecodeModel(*mc, e.cfg.RollingWindow, data)
		if err != nil {
			return learner.Inspection{}, err
		}
		return m.Inspect(top), nil
	}
	data, ok, err := view.Get(snapshotKey(model, version))
	if err != nil {
		return learner.Inspection{}, fmt.Errorf("learner: %w", err)
	}
	if !ok {
		return learner.Inspection{}, fmt.Errorf("%w: model %s version %d is not stored (ListSnapshots lists those that are)", ErrSnapshotNotFound, model, version)
	}
	s, err := learner.DecodeStoredSnapshot(*mc, data)
	if err != nil {
		return learner.Inspection{}, err
	}
	return s.Inspect(top), nil
}

// Configs returns the configurations of the engine's models, defaults
// applied. The caller must not modify them.
func (e *Engine) Configs() []learner.ModelConfig { return e.cfg.Models }
