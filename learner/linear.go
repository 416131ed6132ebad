package learner

import (
	"math"

	"gonum.org/v1/gonum/floats"

	"github.com/eddyhq/eddy/features"
)

// linear is the numeric core of a model: one weight vector per output (one
// output for Binary and Regression, one per class for Multiclass), with the
// per-coordinate state of its optimizer interleaved beside each weight so a
// sparse update touches one cache line per feature. It learns from
// transformed (features.Vector) examples and allocates nothing per example
// once its vectors have grown to the indices it sees.
type linear struct {
	task    Task
	loss    Loss
	epsilon float64
	opt     OptimizerConfig
	dim     int // largest index + 1 a vector may use
	stride  int // floats per coordinate: weight, then optimizer state

	// The settings above as small integers: the hot path switches on these
	// rather than comparing strings.
	taskCode, lossCode, kindCode uint8
	invScaling                   bool

	out []output // one per output
	t   uint64   // learning steps taken (River's n_iterations)
	u   float64  // SGD with L1: total L1 penalty each weight may have received

	beta1T, beta2T float64 // Adam: beta1^t and beta2^t, kept instead of calling Pow per step
	powersValid    bool    // beta1T and beta2T match t

	// scratch, per example
	raw, probs, grads []float64
	saved             []float64 // coordinates before the step, to undo it
}

// output is the weights of one output and its optimizer state, interleaved:
// p[i*stride] is the weight of index i and p[i*stride+1], p[i*stride+2] its
// state: AdaGrad Σg²; Adam m, v; FTRL z, n; SGD with L1 the penalty q
// received so far.
type output struct {
	p         []float64
	intercept float64
}

// Codes of tasks, losses and optimizers on the hot path.
const (
	taskBinary uint8 = iota
	taskRegression
	taskMulticlass
)

const (
	lossLog uint8 = iota
	lossHinge
	lossSquared
	lossAbsolute
	lossHuber
	lossEpsInsensitive
	lossSoftmax
)

const (
	kindSGD uint8 = iota
	kindAdaGrad
	kindAdam
	kindFTRL
)

func newLinear(cfg ModelConfig, dim int) *linear {
	l := &linear{task: cfg.Task, loss: cfg.Loss, epsilon: cfg.Epsilon, opt: cfg.Optimizer, dim: dim, stride: strideOf(cfg.Optimizer)}
	l.setCodes()
	if cfg.Task != Multiclass {
		l.addOutput()
	}
	return l
}

func (l *linear) setCodes() {
	l.taskCode = map[Task]uint8{Binary: taskBinary, Regression: taskRegression, Multiclass: taskMulticlass}[l.task]
	l.lossCode = map[Loss]uint8{LossLog: lossLog, LossHinge: lossHinge, LossSquared: lossSquared, LossAbsolute: lossAbsolute,
		LossHuber: lossHuber, LossEpsilonInsensitive: lossEpsInsensitive, LossSoftmax: lossSoftmax}[l.loss]
	l.kindCode = map[OptimizerKind]uint8{SGD: kindSGD, AdaGrad: kindAdaGrad, Adam: kindAdam, FTRL: kindFTRL}[l.opt.Kind]
	l.invScaling = l.opt.Schedule == InvScaling
}

func strideOf(o OptimizerConfig) int {
	switch {
	case o.Kind == Adam || o.Kind == FTRL:
		return 3
	case o.Kind == AdaGrad || o.L1 > 0:
		return 2
	}
	return 1
}

func (l *linear) addOutput() {
	l.out = append(l.out, output{})
	l.raw = append(l.raw, 0)
	l.probs = append(l.probs, 0)
	l.grads = append(l.grads, 0)
}

// removeLastOutput undoes addOutput, for a refused step of a class first
// seen in it (learn has restored the other outputs).
func (l *linear) removeLastOutput() {
	n := len(l.out) - 1
	l.out[n] = output{} // drop its weights
	l.out, l.raw, l.probs, l.grads = l.out[:n], l.raw[:n], l.probs[:n], l.grads[:n]
}

