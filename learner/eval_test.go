package learner

import "testing"

// TestRollingMAERecoversAfterAHugeError feeds one error of 1e17 and then
// errors of 1: once the huge one has left the window, the rolling MAE must
// read 1 again. With a plain running sum it read 0.01 for good (1e17 + 1 −
// 1e17 is 0 in float64, so every later 1 was lost from the sum).
func TestRollingMAERecoversAfterAHugeError(t *testing.T) {
	const window = 100
	p := newPrequential(Regression, window)
	p.regress(1e17, 0)
	for range 3 * window {
		p.regress(1, 0)
	}
	if got := p.metrics().Rolling; got != 1 {
		t.Fatalf("rolling MAE = %v after %d errors of 1, want exactly 1", got, 3*window)
	}
}

// TestChallengerComparisonRecoversAfterAHugeDifference does the same for the
// champion/challenger comparison windows.
func TestChallengerComparisonRecoversAfterAHugeDifference(t *testing.T) {
	const window = 100
	w := newDiffWindow(window)
	w.add(1e17)
	w.add(-1e17)
	for range 3 * window {
		w.add(-1)
	}
	if got := w.mean(); got != -1 {
		t.Fatalf("mean difference = %v after %d differences of −1, want exactly −1", got, 3*window)
	}
}
