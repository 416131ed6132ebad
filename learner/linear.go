package learner

import (
	"math"

	"gonum.org/v1/gonum/floats"

	"github.com/eddyhq/eddy/features"
)

// linear is the numeric core of a model: one weight vector per output (one
// output for Binary and Regression, one per class for Multiclass), with the
// per-coordinate state of its optimizer. It learns from transformed
// (features.Vector) examples and allocates nothing per example once its
// vectors have grown to the indices it sees.
type linear struct {
	task    Task
	loss    Loss
	epsilon float64
	opt     OptimizerConfig
	dim     int // largest index + 1 a vector may use

	out []output // one per output
	t   uint64   // learning steps taken (River's n_iterations)
	u   float64  // SGD with L1: total L1 penalty each weight may have received

	// scratch, per example
	raw   []float64
	probs []float64
	grads []float64
}

// output is the weights of one output and its optimizer state, all indexed
// like features.Vector. The state slices are nil for optimizers without
// that state.
type output struct {
	w         []float64
	intercept float64
	s1, s2    []float64 // AdaGrad: s1 = Σg²; Adam: s1 = m, s2 = v; FTRL: s1 = z, s2 = n; SGD with L1: s1 = q
}

func newLinear(cfg ModelConfig, dim int) *linear {
	l := &linear{task: cfg.Task, loss: cfg.Loss, epsilon: cfg.Epsilon, opt: cfg.Optimizer, dim: dim}
	if cfg.Task != Multiclass {
		l.addOutput()
	}
	return l
}

func (l *linear) addOutput() {
	l.out = append(l.out, output{})
	l.raw = append(l.raw, 0)
	l.probs = append(l.probs, 0)
	l.grads = append(l.grads, 0)
}

// usesS1 and usesS2 say which per-coordinate state the optimizer keeps.
func (l *linear) usesS1() bool {
	return l.opt.Kind != SGD || l.opt.L1 > 0
}

func (l *linear) usesS2() bool { return l.opt.Kind == Adam || l.opt.Kind == FTRL }

// grow makes every vector of o cover every index of x.
func (l *linear) grow(o *output, x *features.Vector) {
	need := 0
	for _, idx := range x.Index {
		need = max(need, idx+1)
	}
	if need <= len(o.w) {
		return
	}
	// Amortise: grow geometrically, but never beyond the index space.
	size := min(max(need, 2*len(o.w)), max(l.dim, need))
	o.w = growTo(o.w, size)
	if l.usesS1() {
		o.s1 = growTo(o.s1, size)
	}
	if l.usesS2() {
		o.s2 = growTo(o.s2, size)
	}
}

func growTo(v []float64, n int) []float64 {
	if n <= len(v) {
		return v
	}
	return append(v, make([]float64, n-len(v))...)
}

// dot returns o's raw prediction for x.
func (o *output) dot(x *features.Vector) float64 {
	sum := o.intercept
	w := o.w
	for i, idx := range x.Index {
		if idx < len(w) {
			sum += w[idx] * x.Value[i]
		}
	}
	return sum
}

// predict returns the model's score for x: the probability of 1 (Binary),
// the value (Regression) or the probability of the most likely class
// (Multiclass, whose output index is returned too; -1 while no class is
// known). It uses l's scratch: owner goroutine only.
func (l *linear) predict(x *features.Vector) (score float64, class int) {
	return l.scores(x, l.raw, l.probs)
}

// softmax writes the softmax of raw into dst, stably.
func softmax(raw, dst []float64) {
	lse := floats.LogSumExp(raw)
	for i, r := range raw {
		dst[i] = math.Exp(r - lse)
	}
}

