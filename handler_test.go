package eddy

import (
	"errors"
	"fmt"
	"testing"

	"github.com/eddyhq/eddy/learner/engine"
	"github.com/eddyhq/eddy/serving"
)

// TestAdminErrorsSayTheLearnersMessageOnceWithTheirStatus: a missing
// snapshot reaches the client as NOT_FOUND with the learner's words, not
// "serving: not found: learner: snapshot not found: ...".
func TestAdminErrorsSayTheLearnersMessageOnceWithTheirStatus(t *testing.T) {
	inner := fmt.Errorf("%w: model m version 9", engine.ErrSnapshotNotFound)
	err := adminError(inner)
	if !errors.Is(err, serving.ErrNotFound) || !errors.Is(err, engine.ErrSnapshotNotFound) {
		t.Fatalf("%v: want both serving.ErrNotFound and engine.ErrSnapshotNotFound", err)
	}
	if err.Error() != inner.Error() {
		t.Fatalf("message %q, want %q", err.Error(), inner.Error())
	}
}