// grow makes o cover every index below span.
func (l *linear) grow(o *output, span int) {
	if span*l.stride <= len(o.p) {
		return
	}
	// Amortise: grow geometrically, but never beyond the index space; past
	// half of it, to all of it at once (a hashed category lands anywhere in
	// the hashed space, so the first grows nearly all the way: a second
	// copy would leave the first as garbage as large as the weights).
	size := min(max(span, 2*len(o.p)/l.stride), max(l.dim, span))
	if size > l.dim/2 {
		size = max(l.dim, span)
	}
	o.p = growTo(o.p, size*l.stride)
}

func growTo(v []float64, n int) []float64 {
	if n <= len(v) {
		return v
	}
	return append(v, make([]float64, n-len(v))...)
}

// dot returns o's raw prediction for x.
func (l *linear) dot(o *output, x *features.Vector) float64 {
	sum := o.intercept
	p, stride := o.p, l.stride
	if x.Span()*stride <= len(p) {
		for i, idx := range x.Index {
			sum += p[idx*stride] * x.Value[i]
		}
		return sum
	}
	for i, idx := range x.Index {
		if j := idx * stride; j < len(p) {
			sum += p[j] * x.Value[i]
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
// of the class) on x. It refuses a step that would make any weight, state or
// intercept non-finite, leaving everything unchanged, and reports so.
func (l *linear) learn(x *features.Vector, y float64) bool {
	if l.kindCode == kindSGD && l.stride == 1 && len(l.out) == 1 && !l.invScaling {
		return l.learnPlainSGD(x, y)
	}
	for k := range l.out {
		l.grow(&l.out[k], x.Span())
		l.raw[k] = l.dot(&l.out[k], x)
	}
	l.gradients(y)
	for k := range l.out {
		g := l.grads[k]
		if !isFinite(g) || !isFinite(l.out[k].intercept-l.opt.InterceptLR*g) {
			return false
		}
	}
	lr := l.rate()
	l.t++
	l.adamPowers()
	u := l.u
	if l.kindCode == kindSGD && l.opt.L1 > 0 {
		l.u += lr * l.opt.L1
	}
	l.saved = l.saved[:0]
	check := 0.0 // Inf or NaN anywhere in the step makes this non-finite
	for k := range l.out {
		o := &l.out[k]
		l.save(o, x)
		g := l.grads[k]
		switch l.kindCode {
		case kindSGD:
			check += l.stepSGD(o, x, g, lr)
		case kindAdaGrad:
			check += l.stepAdaGrad(o, x, g)
		case kindAdam:
			check += l.stepAdam(o, x, g)
		case kindFTRL:
			check += l.stepFTRL(o, x, g)
		}
	}
	if !isFinite(check) {
		l.restore(x)
		l.t--
		l.u = u
		l.powersValid = false
		return false
	}
	for k := range l.out {
		l.out[k].intercept -= l.opt.InterceptLR * l.grads[k]
	}
	return true
}

// learnPlainSGD is learn for the most common model, one output with plain
// constant-rate SGD, in one function: the same arithmetic, fewer calls.
func (l *linear) learnPlainSGD(x *features.Vector, y float64) bool {
	o := &l.out[0]
	l.grow(o, x.Span())
	p := o.p
	raw := o.intercept
	for i, idx := range x.Index {
		raw += p[idx] * x.Value[i]
	}
	l.raw[0] = raw
	clip := l.opt.ClipGradient
	g := min(max(lossGradient(l.lossCode, l.epsilon, y, raw), -clip), clip)
	l.grads[0] = g
	intercept := o.intercept - l.opt.InterceptLR*g
	if !isFinite(intercept) {
		return false
	}
	lr, l2 := l.opt.LR, 2*l.opt.L2
	saved := l.saved[:0]
	check := 0.0
	for i, idx := range x.Index {
		w := p[idx]
		saved = append(saved, w)
		w -= lr * (g*x.Value[i] + l2*w)
		p[idx] = w
		check += w
	}
	l.saved = saved
	if !isFinite(check) {
		l.restore(x)
		return false
	}
	l.t++
	o.intercept = intercept
	return true
}

// save appends the coordinates x touches in o to l.saved.
func (l *linear) save(o *output, x *features.Vector) {
	saved, p := l.saved, o.p
	switch l.stride {
	case 1:
		for _, idx := range x.Index {
			saved = append(saved, p[idx])
		}
	case 2:
		for _, idx := range x.Index {
			saved = append(saved, p[2*idx], p[2*idx+1])
		}
	default:
		for _, idx := range x.Index {
			saved = append(saved, p[3*idx], p[3*idx+1], p[3*idx+2])
		}
	}
	l.saved = saved
}

// restore undoes the step from l.saved, in reverse so that an index that
// appears twice ends with its oldest value.
func (l *linear) restore(x *features.Vector) {
	pos := len(l.saved)
	for k := len(l.out) - 1; k >= 0; k-- {
		o := &l.out[k]
		for i := len(x.Index) - 1; i >= 0; i-- {
			pos -= l.stride
			j := x.Index[i] * l.stride
			copy(o.p[j:j+l.stride], l.saved[pos:pos+l.stride])
		}
	}
}

// gradients fills l.grads with the clipped loss gradient of each output with
// respect to its raw prediction (in l.raw).
func (l *linear) gradients(y float64) {
	clip := l.opt.ClipGradient
	if l.taskCode == taskMulticlass {
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
	g := lossGradient(l.lossCode, l.epsilon, y, l.raw[0])
	l.grads[0] = min(max(g, -clip), clip)
}

// adamPowers brings beta1T and beta2T to beta^t after t was incremented: by
// one multiplication per step, or by Pow after decoding or a refused step.
func (l *linear) adamPowers() {
	if l.kindCode != kindAdam {
		return
	}
	if !l.powersValid {
		l.beta1T, l.beta2T = math.Pow(l.opt.Beta1, float64(l.t)), math.Pow(l.opt.Beta2, float64(l.t))
		l.powersValid = true
		return
	}
	l.beta1T *= l.opt.Beta1
	l.beta2T *= l.opt.Beta2
}

// rate is the learning rate of this step for SGD (and the base rate of the
// others).
func (l *linear) rate() float64 {
	if l.invScaling && l.kindCode == kindSGD {
		return l.opt.LR / math.Pow(float64(l.t+1), l.opt.PowerT)
	}
	return l.opt.LR
}

// The step functions update every coordinate x touches and return the sum
// of the new values (weights and state), which is finite only if all are.

func (l *linear) stepSGD(o *output, x *features.Vector, g, lr float64) float64 {
	l2 := 2 * l.opt.L2
	p, stride, check := o.p, l.stride, 0.0
	for i, idx := range x.Index {
		j := idx * stride
		w := p[j] - lr*(g*x.Value[i]+l2*p[j])
		p[j] = w
		check += w
	}
	if l.opt.L1 > 0 {
		check += l.applyCumulativePenalty(o, x)
	}
	return check
}

// applyCumulativePenalty is the L1 method of Tsuruoka, Tsujii and Ananiadou
// (2009): each touched weight is pulled towards zero by the penalty it has
// not yet received, and clipped at zero, so weights become exactly 0.
func (l *linear) applyCumulativePenalty(o *output, x *features.Vector) float64 {
	check := 0.0
	for _, idx := range x.Index {
		j := idx * l.stride
		w, q := o.p[j], o.p[j+1]
		switch {
		case w > 0:
			o.p[j] = math.Max(0, w-(l.u+q))
		case w < 0:
			o.p[j] = math.Min(0, w+(l.u-q))
		}
		o.p[j+1] = q + o.p[j] - w
		check += o.p[j+1]
	}
	return check
}

func (l *linear) stepAdaGrad(o *output, x *features.Vector, g float64) float64 {
	const eps = 1e-8
	lr, l1, l2 := l.opt.LR, l.opt.L1, 2*l.opt.L2
	p, check := o.p, 0.0
	for i, idx := range x.Index {
		j := idx * 2
		gi := g*x.Value[i] + l2*p[j]
		g2 := p[j+1] + gi*gi
		step := lr / math.Sqrt(g2+eps)
		w := truncate(p[j]-step*gi, step*l1)
		p[j], p[j+1] = w, g2
		check += w + g2
	}
	return check
}

func (l *linear) stepAdam(o *output, x *features.Vector, g float64) float64 {
	const eps = 1e-8
	b1, b2, l1, l2 := l.opt.Beta1, l.opt.Beta2, l.opt.L1, 2*l.opt.L2
	lr := l.opt.LR * math.Sqrt(1-l.beta2T) / (1 - l.beta1T) // bias corrections for step t
	p, check := o.p, 0.0
	for i, idx := range x.Index {
		j := idx * 3
		gi := g*x.Value[i] + l2*p[j]
		m := b1*p[j+1] + (1-b1)*gi
		v := b2*p[j+2] + (1-b2)*gi*gi
		step := lr / (math.Sqrt(v) + eps)
		w := truncate(p[j]-step*m, step*l1)
		p[j], p[j+1], p[j+2] = w, m, v
		check += w + m + v
	}
	return check
}

// stepFTRL is FTRL-Proximal (McMahan et al. 2013, algorithm 1) per
// coordinate: z and n accumulate, and the weight is recomputed in closed
// form, exactly 0 while |z| ≤ L1.
func (l *linear) stepFTRL(o *output, x *features.Vector, g float64) float64 {
	alpha, beta, l1, l2 := l.opt.LR, l.opt.FTRLBeta, l.opt.L1, 2*l.opt.L2
	p, check := o.p, 0.0
	for i, idx := range x.Index {
		j := idx * 3
		gi := g * x.Value[i]
		n := p[j+2]
		nNew := n + gi*gi
		sqrtNew := math.Sqrt(nNew)
		sigma := (sqrtNew - math.Sqrt(n)) / alpha
		z := p[j+1] + gi - sigma*p[j]
		w := 0.0
		if math.Abs(z) > l1 {
			w = -(z - math.Copysign(l1, z)) / ((beta+sqrtNew)/alpha + l2)
		}
		p[j], p[j+1], p[j+2] = w, z, nNew
		check += w + z + nNew
	}
	return check
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
func lossGradient(loss uint8, epsilon, y, raw float64) float64 {
	switch loss {
	case lossSquared:
		return 2 * (raw - y)
	case lossAbsolute:
		if raw > y {
			return 1
		}
		return -1
	case lossHuber:
		r := raw - y
		return min(max(r, -epsilon), epsilon)
	case lossEpsInsensitive:
		switch r := raw - y; {
		case r > epsilon:
			return 1
		case r < -epsilon:
			return -1
		}
		return 0
	case lossHinge:
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

// clonePredictor returns a copy with the weights and intercepts only (stride
// 1): what a snapshot needs to predict.
func (l *linear) clonePredictor() *linear {
	c := &linear{task: l.task, loss: l.loss, epsilon: l.epsilon, opt: l.opt, dim: l.dim, stride: 1, t: l.t}
	c.setCodes()
	for k := range l.out {
		o := &l.out[k]
		w := make([]float64, len(o.p)/l.stride)
		for i := range w {
			w[i] = o.p[i*l.stride]
		}
		c.out = append(c.out, output{p: w, intercept: o.intercept})
	}
	return c
}

// scores computes the score of x without touching l's scratch, for
// concurrent readers of an immutable snapshot: raw and probs are the
// caller's, of length len(l.out).
func (l *linear) scores(x *features.Vector, raw, probs []float64) (score float64, class int) {
	for k := range l.out {
		raw[k] = l.dot(&l.out[k], x)
	}
	switch l.taskCode {
	case taskRegression:
		return raw[0], 0
	case taskBinary:
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