// learn takes one optimizer step towards label y (for Multiclass, the index
// of the class) on x. It refuses a step that would make any weight or
// intercept non-finite, leaving everything unchanged, and reports so.
func (l *linear) learn(x *features.Vector, y float64) bool {
	for k := range l.out {
		l.grow(&l.out[k], x)
		l.raw[k] = l.out[k].dot(x)
	}
	l.gradients(y)
	lr := l.rate()
	if !l.stepFinite(x, lr) {
		return false
	}
	l.t++
	if l.opt.Kind == SGD && l.opt.L1 > 0 {
		l.u += lr * l.opt.L1
	}
	for k := range l.out {
		o := &l.out[k]
		g := l.grads[k]
		o.intercept -= l.opt.InterceptLR * g
		switch l.opt.Kind {
		case SGD:
			l.stepSGD(o, x, g, lr)
		case AdaGrad:
			l.stepAdaGrad(o, x, g)
		case Adam:
			l.stepAdam(o, x, g)
		case FTRL:
			l.stepFTRL(o, x, g)
		}
	}
	return true
}

// gradients fills l.grads with the clipped loss gradient of each output with
// respect to its raw prediction (in l.raw).
func (l *linear) gradients(y float64) {
	clip := l.opt.ClipGradient
	if l.task == Multiclass {
		softmax(l.raw, l.probs)
		for k, p := range l.probs {
			g := p
			if k == int(y) {
				g -= 1
			}
			l.grads[k] = min(max(g, -clip), clip)
		}
		return
	}
	g := lossGradient(l.loss, l.epsilon, y, l.raw[0])
	l.grads[0] = min(max(g, -clip), clip)
}

// rate is the learning rate of this step for SGD (and the base rate of the
// others).
func (l *linear) rate() float64 {
	if l.opt.Kind == SGD && l.opt.Schedule == InvScaling {
		return l.opt.LR / math.Pow(float64(l.t+1), l.opt.PowerT)
	}
	return l.opt.LR
}

// stepFinite checks, without changing anything, that the step is finite.
// The checks are conservative bounds of each optimizer's step, cheap enough
// to run on every example.
func (l *linear) stepFinite(x *features.Vector, lr float64) bool {
	for k := range l.out {
		o := &l.out[k]
		g := l.grads[k]
		if !isFinite(g) || !isFinite(o.intercept-l.opt.InterceptLR*g) {
			return false
		}
		if l.opt.Kind != SGD {
			continue // AdaGrad, Adam and FTRL normalise their steps
		}
		for i, idx := range x.Index {
			gi := g*x.Value[i] + 2*l.opt.L2*o.w[idx]
			if !isFinite(o.w[idx] - lr*gi) {
				return false
			}
		}
	}
	return true
}

func (l *linear) stepSGD(o *output, x *features.Vector, g, lr float64) {
	l2 := 2 * l.opt.L2
	w := o.w
	for i, idx := range x.Index {
		w[idx] -= lr * (g*x.Value[i] + l2*w[idx])
	}
	if l.opt.L1 > 0 {
		l.applyCumulativePenalty(o, x)
	}
}

// applyCumulativePenalty is the L1 method of Tsuruoka, Tsujii and Ananiadou
// (2009): each touched weight is pulled towards zero by the penalty it has
// not yet received, and clipped at zero, so weights become exactly 0.
func (l *linear) applyCumulativePenalty(o *output, x *features.Vector) {
	for _, idx := range x.Index {
		w := o.w[idx]
		switch {
		case w > 0:
			o.w[idx] = math.Max(0, w-(l.u+o.s1[idx]))
		case w < 0:
			o.w[idx] = math.Min(0, w+(l.u-o.s1[idx]))
		}
		o.s1[idx] += o.w[idx] - w
	}
}

func (l *linear) stepAdaGrad(o *output, x *features.Vector, g float64) {
	const eps = 1e-8
	for i, idx := range x.Index {
		gi := g*x.Value[i] + 2*l.opt.L2*o.w[idx]
		o.s1[idx] += gi * gi
		step := l.opt.LR / math.Sqrt(o.s1[idx]+eps)
		o.w[idx] = truncate(o.w[idx]-step*gi, step*l.opt.L1)
	}
}

