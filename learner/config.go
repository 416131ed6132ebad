package learner

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"time"

	"github.com/eddyhq/eddy/drift"
	"github.com/eddyhq/eddy/features"
)

// Task is what a model predicts.
type Task string

// The supported tasks.
const (
	// Binary is binary classification; labels are 0 or 1 (false or true)
	// and the score is the probability of 1.
	Binary Task = "binary"
	// Regression predicts a real value.
	Regression Task = "regression"
	// Multiclass is classification into classes discovered as they arrive;
	// labels are class numbers (integers in [0, 2^31)).
	Multiclass Task = "multiclass"
)

// Loss is the loss a model minimises.
type Loss string

// The supported losses, by task.
const (
	LossLog                Loss = "log"                 // binary (default): logistic regression
	LossHinge              Loss = "hinge"               // binary: linear SVM
	LossSquared            Loss = "squared"             // regression (default)
	LossAbsolute           Loss = "absolute"            // regression
	LossHuber              Loss = "huber"               // regression, quadratic within Epsilon
	LossEpsilonInsensitive Loss = "epsilon_insensitive" // regression, zero within Epsilon
	LossSoftmax            Loss = "softmax"             // multiclass (default): multinomial logistic
)

// OptimizerKind names an optimizer.
type OptimizerKind string

// The supported optimizers. All work per coordinate, touching only the
// features present in an example.
const (
	SGD     OptimizerKind = "sgd"     // plain SGD (default)
	AdaGrad OptimizerKind = "adagrad" // per-coordinate learning rates from the sum of squared gradients
	Adam    OptimizerKind = "adam"    // bias-corrected first and second moments
	FTRL    OptimizerKind = "ftrl"    // FTRL-Proximal (McMahan et al. 2013), exact zeros with L1
)

// Schedule names an SGD learning-rate schedule.
type Schedule string

// The supported schedules.
const (
	Constant   Schedule = "constant"   // lr (default)
	InvScaling Schedule = "invscaling" // lr / (t+1)^power_t
)

// OptimizerConfig configures the optimizer and regularisation. The zero
// value of every field means its documented default.
type OptimizerConfig struct {
	// Kind is the optimizer. The default is SGD.
	Kind OptimizerKind `yaml:"kind"`
	// LR is the learning rate of the weights (FTRL: alpha). The defaults are
	// River's: 0.01 for SGD, 0.1 for AdaGrad and Adam, 0.05 for FTRL.
	LR float64 `yaml:"lr"`
	// Schedule is SGD's learning-rate schedule. The default is Constant.
	Schedule Schedule `yaml:"schedule"`
	// PowerT is the exponent of the InvScaling schedule. The default is 0.5.
	PowerT float64 `yaml:"power_t"`
	// Beta1 and Beta2 are Adam's moment decays. The defaults are 0.9 and
	// 0.999.
	Beta1 float64 `yaml:"beta1"`
	Beta2 float64 `yaml:"beta2"`
	// FTRLBeta is FTRL's beta. The default is 1.
	FTRLBeta float64 `yaml:"ftrl_beta"`
	// InterceptLR is the learning rate of the intercept, which always learns
	// by plain SGD. The default is 0.01.
	InterceptLR float64 `yaml:"intercept_lr"`
	// L1 and L2 are the regularisation strengths. L1 produces exact zeros
	// (FTRL natively; SGD by the cumulative penalty of Tsuruoka et al. 2009;
	// AdaGrad and Adam by truncation). L2 adds 2·L2·w to the gradient of
	// each active weight (FTRL: its own L2 term). The defaults are 0.
	L1 float64 `yaml:"l1"`
	L2 float64 `yaml:"l2"`
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
	// Loss is the loss minimised. The default is the task's: log, squared or
	// softmax.
	Loss Loss `yaml:"loss"`
	// Epsilon is the width of the Huber and epsilon-insensitive losses. The
	// default is 0.1.
	Epsilon float64 `yaml:"epsilon"`
	// MaxClasses bounds the classes of a Multiclass model. The default is 64.
	MaxClasses int `yaml:"max_classes"`
	// Features configures the feature pipeline; its fields sit at the top
	// level of the model's YAML (scaler, hash_bits, max_numeric_features,
	// ignore, namespaces, interactions).
	Features features.Config `yaml:",inline"`
	// Optimizer configures learning.
	Optimizer OptimizerConfig `yaml:"optimizer"`
	// Drift configures drift detection and champion/challenger promotion.
	Drift DriftConfig `yaml:"drift"`
	// LabelsTopic, if set, is a topic of delayed labels, {"id": ...,
	// "label": ...}: an event without a label is scored when it arrives and
	// kept (in the engine's store) until its label arrives there, then
	// learned.
	LabelsTopic string `yaml:"labels_topic"`
	// LabelTTL is how long an unlabeled event waits for its label before it
	// expires (counted, never learned). The default is 24h.
	LabelTTL time.Duration `yaml:"label_ttl"`
	// MaxPendingInMemory bounds the events waiting for a label that the
	// engine holds in memory after each checkpoint; the others wait in its
	// store only, and are read back when their label comes. 0 means
	// DefaultMaxPendingInMemory; -1 holds every waiting event.
	MaxPendingInMemory int `yaml:"max_pending_in_memory" json:",omitempty"`
	// Schema, if set, declares the model's features (kind, required,
	// range) and what an event or a request that breaks it gets: see
	// features.Schema. Without one every feature is accepted as it comes.
	Schema *features.Schema `yaml:"schema,omitempty" json:",omitempty"`
	// FeatureDrift, if set, watches the distribution of numeric features
	// (their own values, not the model's error) for a change: a unit
	// change, a broken upstream join. See FeatureDriftConfig.
	FeatureDrift *FeatureDriftConfig `yaml:"feature_drift,omitempty" json:",omitempty"`
	// HashNames bounds how many hashed buckets (categories, interactions)
	// the model keeps a readable name for, with its state, so that Inspect
	// names its largest weights: 0 means DefaultHashNames (4096), a
	// negative value keeps none. When full, the names of the quarter of
	// the buckets with the smallest weights are forgotten.
	HashNames int `yaml:"hash_names" json:",omitempty"`
}

