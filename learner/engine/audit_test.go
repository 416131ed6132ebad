package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTheAuditLogRecordsEveryOperatorActionWithItsActor runs a promote,
// a refused promote, a rollback and a release, each by a named actor: the
// audit log holds them in order with actor, request and result, across a
// restart, and a reset (eddy serve --reset-model) adds its own entry
// without erasing the others.
func TestTheAuditLogRecordsEveryOperatorActionWithItsActor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	store, closeStore := openTestStore(t, dir)
	cfg := fraudConfig
	cfg.PromoteInterval = time.Nanosecond
	e, _ := newTestEngine(t, store, cfg, nil)
	tickingClock(e)
	promoteEvery(t, e, 4)
	as := func(actor string, cmd func(context.Context) (uint64, error)) func(context.Context) (uint64, error) {
		return func(ctx context.Context) (uint64, error) { return cmd(WithActor(ctx, actor)) }
	}
	runCommand(t, e, as("alice", func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 2) }))
	if _, err := runCommand(t, e, as("bob", func(ctx context.Context) (uint64, error) { return e.Promote(ctx, "fraud", 9) })); err == nil {
		t.Fatal("promote of a version never taken succeeded")
	}
	runCommand(t, e, as("alice", func(ctx context.Context) (uint64, error) { return e.Rollback(ctx, "fraud") }))
	runCommand(t, e, func(ctx context.Context) (uint64, error) { return e.Release(ctx, "fraud") })

	want := []string{
		"1 alice promote v2: ok, serving 2",
		"2 bob promote v9: learner: snapshot not found: model fraud version 9, serving 0",
		"3 alice rollback v0: ok, serving 1",
		"4 anonymous release v0: ok, serving 4",
	}
	check := func(e *Engine, want []string) {
		t.Helper()
		entries, err := e.Audit("fraud", 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range entries {
			got = append(got, fmt.Sprintf("%d %s %s v%d: %s, serving %d", a.Sequence, a.Actor, a.Action, a.Version, a.Result, a.Serving))
			if a.Time.IsZero() || a.Model != "fraud" {
				t.Errorf("entry %d: time %v, model %q", a.Sequence, a.Time, a.Model)
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("audit log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
	check(e, want)
	if last, _ := e.Audit("fraud", 2); len(last) != 2 || last[1].Sequence != 4 {
		t.Errorf("the newest 2 entries: %+v", last)
	}
	closeStore()

	store, closeStore = openTestStore(t, dir)
	e, _ = newTestEngine(t, store, cfg, nil)
	check(e, want)
	if err := e.Reset([]string{"fraud"}); err != nil {
		t.Fatal(err)
	}
	entries, err := e.Audit("fraud", 0)
	if err != nil || len(entries) != 5 || entries[4].Action != "reset" || entries[4].Actor != "serve --reset-model" {
		t.Fatalf("after a reset: %+v, %v", entries, err)
	}
	tickingClock(e)
	promoteEvery(t, e, 2)
	runCommand(t, e, as("carol", func(ctx context.Context) (uint64, error) { return e.Rollback(ctx, "fraud") }))
	if entries, _ := e.Audit("fraud", 0); len(entries) != 6 || entries[4].Action != "reset" || entries[5].Actor != "carol" {
		t.Fatalf("an action after the reset overwrote or lost an entry: %+v", entries)
	}
	closeStore()
}