func (l *linear) stepAdam(o *output, x *features.Vector, g float64) {
	const eps = 1e-8
	b1, b2 := l.opt.Beta1, l.opt.Beta2
	n := float64(l.t) // already counts this step
	lr := l.opt.LR * math.Sqrt(1-math.Pow(b2, n)) / (1 - math.Pow(b1, n))
	for i, idx := range x.Index {
		gi := g*x.Value[i] + 2*l.opt.L2*o.w[idx]
		o.s1[idx] = b1*o.s1[idx] + (1-b1)*gi
		o.s2[idx] = b2*o.s2[idx] + (1-b2)*gi*gi
		step := lr / (math.Sqrt(o.s2[idx]) + eps)
		o.w[idx] = truncate(o.w[idx]-step*o.s1[idx], step*l.opt.L1)
	}
}

// stepFTRL is FTRL-Proximal (McMahan et al. 2013, algorithm 1) per
// coordinate: z and n accumulate, and the weight is recomputed in closed
// form, exactly 0 while |z| ≤ L1.
func (l *linear) stepFTRL(o *output, x *features.Vector, g float64) {
	alpha, beta := l.opt.LR, l.opt.FTRLBeta
	for i, idx := range x.Index {
		gi := g * x.Value[i]
		n := o.s2[idx]
		sigma := (math.Sqrt(n+gi*gi) - math.Sqrt(n)) / alpha
		o.s1[idx] += gi - sigma*o.w[idx]
		o.s2[idx] = n + gi*gi
		z := o.s1[idx]
		if math.Abs(z) <= l.opt.L1 {
			o.w[idx] = 0
			continue
		}
		o.w[idx] = -(z - math.Copysign(l.opt.L1, z)) / ((beta+math.Sqrt(o.s2[idx]))/alpha + 2*l.opt.L2)
	}
}

// truncate applies an L1 proximal step of size t: shrink w towards 0 by t,
// stopping exactly at 0.
func truncate(w, t float64) float64 {
	switch {
	case t == 0:
		return w
	case w > t:
		return w - t
	case w < -t:
		return w + t
	}
	return 0
}

// lossGradient is the derivative of the loss with respect to the raw
// prediction, with River's definitions.
func lossGradient(loss Loss, epsilon, y, raw float64) float64 {
	switch loss {
	case LossSquared:
		return 2 * (raw - y)
	case LossAbsolute:
		if raw > y {
			return 1
		}
		return -1
	case LossHuber:
		r := raw - y
		return min(max(r, -epsilon), epsilon)
	case LossEpsilonInsensitive:
		switch r := raw - y; {
		case r > epsilon:
			return 1
		case r < -epsilon:
			return -1
		}
		return 0
	case LossHinge:
		sign := 2*y - 1
		if raw*sign < 1 {
			return -sign
		}
		return 0
	}
	// Log loss on labels mapped to ±1, the margin clamped at ±18.
	sign := 2*y - 1
	z := raw * sign
	switch {
	case z > 18:
		return math.Exp(-z) * -sign
	case z < -18:
		return -sign
	}
	return -sign / (math.Exp(z) + 1)
}

// sigmoid is River's: saturated beyond ±30.
func sigmoid(x float64) float64 {
	switch {
	case x < -30:
		return 0
	case x > 30:
		return 1
	}
	return 1 / (1 + math.Exp(-x))
}

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// clone returns a deep copy of the weights and intercepts only: what a
// snapshot needs to predict.
func (l *linear) clonePredictor() *linear {
	c := &linear{task: l.task, loss: l.loss, epsilon: l.epsilon, opt: l.opt, dim: l.dim, t: l.t}
	for _, o := range l.out {
		c.out = append(c.out, output{w: append([]float64(nil), o.w...), intercept: o.intercept})
	}
	return c
}

// scores computes the score of x without touching l's scratch, for
// concurrent readers of an immutable snapshot: raw and probs are the
// caller's, of length len(l.out).
func (l *linear) scores(x *features.Vector, raw, probs []float64) (score float64, class int) {
	for k := range l.out {
		raw[k] = l.out[k].dot(x)
	}
	switch l.task {
	case Regression:
		return raw[0], 0
	case Binary:
		p := sigmoid(raw[0])
		if p > 0.5 {
			return p, 1
		}
		return p, 0
	}
	if len(l.out) == 0 {
		return 0, -1
	}
	softmax(raw, probs)
	class = floats.MaxIdx(probs)
	return probs[class], class
}