// hashNames is HashNames with its default.
func (c *ModelConfig) hashNames() int {
	if c.HashNames == 0 {
		return DefaultHashNames
	}
	return c.HashNames
}

// FeatureDriftConfig configures feature-drift detection: one
// distribution-shift detector (drift.Shift) per watched numeric feature.
// The zero value of every field but Features means drift.Shift's default.
type FeatureDriftConfig struct {
	// Features are the numeric features to watch, and Categories the
	// categorical ones (drift.CategoryShift: Bins is then the number of
	// most frequent values it tells apart, 20 by default). Both empty,
	// with a schema: every number and every category the schema declares.
	Features   []string `yaml:"features"`
	Categories []string `yaml:"categories"`
	Reference  int      `yaml:"reference"` // values of the reference distribution (default 1000)
	Window     int      `yaml:"window"`    // newest values compared with it (default 500)
	Bins       int      `yaml:"bins"`      // quantile bins of the reference (default 10)
	Threshold  float64  `yaml:"threshold"` // Jensen–Shannon distance of a detection, (0, 1] (default 0.9)
	// Challenger starts a fresh challenger at each detection, as a
	// concept-drift detection does: it learns only what follows and is
	// served once it beats the champion and the live model. It needs a
	// concept-drift detector (Drift.Detector), whose promotion it uses.
	Challenger bool `yaml:"challenger"`
}

