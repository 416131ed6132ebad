package drift

import (
	"math"

	"github.com/eddyhq/eddy/features/codec"
)

// ADWINConfig configures an ADWIN detector. Its zero value means River's
// defaults; a zero field takes the default of that field.
type ADWINConfig struct {
	// Delta is the confidence value δ of the cut test, in (0, 1); smaller
	// values detect less. The default is 0.002.
	Delta float64
	// Clock is how many values apart the window is checked for a cut. The
	// default is 32.
	Clock int
	// MaxBuckets is how many buckets of each size are kept before two are
	// merged, at most 1024. The default is 5.
	MaxBuckets int
	// MinWindowLength is the fewest values either sub-window of a cut may
	// hold. The default is 5.
	MinWindowLength int
	// GracePeriod is how many values the window must exceed before it is
	// checked at all. The default is 10.
	GracePeriod int
}

// River's defaults for ADWIN.
const (
	defaultADWINDelta           = 0.002
	defaultADWINClock           = 32
	defaultADWINMaxBuckets      = 5
	defaultADWINMinWindowLength = 5
	defaultADWINGracePeriod     = 10
	// maxADWINMaxBuckets bounds the memory a (possibly corrupt) encoding can
	// make Decode allocate.
	maxADWINMaxBuckets = 1024
	// maxADWINRows bounds the bucket rows of a decoded window: 2^53 values,
	// beyond which a float64 no longer counts them exactly.
	maxADWINRows = 53
	// preallocatedADWINRows rows are allocated up front, enough for a window
	// of MaxBuckets·2^24 values, so that Update does not allocate until the
	// window grows beyond that.
	preallocatedADWINRows = 25
)

// EnsureDefaults sets the zero fields of c to River's defaults.
func (c *ADWINConfig) EnsureDefaults() {
	if c.Delta == 0 {
		c.Delta = defaultADWINDelta
	}
	if c.Clock == 0 {
		c.Clock = defaultADWINClock
	}
	if c.MaxBuckets == 0 {
		c.MaxBuckets = defaultADWINMaxBuckets
	}
	if c.MinWindowLength == 0 {
		c.MinWindowLength = defaultADWINMinWindowLength
	}
	if c.GracePeriod == 0 {
		c.GracePeriod = defaultADWINGracePeriod
	}
}

// Validate reports whether c, with its zero fields taken as defaults, is a
// usable configuration. The error wraps ErrInvalidConfig.
func (c ADWINConfig) Validate() error {
	c.EnsureDefaults()
	switch {
	case !(c.Delta > 0 && c.Delta < 1):
		return invalid("ADWIN delta must be in (0, 1), got %g", c.Delta)
	case c.Clock < 1:
		return invalid("ADWIN clock must be at least 1, got %d", c.Clock)
	case c.MaxBuckets < 1 || c.MaxBuckets > maxADWINMaxBuckets:
		return invalid("ADWIN max_buckets must be in [1, %d], got %d", maxADWINMaxBuckets, c.MaxBuckets)
	case c.MinWindowLength < 1:
		return invalid("ADWIN min_window_length must be at least 1, got %d", c.MinWindowLength)
	case c.GracePeriod < 1:
		return invalid("ADWIN grace_period must be at least 1, got %d", c.GracePeriod)
	}
	return nil
}

// ADWIN is River's ADWIN (adaptive windowing, Bifet & Gavaldà 2007): it keeps
// a window of recent values, summarised in exponential-histogram buckets, and
// drops its oldest bucket when the means of an older and a newer part of the
// window differ by more than a bound derived from Delta. Its detections match
// River's drift.ADWIN exactly, including its particulars: the window is
// checked every Clock values only, the bound uses the variance of the whole
// window, and after a detection the next Update starts from an empty window.
//
// An ADWIN is not safe for concurrent use.
type ADWIN struct {
	cfg ADWINConfig
	// stride is the room of a bucket row in totals and variances:
	// MaxBuckets+1, the extra slot holding the bucket that triggers a merge.
	stride int
	// Row r holds counts[r] buckets of 2^r values each, oldest first, at
	// totals and variances[r*stride:][:counts[r]]. A bucket stores the sum of
	// its values and the sum of their squared deviations from their mean.
	// Row 0 always exists.
	totals, variances []float64
	counts            []int
	// width, total and variance summarise the whole window: its length, sum
	// and sum of squared deviations. width is a float64, as in River, so the
	// arithmetic matches bit for bit.
	width, total, variance float64
	// tick counts values since the last check, modulo Clock: River checks
	// the window when its count of values since the reset is a multiple of
	// Clock, which is when tick wraps to 0 (without a division per value).
	tick  int
	drift bool
}

