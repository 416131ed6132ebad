package learner

import (
	"bytes"
	"testing"
	"time"

	"github.com/eddyhq/eddy/features"
)

// TestAKeyFieldModelNeverWritesIntoTheMessageKey runs three history models
// on one topic: the first and the third take the entity from the message
// key, the second from the "user" field. The second model's key must not be
// written into the message's bytes, so the third stores its history under
// the message key exactly and the message is left as it arrived.
func TestAKeyFieldModelNeverWritesIntoTheMessageKey(t *testing.T) {
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	lag := []features.LagConfig{{Field: "x", Lags: []int{1}}}
	cfg := EngineConfig{Models: []ModelConfig{
		{Name: "by-message-1", Topic: "events", Features: features.Config{Lags: lag}},
		{Name: "by-user", Topic: "events", Features: features.Config{Key: "user", Lags: lag}},
		{Name: "by-message-2", Topic: "events", Features: features.Config{Lags: lag}},
	}}
	e, _ := newTestEngine(t, store, cfg, nil)
	value := []byte(`{"user":"bob","x":7}`) // what the fields alias in production
	messageKey := []byte("AAAAAAAA")
	fields := []features.Field{
		{Name: value[2:6], Kind: features.String, Str: value[9:12]},
		{Name: value[15:16], Kind: features.Number, Num: 7},
	}
	keyBefore, valueBefore := bytes.Clone(messageKey), bytes.Clone(value)
	e.At(0, 0, messageKey)
	if err := e.Process("events", fields, 1, true); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(messageKey, keyBefore) || !bytes.Equal(value, valueBefore) {
		t.Errorf("the message changed: key %q (was %q), value %q (was %q)", messageKey, keyBefore, value, valueBefore)
	}
	checkpoint(t, e, eventsOffset(0, 1))
	closeStore()

	reopened, _ := openTestStore(t, dir)
	e2, _ := newTestEngine(t, reopened, cfg, nil)
	for i, want := range []string{"AAAAAAAA", "bob", "AAAAAAAA"} {
		h := e2.models[i].hist
		got := h.Derive([]byte(want), time.Time{}, nil, nil)
		if h.Entities() != 1 || len(got) != 1 || got[0].Num != 7 {
			t.Errorf("model %s after a restart: %d entities, entity %q derives %v; want exactly that entity with x_lag1 = 7",
				cfg.Models[i].Name, h.Entities(), want, got)
		}
	}
}
