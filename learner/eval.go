package learner

import "math"

// Metrics are a model's prequential (test-then-train) metrics: each example
// is scored by the model as it was before learning from it.
type Metrics struct {
	// N is the number of examples scored.
	N uint64
	// Accuracy and LogLoss are cumulative, for Binary and Multiclass models.
	Accuracy, LogLoss float64
	// MAE and RMSE are cumulative, for Regression models.
	MAE, RMSE float64
	// Rolling is over the last RollingWindow examples: accuracy for
	// classifiers, MAE for Regression.
	Rolling float64
}

// prequential accumulates the metrics of one model.
type prequential struct {
	task    Task
	n       uint64
	correct uint64
	logLoss float64 // sum
	absErr  float64 // sum
	sqErr   float64 // sum
	// window holds the last per-example errors (0/1 loss or absolute
	// error).
	window ring
	stored int // decoded: the window length the state was stored with
}

func newPrequential(task Task, window int) prequential {
	return prequential{task: task, window: newRing(window)}
}

// classify scores a classification: whether it was right and the
// probability it gave the true label.
func (e *prequential) classify(correct bool, pTrue float64) {
	e.n++
	loss := 1.0
	if correct {
		e.correct++
		loss = 0
	}
	e.logLoss -= math.Log(min(max(pTrue, 1e-15), 1-1e-15))
	e.observe(loss)
}

// regress scores a regression prediction p of y.
func (e *prequential) regress(y, p float64) {
	e.n++
	loss := math.Abs(y - p)
	e.absErr += loss
	e.sqErr += (y - p) * (y - p)
	e.observe(loss)
}

// observe adds one example's error to the rolling window.
func (e *prequential) observe(loss float64) { e.window.add(loss) }

func (e *prequential) metrics() Metrics {
	m := Metrics{N: e.n}
	if e.n == 0 {
		return m
	}
	n := float64(e.n)
	rollingErr := e.window.mean()
	if e.task != Regression {
		m.Accuracy = float64(e.correct) / n
		m.LogLoss = e.logLoss / n
		m.Rolling = 1 - rollingErr
	} else {
		m.MAE = e.absErr / n
		m.RMSE = math.Sqrt(e.sqErr / n)
		m.Rolling = rollingErr
	}
	return m
}
