package learner_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/eddyhq/eddy/drift"
	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
)

// A Go program embeds a model and a drift detector without Pebble, Kafka or
// Prometheus: a logistic regression whose features include a per-user
// window (the mean and maximum of the user's last five amounts), learned
// test-then-train, with ADWIN watching its error. Halfway through, what
// makes a payment suspicious changes; ADWIN sees the error rise.
func Example_embedding() {
	model, err := learner.NewModel(learner.ModelConfig{
		Name: "fraud",
		Task: learner.Binary,
		Features: features.Config{
			Key:     "user", // each user's history is its own
			Windows: []features.WindowConfig{{Field: "amount", Size: 5, Aggs: []string{"mean", "max"}}},
		},
		Optimizer: learner.OptimizerConfig{LR: 0.05},
	}, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	detector, err := drift.NewADWIN(drift.ADWINConfig{})
	if err != nil {
		fmt.Println(err)
		return
	}

	rng := rand.New(rand.NewPCG(1, 2))
	event := func() []features.Field {
		return []features.Field{
			{Name: []byte("user"), Kind: features.String, Str: fmt.Appendf(nil, "user-%d", rng.IntN(50))},
			{Name: []byte("amount"), Kind: features.Number, Num: rng.ExpFloat64() * 50},
		}
	}
	const change = 5000
	var detected []int
	for i := range 2 * change {
		fields := event()
		fraud := fields[1].Num > 120 // before the change, large payments
		if i >= change {
			fraud = fields[1].Num < 10 // after it, small ones
		}
		y := 0.0
		if fraud {
			y = 1
		}
		// LearnEvent derives the window features from the user's history,
		// scores the prediction made before learning, learns, and then
		// adds the payment to the history.
		score, err := model.LearnEvent(nil, time.Time{}, fields, y)
		if err != nil {
			fmt.Println(err)
			return
		}
		wrong := 0.0
		if (score > 0.5) != fraud {
			wrong = 1
		}
		if detector.Update(wrong) {
			detected = append(detected, i)
		}
	}
	first := slices.IndexFunc(detected, func(i int) bool { return i >= change })
	fmt.Println("learned:", model.Learned())
	fmt.Println("drift detected within 200 events of the change:", first >= 0 && detected[first] < change+200)
	fmt.Printf("prequential accuracy: %.2f\n", model.Metrics().Accuracy)

	// Predict derives the same window features as learning, from the
	// user's history as it is now (Derive shows them).
	small := []features.Field{
		{Name: []byte("user"), Kind: features.String, Str: []byte("user-7")},
		{Name: []byte("amount"), Kind: features.Number, Num: 3},
	}
	all, err := model.Derive(model.EntityKey(nil, small), time.Time{}, small)
	if err != nil {
		panic(err)
	}
	for _, f := range all[len(small):] {
		fmt.Printf("derived %s = %.1f\n", f.Name, f.Num)
	}
	fmt.Println("a small payment now looks suspicious:", model.Predict(nil, small) > 0.5)
	// Output:
	// learned: 10000
	// drift detected within 200 events of the change: true
	// prequential accuracy: 0.96
	// derived amount_w5_mean = 48.6
	// derived amount_w5_max = 119.1
	// a small payment now looks suspicious: true
}