// WatchedCategories returns the categorical features feature-drift
// detection watches, sorted: FeatureDrift.Categories, or the schema's
// categories.
func (c *ModelConfig) WatchedCategories() []string {
	if c.FeatureDrift == nil {
		return nil
	}
	names := slices.Clone(c.FeatureDrift.Categories)
	if len(names) == 0 && len(c.FeatureDrift.Features) == 0 && c.Schema != nil {
		for name, f := range c.Schema.Features {
			if f.Kind == features.KindCategory {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// WatchedFeatures returns the numeric features feature-drift detection
// watches, sorted: FeatureDrift.Features, or the schema's numbers.
func (c *ModelConfig) WatchedFeatures() []string {
	if c.FeatureDrift == nil {
		return nil
	}
	names := slices.Clone(c.FeatureDrift.Features)
	if len(names) == 0 && len(c.FeatureDrift.Categories) == 0 && c.Schema != nil {
		for name, f := range c.Schema.Features {
			if f.Kind == features.KindNumber {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// maxWatchedFeatures bounds the features feature-drift detection watches
// per model (each is a label value of its metrics).
const maxWatchedFeatures = 256

// Defaults.
const (
	DefaultTopic         = "events"
	DefaultLR            = 0.01
	DefaultClipGradient  = 1e12
	DefaultEpsilon       = 0.1
	DefaultMaxClasses    = 64
	DefaultRollingWindow = 1000
	// DefaultMaxPendingInMemory is the default of
	// ModelConfig.MaxPendingInMemory.
	DefaultMaxPendingInMemory = 1_000_000
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
	if c.Loss == "" {
		c.Loss = map[Task]Loss{Binary: LossLog, Regression: LossSquared, Multiclass: LossSoftmax}[c.Task]
	}
	if c.Epsilon == 0 {
		c.Epsilon = DefaultEpsilon
	}
	if c.MaxClasses == 0 {
		c.MaxClasses = DefaultMaxClasses
	}
	c.Features.EnsureDefaults()
	o := &c.Optimizer
	if o.Kind == "" {
		o.Kind = SGD
	}
	if o.LR == 0 {
		o.LR = map[OptimizerKind]float64{SGD: DefaultLR, AdaGrad: 0.1, Adam: 0.1, FTRL: 0.05}[o.Kind]
	}
	if o.Schedule == "" {
		o.Schedule = Constant
	}
	if o.PowerT == 0 {
		o.PowerT = 0.5
	}
	if o.Beta1 == 0 {
		o.Beta1 = 0.9
	}
	if o.Beta2 == 0 {
		o.Beta2 = 0.999
	}
	if o.FTRLBeta == 0 {
		o.FTRLBeta = 1
	}
	if o.InterceptLR == 0 {
		o.InterceptLR = DefaultLR
	}
	if o.ClipGradient == 0 {
		o.ClipGradient = DefaultClipGradient
	}
	c.Drift.ensureDefaults()
	if c.LabelTTL == 0 {
		c.LabelTTL = 24 * time.Hour
	}
}

var lossesOf = map[Task][]Loss{
	Binary:     {LossLog, LossHinge},
	Regression: {LossSquared, LossAbsolute, LossHuber, LossEpsilonInsensitive},
	Multiclass: {LossSoftmax},
}

// Validate reports the first invalid setting, naming the model.
func (c *ModelConfig) Validate() error {
	if !modelName.MatchString(c.Name) {
		return fmt.Errorf("learner: model name %q must be 1-64 letters, digits, '_', '-' or '.'", c.Name)
	}
	fail := func(format string, args ...any) error {
		return fmt.Errorf("learner: model %s: %s", c.Name, fmt.Sprintf(format, args...))
	}
	if err := c.Schema.Validate(); err != nil {
		return fail("%v", err)
	}
	if c.MaxPendingInMemory < -1 {
		return fail("max_pending_in_memory %d: want a positive bound, 0 for the default (%d) or -1 for none", c.MaxPendingInMemory, DefaultMaxPendingInMemory)
	}
	if fd := c.FeatureDrift; fd != nil {
		if len(c.WatchedFeatures())+len(c.WatchedCategories()) == 0 {
			return fail("feature_drift watches no feature: list its features or categories, or declare them in the schema")
		}
		if fd.Challenger && c.Drift.Detector == "" {
			return fail("feature_drift challenger needs a concept-drift detector (drift: {detector: ...}): its champion/challenger promotion serves the challenger")
		}
		if n := len(c.WatchedFeatures()) + len(c.WatchedCategories()); n > maxWatchedFeatures {
			return fail("feature_drift watches %d features, the limit is %d", n, maxWatchedFeatures)
		}
		sc := drift.ShiftConfig{Reference: fd.Reference, Window: fd.Window, Bins: fd.Bins, Threshold: fd.Threshold}
		sc.EnsureDefaults()
		if err := sc.Validate(); err != nil {
			return fail("feature_drift: %v", err)
		}
	}
	losses, ok := lossesOf[c.Task]
	if !ok && c.Task != "" {
		return fail("unknown task %q (want binary, regression or multiclass)", c.Task)
	}
	if c.Loss != "" && c.Task != "" && !slices.Contains(losses, c.Loss) {
		return fail("loss %q does not fit task %s (want one of %v)", c.Loss, c.Task, losses)
	}
	if err := c.Features.Validate(); err != nil {
		return fail("%v", err)
	}
	o := c.Optimizer
	switch o.Kind {
	case "", SGD, AdaGrad, Adam, FTRL:
	default:
		return fail("unknown optimizer %q (want sgd, adagrad, adam or ftrl)", o.Kind)
	}
	switch o.Schedule {
	case "", Constant, InvScaling:
	default:
		return fail("unknown schedule %q (want constant or invscaling)", o.Schedule)
	}
	for _, v := range []struct {
		name string
		x    float64
	}{{"lr", o.LR}, {"intercept_lr", o.InterceptLR}, {"clip_gradient", o.ClipGradient}, {"l1", o.L1}, {"l2", o.L2},
		{"power_t", o.PowerT}, {"ftrl_beta", o.FTRLBeta}, {"epsilon", c.Epsilon}} {
		if v.x < 0 || math.IsNaN(v.x) || math.IsInf(v.x, 0) {
			return fail("%s = %v must be a finite number ≥ 0", v.name, v.x)
		}
	}
	if o.Beta1 < 0 || o.Beta1 >= 1 || o.Beta2 < 0 || o.Beta2 >= 1 {
		return fail("beta1 and beta2 must be in [0, 1)")
	}
	if c.MaxClasses < 0 || c.MaxClasses > 1024 {
		return fail("max_classes %d out of range [2, 1024]", c.MaxClasses)
	}
	if err := c.Drift.validate(); err != nil {
		return fmt.Errorf("learner: model %s: %w", c.Name, err) // the drift package's errors say "drift:" themselves
	}
	return nil
}