// NewADWIN returns an ADWIN configured by cfg (zero fields take River's
// defaults).
func NewADWIN(cfg ADWINConfig) (*ADWIN, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.EnsureDefaults()
	stride := cfg.MaxBuckets + 1
	a := &ADWIN{
		cfg:       cfg,
		stride:    stride,
		totals:    make([]float64, 0, preallocatedADWINRows*stride),
		variances: make([]float64, 0, preallocatedADWINRows*stride),
		counts:    make([]int, 0, preallocatedADWINRows),
	}
	a.Reset()
	return a, nil
}

// Config returns the configuration of a, defaults filled in.
func (a *ADWIN) Config() ADWINConfig { return a.cfg }

// Reset empties the window, keeping the configuration and the memory.
func (a *ADWIN) Reset() {
	a.counts = a.counts[:0]
	a.totals = a.totals[:0]
	a.variances = a.variances[:0]
	a.addRow()
	a.width, a.total, a.variance = 0, 0, 0
	a.tick = 0
	a.drift = false
}

// Drift reports whether the last accepted value was a detection.
func (a *ADWIN) Drift() bool { return a.drift }

// Width returns the number of values in the window.
func (a *ADWIN) Width() int { return int(a.width) }

// Estimation returns the mean of the window, or 0 when it is empty.
func (a *ADWIN) Estimation() float64 {
	if a.width == 0 {
		return 0
	}
	return a.total / a.width
}

// Variance returns the (population) variance of the window's values, or 0
// when it is empty. River's ADWIN.variance is the sum of squared deviations,
// Width times this.
func (a *ADWIN) Variance() float64 {
	if a.width == 0 {
		return 0
	}
	return a.variance / a.width
}

// Update adds x to the window and reports whether the window was cut, that
// is, whether drift was detected. After a detection the next Update first
// resets the detector, as River's does. NaN, ±Inf and values beyond MaxValue
// are ignored (Update returns false and changes nothing).
func (a *ADWIN) Update(x float64) bool {
	if !accepted(x) {
		return false
	}
	if a.drift {
		a.Reset()
	}
	a.insert(x)
	a.drift = a.detect()
	return a.drift
}

// bucketSize returns 2^row, the number of values of a bucket in the row.
func bucketSize(row int) float64 { return float64(uint64(1) << uint(row)) }

// addRow appends an empty bucket row, growing the storage only beyond the
// preallocated rows.
func (a *ADWIN) addRow() {
	n := len(a.totals)
	if n+a.stride > cap(a.totals) {
		a.totals = append(a.totals, make([]float64, a.stride)...)
		a.variances = append(a.variances, make([]float64, a.stride)...)
	} else {
		a.totals = a.totals[:n+a.stride]
		a.variances = a.variances[:n+a.stride]
	}
	a.counts = append(a.counts, 0)
}

// push appends a bucket to a row.
func (a *ADWIN) push(row int, total, variance float64) {
	i := row*a.stride + a.counts[row]
	a.totals[i] = total
	a.variances[i] = variance
	a.counts[row]++
}

// dropOldest removes the n oldest buckets of a row. Rows are short, so a
// plain loop beats calling memmove.
func (a *ADWIN) dropOldest(row, n int) {
	base := row * a.stride
	c := a.counts[row]
	totals := a.totals[base : base+c]
	variances := a.variances[base : base+c]
	for i := n; i < c; i++ {
		totals[i-n] = totals[i]
		variances[i-n] = variances[i]
	}
	a.counts[row] = c - n
}

// insert adds x to the window's statistics and to row 0, then merges
// buckets, as River's _insert_element and _compress_buckets.
func (a *ADWIN) insert(x float64) {
	a.push(0, x, 0)
	a.width++
	if a.width > 1 {
		d := x - a.total/(a.width-1)
		a.variance += (a.width - 1) * d * d / a.width
	}
	a.total += x
	for row := 0; a.counts[row] == a.cfg.MaxBuckets+1; row++ {
		if row+1 == len(a.counts) {
			a.addRow()
		}
		oldest := row * a.stride
		n := bucketSize(row)
		t0, t1 := a.totals[oldest], a.totals[oldest+1]
		// n is a power of two, so multiplying by 1/n rounds exactly as
		// River's division by n.
		inverse := 1 / n
		mu0, mu1 := t0*inverse, t1*inverse
		// River's n·n/(n+n) = n·0.5, grouped as River's; the conversion keeps
		// the compiler from fusing the last product into the sum.
		merged := a.variances[oldest] + a.variances[oldest+1] + float64(n*0.5*(mu0-mu1)*(mu0-mu1))
		a.push(row+1, t0+t1, merged)
		a.dropOldest(row, 2)
	}
}

