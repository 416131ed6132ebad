package drift

import (
	"math"
	"slices"
	"testing"
)

// riverADWIN is a literal port of River's AdaptiveWindowing (river/drift/
// adwin_c.pyx, the Cython version with C-array buckets), statement for
// statement and without any of the package's shortcuts (the screen, the
// lower bound of δ', the tick countdown, the flat bucket rows). It also keeps
// the sub-window variances River computes and never uses. The tests compare
// ADWIN with it value by value.
type riverADWIN struct {
	delta                              float64
	clock, maxBuckets, minWindowLength int
	gracePeriod                        int
	buckets                            []*riverBucket
	total, variance, width             float64
	tick                               int
	driftDetected                      bool
}

type riverBucket struct {
	currentIdx int
	totals     []float64
	variances  []float64
}

func newRiverBucket(maxBuckets int) *riverBucket {
	return &riverBucket{totals: make([]float64, maxBuckets+1), variances: make([]float64, maxBuckets+1)}
}

func (b *riverBucket) insert(value, variance float64) {
	b.totals[b.currentIdx] = value
	b.variances[b.currentIdx] = variance
	b.currentIdx++
}

func (b *riverBucket) compress(n int) {
	remaining := b.currentIdx - n
	copy(b.totals, b.totals[n:b.currentIdx])
	copy(b.variances, b.variances[n:b.currentIdx])
	for i := remaining; i < b.currentIdx; i++ {
		b.totals[i], b.variances[i] = 0, 0
	}
	b.currentIdx -= n
}

func newRiverADWIN(cfg ADWINConfig) *riverADWIN {
	cfg.EnsureDefaults()
	r := &riverADWIN{delta: cfg.Delta, clock: cfg.Clock, maxBuckets: cfg.MaxBuckets,
		minWindowLength: cfg.MinWindowLength, gracePeriod: cfg.GracePeriod}
	r.reset()
	return r
}

func (r *riverADWIN) reset() {
	r.buckets = []*riverBucket{newRiverBucket(r.maxBuckets)}
	r.total, r.variance, r.width, r.tick = 0, 0, 0, 0
}

// update is River's ADWIN.update: reset after a detection, then the helper's
// update.
func (r *riverADWIN) update(value float64) bool {
	if r.driftDetected {
		r.reset()
	}
	r.insertElement(value, 0)
	r.driftDetected = r.detectChange()
	return r.driftDetected
}

func (r *riverADWIN) insertElement(value, variance float64) {
	r.buckets[0].insert(value, variance)
	r.width++
	incremental := 0.0
	if r.width > 1 {
		incremental = (r.width - 1) * (value - r.total/(r.width-1)) * (value - r.total/(r.width-1)) / r.width
	}
	r.variance += incremental
	r.total += value
	r.compressBuckets()
}

func (r *riverADWIN) deleteElement() float64 {
	bucket := r.buckets[len(r.buckets)-1]
	n := float64(int(1) << (len(r.buckets) - 1))
	u := bucket.totals[0]
	mu := u / n
	v := bucket.variances[0]
	r.width -= n
	r.total -= u
	muWindow := r.total / r.width
	incremental := v + n*r.width*(mu-muWindow)*(mu-muWindow)/(n+r.width)
	r.variance -= incremental
	bucket.compress(1)
	if bucket.currentIdx == 0 {
		r.buckets = r.buckets[:len(r.buckets)-1]
	}
	return n
}

func (r *riverADWIN) compressBuckets() {
	idx := 0
	bucket := r.buckets[0]
	for bucket != nil {
		if bucket.currentIdx != r.maxBuckets+1 {
			break
		}
		var next *riverBucket
		if idx+1 < len(r.buckets) {
			next = r.buckets[idx+1]
		} else {
			next = newRiverBucket(r.maxBuckets)
			r.buckets = append(r.buckets, next)
		}
		n1 := float64(int(1) << idx)
		mu1 := bucket.totals[0] / n1
		mu2 := bucket.totals[1] / n1
		total12 := bucket.totals[0] + bucket.totals[1]
		temp := float64(n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2))
		v12 := bucket.variances[0] + bucket.variances[1] + temp
		next.insert(total12, v12)
		bucket.compress(2)
		if next.currentIdx <= r.maxBuckets {
			break
		}
		bucket = nil
		if idx+1 < len(r.buckets) {
			bucket = r.buckets[idx+1]
		}
		idx++
	}
}

