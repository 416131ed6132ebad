package learner

import "github.com/eddyhq/eddy/learner/internal/learntest"

// The shared test streams and comparisons, by the names these tests use.
type example = learntest.Example

var (
	dataset         = learntest.Dataset
	readCSV         = learntest.ReadCSV
	paymentEvents   = learntest.PaymentEvents
	wideEvents      = learntest.WideEvents
	numField        = learntest.NumField
	strField        = learntest.StrField
	sameBits        = learntest.SameBits
	sameWeights     = learntest.SameWeights
	firstDifference = learntest.FirstDifference
)