// detect checks the window for cuts when the clock says so, cutting until
// none is left, and reports whether there was one.
func (a *ADWIN) detect() bool {
	a.tick++
	if a.tick < a.cfg.Clock {
		return false
	}
	a.tick = 0
	if a.width <= float64(a.cfg.GracePeriod) {
		return false
	}
	detected := false
	for a.width > 0 && a.cutOnce() {
		detected = true
	}
	return detected
}

// twoThirds is River's `2.0 / 3.0`.
const twoThirds = 2.0 / 3

// cutOnce scans the window for a cut point where the older part W0 and the
// newer part W1 differ significantly; at the first one it drops the oldest
// bucket and returns true. The scan follows River's _detect_change: every
// bucket from the oldest row to row 0, each row oldest first, stopping before
// the newest bucket of row 0 (so that W1 is never empty). River also updates
// the variances of W0 and W1 during the scan but never uses them, so they are
// not computed here.
func (a *ADWIN) cutOnce() bool {
	minLength := float64(a.cfg.MinWindowLength)
	varianceInWindow := a.variance / a.width
	// River's δ' = ln(2·ln(W)/δ) does not change during a scan; it is
	// computed only when a candidate passes the screen, which takes a lower
	// bound of it (a smaller k only lets more candidates through). See the
	// screen constants; it is written out in the loop because the compiler
	// would not inline it.
	deltaPrime := math.NaN()
	k := 2 * varianceInWindow * lnLowerBound(2*lnLowerBound(a.width)/a.cfg.Delta)
	screen := k >= screenMinK && k <= math.MaxFloat64
	shift := minLength - 1
	n0, n1 := 0.0, a.width
	u0, u1 := 0.0, a.total
	for row := len(a.counts) - 1; row >= 0; row-- {
		size := bucketSize(row)
		totals := a.totals[row*a.stride : row*a.stride+a.counts[row]]
		for i, t := range totals {
			n0 += size
			n1 -= size
			u0 += t
			u1 -= t
			if row == 0 && i == len(totals)-1 {
				break
			}
			if n1 < minLength || n0 < minLength {
				continue
			}
			if screen {
				p, q := u0*n1, u1*n0
				x := math.Abs(p-q) + screenErrorOfX*(math.Abs(p)+math.Abs(q))
				na, nb := n0-shift, n1-shift
				n01 := n0 * n1
				rhs := k * (na + nb) * n01 * n01
				if rhs <= math.MaxFloat64 && x*x*na*nb < rhs*(1-screenMargin) {
					continue
				}
			}
			if math.IsNaN(deltaPrime) {
				deltaPrime = math.Log(2 * math.Log(a.width) / a.cfg.Delta)
			}
			if cuts(n0, n1, u0, u1, minLength, varianceInWindow, deltaPrime) {
				a.deleteOldestBucket()
				return true
			}
		}
	}
	return false
}

// lnLowerBound returns a lower bound of ln(x) within 6% of it for x ≥ 2,
// without calling math.Log: with x = f·2^e, f in [0.5, 1), ln f lies above
// its chord 2·ln2·(f − 1). It returns -Inf for x ≤ 0 or NaN.
func lnLowerBound(x float64) float64 {
	if !(x > 0) || math.IsInf(x, 1) {
		return math.Inf(-1)
	}
	f, e := math.Frexp(x)
	// The factor covers the rounding of the two operations.
	bound := float64(e)*math.Ln2 + 2*math.Ln2*(f-1)
	if bound > 0 {
		return bound * (1 - 1e-12)
	}
	return bound*(1+1e-12) - 1e-300
}

// cuts is River's cut test (_evaluate_cut), operation for operation: the
// means of W0 (n0 values summing to u0) and W1 differ by more than
// ε = sqrt(2·m·(V/W)·δ') + (2/3)·δ'·m, with
// m = 1/(n0 − mwl + 1) + 1/(n1 − mwl + 1).
func cuts(n0, n1, u0, u1, minLength, varianceInWindow, deltaPrime float64) bool {
	deltaMean := u0/n0 - u1/n1
	m := 1/(n0-minLength+1) + 1/(n1-minLength+1)
	// The conversion keeps the compiler from fusing the last product into
	// the sum, which would round differently from River.
	epsilon := math.Sqrt(2*m*varianceInWindow*deltaPrime) + float64(twoThirds*deltaPrime*m)
	return math.Abs(deltaMean) > epsilon
}

