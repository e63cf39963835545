package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// TestFanInHeldWhileLooksComeLate: a fan-in of four whose last upstream
// applies slowly, runs that plan in 100 ms, and looks that come seconds
// after the events that call for them. TFE's run triggers queue a run in
// the sink as each upstream applies; the first three would plan and apply
// long before a look could stop them. The cascade holds the sink from its
// first look (C13), so they wait pending until stopped: the sink applies
// exactly once, after its last upstream, and ends unlocked.
func TestFanInHeldWhileLooksComeLate(t *testing.T) {
	t.Parallel()
	o := org{workspaces: []tfesim.WorkspaceSpec{wsKind("root", autoApply, 100, 100), wsKind("sink", triggerApply, 100, 100)}}
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("up%d", i)
		applyMS := int64(100)
		if i == 4 {
			applyMS = 3000 // the slow upstream
		}
		o.workspaces = append(o.workspaces, wsKind(name, triggerApply, 100, applyMS))
		o.edges = append(o.edges, [2]string{"root", name}, [2]string{name, "sink"})
	}
	// Runs queue for 2 s, as TFE's do for a worker: the hold is taken in
	// the cascade's first look, which must come before the first upstream
	// applies (what happens before any look no hold can cover), also on a
	// loaded machine.
	h := newHarness(t, o, tfesim.Options{Timing: &tfesim.Timing{Queue: 2 * time.Second}})
	opts := fastOptions()
	// Every look after the first comes four seconds after the events that
	// call for it, and no recheck comes sooner.
	opts.Debounce, opts.Policy.Recheck = 4*time.Second, time.Minute
	d, _ := h.engine(opts)
	root := h.start("root")
	v := h.done(d, cascade.ID(root), 2*time.Minute)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	h.checkOnce(v, root)
	if applied := h.applied("sink"); len(applied) != 1 {
		t.Errorf("sink applied %d runs, want 1:%s", len(applied), describeRuns(h.runs("sink")))
	}
	sink, err := h.client.Workspaces.ReadByID(h.ctx, h.id("sink"))
	if err != nil {
		t.Fatal(err)
	}
	if sink.Locked {
		t.Errorf("sink is still locked (by %+v) after the cascade", sink.LockedBy)
	}
	for _, r := range h.runs("sink") {
		if r.Status == tfe.RunApplied {
			continue
		}
		if r.Status != tfe.RunCanceled && r.Status != tfe.RunDiscarded {
			t.Errorf("sink run %s is %s, want stopped", r.ID, r.Status)
		}
	}
	if n := len(h.alerts.Of(cascade.AlertUncontrolled)); n > 0 {
		t.Errorf("%d uncontrolled-run alerts, want none", n)
	}
}

// A cascade whose member record cannot be read is set aside; the member it
// held is let go all the same: no workspace stays locked by the engine.
func TestHoldReleasedWhenSetAside(t *testing.T) {
	t.Parallel()
	// a plans long enough for the cascade to have started before it
	// applies (else a's apply starts a cascade of its own, which holds
	// the sink in turn).
	o := org{workspaces: []tfesim.WorkspaceSpec{wsKind("root", autoApply, 20, 20), wsKind("a", triggerApply, 2000, 20),
		wsKind("b", triggerApply, 60000, 20), wsKind("sink", triggerApply, 20, 20)},
		edges: [][2]string{{"root", "a"}, {"root", "b"}, {"a", "sink"}, {"b", "sink"}}}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	root := h.start("root")
	id := cascade.ID(root)
	locked := func() bool {
		w, err := h.client.Workspaces.ReadByID(h.ctx, h.id("sink"))
		return err == nil && w.Locked && w.LockedBy != nil && w.LockedBy.User != nil
	}
	testutil.WaitFor(t, "the cascade to hold sink", time.Minute, locked)
	kv, err := h.js.KeyValue(h.ctx, d.CascadesBucket())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(h.ctx, dispatcher.MemberKey(id, h.id("sink")), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	// The next look (a recheck comes every second) finds the record.
	testutil.WaitFor(t, "the cascade to be set aside", time.Minute, func() bool {
		list, err := d.Reads().List(h.ctx, dispatcher.Filter{State: string(dispatcher.StateSetAside)})
		return err == nil && len(list) == 1 && list[0].ID == id
	})
	if locked() {
		all, _ := d.Reads().List(h.ctx, dispatcher.Filter{})
		for _, c := range all {
			t.Logf("cascade %+v", c)
		}
		t.Error("sink is still locked by the engine after its cascade was set aside")
	}
}

// An operator cancels a cascade, stopping its runs, while a member's run
// is applying: the cascade reads cancelled at once, and the run TFE's run
// trigger queues downstream when that apply ends never applies (the
// cascade holds the downstream member until it has stopped it).
func TestCancelStopsWhatAnApplyingRunQueues(t *testing.T) {
	t.Parallel()
	// a applies for an hour, longer than any look on a loaded machine; the
	// test ends the apply itself once the cascade reads cancelled.
	o := org{workspaces: []tfesim.WorkspaceSpec{wsKind("root", autoApply, 20, 20), wsKind("a", triggerApply, 1000, 3_600_000),
		wsKind("b", triggerApply, 50, 20)},
		edges: [][2]string{{"root", "a"}, {"a", "b"}}}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	root := h.start("root")
	id := cascade.ID(root)
	testutil.WaitFor(t, "a to apply its cascade run", time.Minute, func() bool {
		v, err := d.Reads().Snapshot(h.ctx, id)
		runs := h.runs("a")
		return err == nil && len(v.Members) == 2 && len(runs) > 0 && runs[0].Status == tfe.RunApplying
	})
	if err := d.Controls().Cancel(h.ctx, id, dispatcher.Control{By: "ops", Why: "wrong change", StopRuns: true}); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the cascade to read cancelled", 30*time.Second, func() bool {
		v, err := d.Reads().Snapshot(h.ctx, id)
		return err == nil && v.State == dispatcher.StateDone && v.Outcome == cascade.OutcomeCancelled
	})
	// In the look the cancel calls for, not once a's apply is over.
	runs := h.runs("a")
	if runs[0].Status != tfe.RunApplying {
		t.Errorf("a's run was %s when the cascade read cancelled, want still applying", runs[0].Status)
	}
	// a's apply ends now, and TFE's run trigger queues a run in b.
	if err := h.sim.FinishPhase(runs[0].ID); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, "the run TFE queued in b to be stopped", time.Minute, func() bool {
		runs := h.runs("b")
		return len(runs) == 1 && (runs[0].Status == tfe.RunCanceled || runs[0].Status == tfe.RunDiscarded)
	})
	testutil.WaitFor(t, "b to be let go", time.Minute, func() bool {
		w, err := h.client.Workspaces.ReadByID(h.ctx, h.id("b"))
		return err == nil && !w.Locked
	})
	if n := len(h.applied("b")); n != 0 {
		t.Errorf("b applied %d runs after the cascade was cancelled:%s", n, describeRuns(h.runs("b")))
	}
}
