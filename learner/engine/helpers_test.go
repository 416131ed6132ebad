package engine

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/eddyhq/eddy/features"
	"github.com/eddyhq/eddy/learner"
	"github.com/eddyhq/eddy/learner/internal/learntest"
	"github.com/eddyhq/eddy/learner/store"
)

// The shared test streams and comparisons, by the names these tests use.
type example = learntest.Example

var (
	paymentEvents   = learntest.PaymentEvents
	wideEvents      = learntest.WideEvents
	readCSV         = learntest.ReadCSV
	numField        = learntest.NumField
	strField        = learntest.StrField
	boolField       = learntest.BoolField
	sameBits        = learntest.SameBits
	sameWeights     = learntest.SameWeights
	firstDifference = learntest.FirstDifference
)

func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// labeled is the Example of a labeled event without a position.
func labeled(fields []features.Field, y float64) *Example {
	return &Example{Fields: fields, Label: y, HasLabel: true}
}

// unlabeled is the Example of an event without a label or a position.
func unlabeled(fields []features.Field) *Example { return &Example{Fields: fields} }

func metricsBits(m learner.Metrics) []float64 {
	return []float64{float64(m.N), m.Accuracy, m.LogLoss, m.MAE, m.RMSE, m.Rolling}
}

// requireSameModel fails unless got holds exactly (bit for bit) the state of
// want: weights, intercept, learned count, version, metrics, and the rest of
// the stored state (feature state, optimizer state, the rolling window's
// contents, which Metrics shows only once they slide out of it).
func requireSameModel(t *testing.T, got, want *learner.Model) {
	t.Helper()
	gotW, gotB := got.Weights()
	wantW, wantB := want.Weights()
	if !sameBits(gotW, wantW) {
		t.Errorf("weights differ: %d weights vs %d, first difference at %d", len(gotW), len(wantW), firstDifference(gotW, wantW))
	}
	if math.Float64bits(gotB) != math.Float64bits(wantB) {
		t.Errorf("intercept = %v, want %v", gotB, wantB)
	}
	if got.Learned() != want.Learned() {
		t.Errorf("learned = %d, want %d", got.Learned(), want.Learned())
	}
	if got.Version() != want.Version() {
		t.Errorf("snapshot version = %d, want %d", got.Version(), want.Version())
	}
	if !sameBits(metricsBits(got.Metrics()), metricsBits(want.Metrics())) {
		t.Errorf("metrics = %+v, want %+v", got.Metrics(), want.Metrics())
	}
	if !bytes.Equal(got.AppendState(nil), want.AppendState(nil)) {
		t.Errorf("stored state differs (feature state, optimizer state or rolling window)")
	}
}

// snapshotVersions returns the stored snapshot versions of a model, oldest
// first, from the snapshots themselves (not their infos).
func snapshotVersions(s *store.Store, model string) ([]uint64, error) {
	var versions []uint64
	prefix := snapshotPrefix(model)
	err := s.Scan(prefix, func(key, _ []byte) error {
		if len(key) != len(prefix)+8 {
			return fmt.Errorf("%w: snapshot key %q", learner.ErrCorrupt, key)
		}
		versions = append(versions, binary.BigEndian.Uint64(key[len(prefix):]))
		return nil
	})
	slices.Sort(versions)
	return versions, err
}