// The screen of cutOnce rules out most candidate cuts with multiplications
// only, where River's test takes four divisions and a square root. A cut
// needs |u0/n0 − u1/n1| > sqrt(k·m) with k = 2·(V/W)·δ'; with
// X = u0·n1 − u1·n0, a = n0 − mwl + 1 and b = n1 − mwl + 1 that is
// X²·a·b > k·(a+b)·(n0·n1)². The screen rules a candidate out only when that
// fails by a margin far beyond the rounding errors of either computation: it
// adds a bound on the error of X (and of River's means) to |X| and allows a
// relative 1e-9 on the rest, so it never changes River's decision.
const (
	// screenErrorOfX bounds the rounding errors, relative to
	// |u0·n1| + |u1·n0|.
	screenErrorOfX = 0x1p-50
	screenMargin   = 1e-9
	// screenMinK keeps the screen away from underflow, where relative error
	// bounds no longer hold; with a smaller k every candidate goes to River's
	// test.
	screenMinK = 1e-150
)

// deleteOldestBucket removes the oldest bucket from the window, as River's
// _delete_element. Empty rows left at the old end are removed too (River
// removes one, which is the same unless MaxBuckets is 1).
func (a *ADWIN) deleteOldestBucket() {
	row := len(a.counts) - 1
	oldest := row * a.stride
	n := bucketSize(row)
	u := a.totals[oldest]
	mu := u / n
	v := a.variances[oldest]
	a.width -= n
	a.total -= u
	if a.width > 0 {
		muWindow := a.total / a.width
		a.variance -= v + n*a.width*(mu-muWindow)*(mu-muWindow)/(n+a.width)
	} else {
		a.total, a.variance = 0, 0
	}
	a.dropOldest(row, 1)
	for len(a.counts) > 1 && a.counts[len(a.counts)-1] == 0 {
		a.counts = a.counts[:len(a.counts)-1]
		a.totals = a.totals[:len(a.counts)*a.stride]
		a.variances = a.variances[:len(a.counts)*a.stride]
	}
}

// AppendState appends the state of a to dst; Decode restores it.
func (a *ADWIN) AppendState(dst []byte) []byte {
	dst = append(dst, header(codeADWIN))
	dst = codec.AppendFloat(dst, a.cfg.Delta)
	dst = codec.AppendUvarints(dst, a.cfg.Clock, a.cfg.MaxBuckets, a.cfg.MinWindowLength, a.cfg.GracePeriod)
	dst = codec.AppendBool(dst, a.drift)
	dst = codec.AppendUvarints(dst, a.tick)
	dst = codec.AppendFloat(dst, a.width)
	dst = codec.AppendFloat(dst, a.total)
	dst = codec.AppendFloat(dst, a.variance)
	dst = codec.AppendUvarints(dst, len(a.counts))
	for row, c := range a.counts {
		dst = codec.AppendUvarints(dst, c)
		for i := row * a.stride; i < row*a.stride+c; i++ {
			dst = codec.AppendFloat(dst, a.totals[i])
			dst = codec.AppendFloat(dst, a.variances[i])
		}
	}
	return dst
}

func decodeADWIN(r *codec.Reader) (Detector, error) {
	cfg := ADWINConfig{Delta: r.FiniteFloat()}
	cfg.Clock = r.Int(math.MaxInt32)
	cfg.MaxBuckets = r.Int(maxADWINMaxBuckets)
	cfg.MinWindowLength = r.Int(math.MaxInt32)
	cfg.GracePeriod = r.Int(math.MaxInt32)
	if r.Err() != nil {
		return nil, r.Err()
	}
	r.FailWith(cfg.Validate())
	if r.Err() != nil {
		return nil, r.Err()
	}
	a, err := NewADWIN(cfg)
	if err != nil {
		return nil, err
	}
	a.drift = r.Bool()
	a.tick = r.Int(a.cfg.Clock - 1)
	a.width = r.FiniteFloat()
	a.total = r.FiniteFloat()
	a.variance = r.FiniteFloat()
	rows := r.Int(maxADWINRows)
	if r.Err() != nil {
		return nil, r.Err()
	}
	if rows < 1 {
		r.Fail("ADWIN has no bucket rows")
		return nil, r.Err()
	}
	width := 0.0
	for row := range rows {
		if row > 0 {
			a.addRow()
		}
		c := r.Int(a.cfg.MaxBuckets)
		for range c {
			a.push(row, r.FiniteFloat(), r.FiniteFloat())
		}
		width += float64(c) * bucketSize(row)
	}
	if r.Err() != nil {
		return nil, r.Err()
	}
	if width != a.width || (rows > 1 && a.counts[rows-1] == 0) {
		r.Fail("ADWIN width %g does not match its buckets", a.width)
		return nil, r.Err()
	}
	return a, nil
}
