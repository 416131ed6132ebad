package engine

import (
	"errors"
	"fmt"
	"time"

	"github.com/eddyhq/eddy/learner"
)

// Defaults of Config.
const (
	DefaultPromoteInterval = 5 * time.Second
	DefaultRetain          = 10
	DefaultRetainFor       = time.Hour

	// MaxRetained bounds the snapshots kept per model whatever Retain and
	// RetainFor say: beyond it the oldest go first, even within RetainFor
	// (the served snapshot, pinned or not, stays). At the demo's one
	// promotion a second it is over an hour of history.
	MaxRetained = 5000
)

// Config configures an Engine. The zero value of every field but
// Models means its documented default.
type Config struct {
	// Models are the models to learn. At least one; names must be unique.
	Models []learner.ModelConfig `yaml:"models"`
	// PromoteInterval is how often the live model of each model is
	// snapshotted and promoted to serving, if it learned something since.
	// The default is 5s.
	PromoteInterval time.Duration `yaml:"promote_interval"`
	// Retain is how many of each model's newest snapshots are kept
	// whatever their age. The default is 10; at most MaxRetained.
	Retain int `yaml:"retain_snapshots"`
	// RetainFor is how long a snapshot is kept whatever the count: a
	// snapshot is deleted only once it is neither among the newest Retain
	// nor younger than RetainFor, so an operator can go back RetainFor in
	// time. The pinned and the served snapshot are never deleted, and no
	// model keeps more than MaxRetained. The default is 1h; to keep by count
	// alone, set a tiny duration such as 1ns.
	RetainFor time.Duration `yaml:"retain_for"`
	// RollingWindow is the number of recent examples the rolling prequential
	// metrics cover. The default is 1000.
	RollingWindow int `yaml:"rolling_window"`
}

// EnsureDefaults fills zero fields with their defaults.
func (c *Config) EnsureDefaults() {
	for i := range c.Models {
		c.Models[i].EnsureDefaults()
	}
	if c.PromoteInterval == 0 {
		c.PromoteInterval = DefaultPromoteInterval
	}
	if c.Retain == 0 {
		c.Retain = DefaultRetain
	}
	if c.RetainFor == 0 {
		c.RetainFor = DefaultRetainFor
	}
	if c.RollingWindow == 0 {
		c.RollingWindow = learner.DefaultRollingWindow
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if len(c.Models) == 0 {
		return errors.New("learner: no models configured")
	}
	seen := make(map[string]bool)
	for i := range c.Models {
		if err := c.Models[i].Validate(); err != nil {
			return err
		}
		if seen[c.Models[i].Name] {
			return fmt.Errorf("learner: model %s configured twice", c.Models[i].Name)
		}
		seen[c.Models[i].Name] = true
	}
	if c.PromoteInterval < 0 || c.Retain < 0 || c.RetainFor < 0 || c.RollingWindow < 0 {
		return errors.New("learner: promote_interval, retain_snapshots, retain_for and rolling_window must not be negative")
	}
	if c.Retain > MaxRetained {
		return fmt.Errorf("learner: retain_snapshots %d is above the bound of %d snapshots per model", c.Retain, MaxRetained)
	}
	return nil
}