func (r *riverADWIN) detectChange() bool {
	changeDetected := false
	r.tick++
	if r.tick%r.clock == 0 && r.width > float64(r.gracePeriod) {
		reduceWidth := true
		for reduceWidth {
			reduceWidth = false
			exit := false
			n0, n1 := 0.0, r.width
			u0, u1 := 0.0, r.total
			v0, v1 := 0.0, r.variance
			for idx := len(r.buckets) - 1; idx >= 0; idx-- {
				if exit {
					break
				}
				bucket := r.buckets[idx]
				bucketSize := float64(int(1) << idx)
				for k := 0; k < bucket.currentIdx; k++ {
					n2 := bucketSize
					u2 := bucket.totals[k]
					mu2 := u2 / n2
					if n0 > 0 {
						mu0 := u0 / n0
						v0 += bucket.variances[k] + n0*n2*(mu0-mu2)*(mu0-mu2)/(n0+n2)
					}
					if n1 > 0 {
						mu1 := u1 / n1
						v1 -= bucket.variances[k] + n1*n2*(mu1-mu2)*(mu1-mu2)/(n1+n2)
					}
					n0 += bucketSize
					n1 -= bucketSize
					u0 += bucket.totals[k]
					u1 -= bucket.totals[k]
					if idx == 0 && k == bucket.currentIdx-1 {
						exit = true
						break
					}
					deltaMean := u0/n0 - u1/n1
					if n1 >= float64(r.minWindowLength) && n0 >= float64(r.minWindowLength) && r.evaluateCut(n0, n1, deltaMean) {
						reduceWidth = true
						changeDetected = true
						if r.width > 0 {
							n0 -= r.deleteElement()
							exit = true
							break
						}
					}
				}
			}
			_, _ = v0, v1
		}
	}
	return changeDetected
}

func (r *riverADWIN) evaluateCut(n0, n1, deltaMean float64) bool {
	deltaPrime := math.Log(2 * math.Log(r.width) / r.delta)
	mRecip := 1.0/(n0-float64(r.minWindowLength)+1) + 1.0/(n1-float64(r.minWindowLength)+1)
	epsilon := math.Sqrt(2*mRecip*(r.variance/r.width)*deltaPrime) + float64(2.0/3.0*deltaPrime*mRecip)
	return math.Abs(deltaMean) > epsilon
}

// segments concatenates streams.
func segments(parts ...[]float64) []float64 { return slices.Concat(parts...) }

func TestADWINMatchesALiteralPortOfRiverValueByValue(t *testing.T) {
	rng := newRand(11)
	streams := []struct {
		name   string
		values []float64
	}{
		{"Bernoulli error rates that step up and down", segments(bernoulli(rng, 3000, 0.1), bernoulli(rng, 3000, 0.4), bernoulli(rng, 3000, 0.15), bernoulli(rng, 3000, 0.6))},
		{"Gaussian values with small mean shifts", segments(gaussian(rng, 4000, 0, 1), gaussian(rng, 4000, 0.3, 1), gaussian(rng, 4000, -0.2, 1.5))},
		{"a stationary Bernoulli stream", bernoulli(rng, 20000, 0.2)},
		{"large values with a tiny relative shift", segments(gaussian(rng, 3000, 1e6, 1), gaussian(rng, 3000, 1e6+0.5, 1))},
		{"a constant stream then a jump", segments(gaussian(rng, 2000, 5, 0), gaussian(rng, 2000, 6, 0))},
		{"tiny values", segments(gaussian(rng, 3000, 1e-80, 1e-81), gaussian(rng, 3000, 2e-80, 1e-81))},
	}
	configs := []ADWINConfig{
		{},
		{Clock: 1},
		{Delta: 0.1, Clock: 4, MinWindowLength: 2, GracePeriod: 1},
		{MaxBuckets: 2, Clock: 8},
		{MaxBuckets: 2, Clock: 1, Delta: 0.3, MinWindowLength: 1},
		{MaxBuckets: 9, MinWindowLength: 30, GracePeriod: 100},
	}
	for _, s := range streams {
		for _, cfg := range configs {
			got, err := NewADWIN(cfg)
			if err != nil {
				t.Fatal(err)
			}
			want := newRiverADWIN(cfg)
			var detections []int
			for i, v := range s.values {
				g, w := got.Update(v), want.update(v)
				if g != w || got.width != want.width || got.total != want.total || got.variance != want.variance {
					t.Fatalf("%s, %+v: value %d: detection %v, width %v, total %v, variance %v; River: %v, %v, %v, %v",
						s.name, cfg, i, g, got.width, got.total, got.variance, w, want.width, want.total, want.variance)
				}
				if g {
					detections = append(detections, i)
				}
			}
			t.Logf("%s, %+v: %d detections, as River", s.name, cfg, len(detections))
		}
	}
}
