package learner

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/eddyhq/eddy/features"
)

// Task is what a model predicts.
type Task string

// The supported tasks.
const (
	// Binary is binary classification by logistic regression; labels are 0
	// or 1 and the score is the probability of 1.
	Binary Task = "binary"
	// Regression is linear regression with squared loss.
	Regression Task = "regression"
)

// OptimizerConfig configures plain SGD.
type OptimizerConfig struct {
	// LR is the learning rate of the weights. The default is 0.01.
	LR float64 `yaml:"lr"`
	// InterceptLR is the learning rate of the intercept. The default is 0.01.
	InterceptLR float64 `yaml:"intercept_lr"`
	// ClipGradient bounds the loss gradient's magnitude. The default is 1e12
	// (River's default).
	ClipGradient float64 `yaml:"clip_gradient"`
}

// ModelConfig describes one model. The zero value of every field but Name
// means its documented default.
type ModelConfig struct {
	// Name identifies the model in requests, metrics and storage. Letters,
	// digits, '_', '-' and '.', at most 64 characters.
	Name string `yaml:"name"`
	// Topic is the Kafka topic the model learns from. The default is "events".
	Topic string `yaml:"topic"`
	// Task is what the model predicts. The default is Binary.
	Task Task `yaml:"task"`
	// Features configures the feature pipeline; its fields sit at the top
	// level of the model's YAML (scaler, hash_bits, max_numeric_features,
	// ignore).
	Features features.Config `yaml:",inline"`
	// Optimizer configures SGD.
	Optimizer OptimizerConfig `yaml:"optimizer"`
}

// Defaults.
const (
	DefaultTopic           = "events"
	DefaultLR              = 0.01
	DefaultClipGradient    = 1e12
	DefaultPromoteInterval = 5 * time.Second
	DefaultRetain          = 10
	DefaultRollingWindow   = 1000
)

var modelName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// EnsureDefaults fills zero fields with their defaults.
func (c *ModelConfig) EnsureDefaults() {
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Task == "" {
		c.Task = Binary
	}
	c.Features.EnsureDefaults()
	if c.Optimizer.LR == 0 {
		c.Optimizer.LR = DefaultLR
	}
	if c.Optimizer.InterceptLR == 0 {
		c.Optimizer.InterceptLR = DefaultLR
	}
	if c.Optimizer.ClipGradient == 0 {
		c.Optimizer.ClipGradient = DefaultClipGradient
	}
}

// Validate reports the first invalid setting, naming the model.
func (c *ModelConfig) Validate() error {
	if !modelName.MatchString(c.Name) {
		return fmt.Errorf("learner: model name %q must be 1-64 letters, digits, '_', '-' or '.'", c.Name)
	}
	switch c.Task {
	case "", Binary, Regression:
	default:
		return fmt.Errorf("learner: model %s: unknown task %q (want binary or regression)", c.Name, c.Task)
	}
	if err := c.Features.Validate(); err != nil {
		return fmt.Errorf("learner: model %s: %w", c.Name, err)
	}
	o := c.Optimizer
	if o.LR < 0 || o.InterceptLR < 0 || o.ClipGradient < 0 {
		return fmt.Errorf("learner: model %s: learning rates and clip_gradient must not be negative", c.Name)
	}
	return nil
}

// EngineConfig configures an Engine. The zero value of every field but
// Models means its documented default.
type EngineConfig struct {
	// Models are the models to learn. At least one; names must be unique.
	Models []ModelConfig `yaml:"models"`
	// PromoteInterval is how often the live model of each model is
	// snapshotted and promoted to serving, if it learned something since.
	// The default is 5s.
	PromoteInterval time.Duration `yaml:"promote_interval"`
	// Retain is how many snapshots per model are kept. The default is 10.
	Retain int `yaml:"retain_snapshots"`
	// RollingWindow is the number of recent examples the rolling prequential
	// metrics cover. The default is 1000.
	RollingWindow int `yaml:"rolling_window"`
}

// EnsureDefaults fills zero fields with their defaults.
func (c *EngineConfig) EnsureDefaults() {
	for i := range c.Models {
		c.Models[i].EnsureDefaults()
	}
	if c.PromoteInterval == 0 {
		c.PromoteInterval = DefaultPromoteInterval
	}
	if c.Retain == 0 {
		c.Retain = DefaultRetain
	}
	if c.RollingWindow == 0 {
		c.RollingWindow = DefaultRollingWindow
	}
}

// Validate reports the first invalid setting.
func (c *EngineConfig) Validate() error {
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
	if c.PromoteInterval < 0 || c.Retain < 0 || c.RollingWindow < 0 {
		return errors.New("learner: promote_interval, retain_snapshots and rolling_window must not be negative")
	}
	return nil
}
