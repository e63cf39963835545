package dispatcher_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Cascades as operators run them: TFE's native run triggers fire (they
// always do: they are the graph), and workspaces auto-apply, apply only
// what their run triggers queue, or wait for a person. Runs plan until the
// test ends their plan (pace), which it does once the engine has taken the
// run: a run TFE's triggers queue too early must be stopped before it
// applies, and real plans take far longer than a look.
func TestCascadesWithNativeRunTriggers(t *testing.T) {
	t.Parallel()
	diamond := func(kind approval) org {
		return org{
			workspaces: []tfesim.WorkspaceSpec{wsKind("a", autoApply, untilEnded, 20), wsKind("b", kind, untilEnded, 20), wsKind("c", kind, untilEnded, 80), wsKind("d", kind, untilEnded, 20)},
			edges:      [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}},
		}
	}
	fanIn := org{
		workspaces: []tfesim.WorkspaceSpec{wsKind("root", autoApply, untilEnded, 20), wsKind("fast", triggerApply, untilEnded, 20), wsKind("medium", autoApply, untilEnded, 60),
			wsKind("slow", personApproves, untilEnded, 120), wsKind("sink", triggerApply, untilEnded, 20)},
		edges: [][2]string{{"root", "fast"}, {"root", "medium"}, {"root", "slow"}, {"fast", "sink"}, {"medium", "sink"}, {"slow", "sink"}},
	}
	for _, tc := range []struct {
		name    string
		org     org
		root    string
		persons []string // workspaces whose runs a person confirms
	}{
		{"a chain of 6 with auto-apply-run-trigger only", chain(6, triggerApply, untilEnded), "c00", nil},
		{"a chain of 4 that a person confirms", chain(4, personApproves, untilEnded), "c00", []string{"c01", "c02", "c03"}},
		{"a diamond of auto-applying workspaces", diamond(autoApply), "a", nil},
		{"a diamond with auto-apply-run-trigger only", diamond(triggerApply), "a", nil},
		{"a diamond a person confirms", diamond(personApproves), "a", []string{"b", "c", "d"}},
		{"a fan-in of three upstreams of every kind", fanIn, "root", []string{"slow"}},
		{"layers where each member has two upstreams", layered(3, 4, triggerApply, untilEnded, 20), "root", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each on its own harness
			h := newHarness(t, tc.org, tfesim.Options{})
			d, _ := h.engine(fastOptions())
			root := h.start(tc.root)
			id := cascade.ID(root)
			h.pace(d, root)
			if len(tc.persons) > 0 {
				h.person(d, id, tc.persons...)
			}
			v := h.done(d, id, 60*time.Second)
			if v.Outcome != cascade.OutcomeApplied {
				t.Fatalf("outcome %s:%s", v.Outcome, states(v))
			}
			h.checkOnce(v, root)
			for _, m := range v.Members {
				if m.State != cascade.Applied {
					t.Errorf("%s: %s (%s)", m.Name, m.State, m.Reason)
				}
			}
		})
	}
}

// A member awaiting a person is a state of its own; discarded by the
// person, what depends on it is blocked, in one alert.
func TestApprovalDiscardedBlocksDownstream(t *testing.T) {
	t.Parallel()
	o := org{
		workspaces: []tfesim.WorkspaceSpec{wsKind("a", autoApply, untilEnded, 20), wsKind("b", personApproves, untilEnded, 20), wsKind("c", triggerApply, untilEnded, 20)},
		edges:      [][2]string{{"a", "b"}, {"b", "c"}},
	}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	root := h.start("a")
	id := cascade.ID(root)
	h.pace(d, root)
	var runID string
	waitFor(t, "b to await approval", func() bool {
		v, err := d.Reads().Snapshot(h.ctx, id)
		if err != nil || len(v.Members) == 0 {
			return false
		}
		b := v.Members[0]
		runID = b.RunID
		return b.Name == "b" && b.State == cascade.AwaitingApproval
	})
	if err := h.client.Runs.Discard(h.ctx, runID, discardOpts("not today")); err != nil {
		t.Fatal(err)
	}
	v := h.done(d, id, 30*time.Second)
	if v.Outcome != cascade.OutcomeIncomplete || v.Members[0].State != cascade.Failed || v.Members[1].State != cascade.Blocked {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	if got := h.alerts.Of(alerts.KindCascadeBlocked); len(got) != 1 || !strings.Contains(got[0].Message, "c (upstream b failed (run discarded))") {
		t.Errorf("alerts: got %+v", got)
	}
	h.checkOnce(v, root)
}

// With neither auto-apply setting and the apply policy "always", the
// engine confirms the runs itself.
func TestApplyPolicyAlways(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chain(4, personApproves, 20), tfesim.Options{})
	opts := fastOptions()
	opts.Policy.Apply = cascade.ApplyAlways
	d, _ := h.engine(opts)
	root := h.start("c00")
	v := h.done(d, cascade.ID(root), 30*time.Second)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	h.checkOnce(v, root)
}

// An upstream that errors blocks what depends on it; the rest proceeds.
func TestFailedUpstreamBlocksDownstream(t *testing.T) {
	t.Parallel()
	b := wsKind("b", triggerApply, untilEnded, 20)
	b.Behavior.Outcome = tfesim.OutcomeErrored
	o := org{
		workspaces: []tfesim.WorkspaceSpec{wsKind("a", autoApply, untilEnded, 20), b, wsKind("c", triggerApply, untilEnded, 60), wsKind("d", triggerApply, untilEnded, 20), wsKind("e", triggerApply, untilEnded, 20)},
		edges:      [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}, {"d", "e"}},
	}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	root := h.start("a")
	h.pace(d, root)
	v := h.done(d, cascade.ID(root), 30*time.Second)
	want := map[string]cascade.State{"b": cascade.Failed, "c": cascade.Applied, "d": cascade.Blocked, "e": cascade.Blocked}
	for _, m := range v.Members {
		if m.State != want[m.Name] {
			t.Errorf("%s: got %s (%s), want %s", m.Name, m.State, m.Reason, want[m.Name])
		}
	}
	h.checkOnce(v, root)
	if got := h.alerts.Of(alerts.KindCascadeBlocked); len(got) != 1 || !strings.Contains(got[0].Message, "d (upstream b failed") {
		t.Errorf("alerts: got %+v", got)
	}
}

// Workspaces on a cycle never run; what TFE's triggers queue in them is
// stopped; the rest proceeds; the alert names the cycle.
func TestCycleInClosure(t *testing.T) {
	t.Parallel()
	o := org{
		workspaces: []tfesim.WorkspaceSpec{ws("root", untilEnded, 20), ws("app", untilEnded, 20), ws("db", untilEnded, 20), ws("after", untilEnded, 20), ws("side", untilEnded, 20), ws("side2", untilEnded, 20)},
		edges:      [][2]string{{"root", "app"}, {"app", "db"}, {"db", "app"}, {"db", "after"}, {"root", "side"}, {"side", "side2"}},
	}
	h := newHarness(t, o, tfesim.Options{})
	d, _ := h.engine(fastOptions())
	root := h.start("root")
	h.pace(d, root)
	v := h.done(d, cascade.ID(root), 30*time.Second)
	h.checkOnce(v, root)
	cycles := h.alerts.Of(alerts.KindCycle)
	if len(cycles) != 1 || !strings.Contains(cycles[0].Message, "app → db → app") {
		t.Fatalf("cycle alerts: got %+v", cycles)
	}
	for _, n := range []string{"app", "db", "after"} {
		if got := h.applied(n); len(got) != 0 {
			t.Errorf("%s: %d runs applied, want none", n, len(got))
		}
	}
}

// Preflight (C8): local execution and no configuration block with a
// reason; a person's lock waits, is alerted, and the run follows its
// release.
func TestPreflight(t *testing.T) {
	t.Parallel()
	local := ws("local", 20, 20)
	local.ExecutionMode = "local"
	empty := ws("empty", 20, 20)
	empty.NoConfiguration = true
	locked := ws("locked", 20, 20)
	locked.Locked = true
	o := org{
		workspaces: []tfesim.WorkspaceSpec{ws("root", 20, 20), local, empty, locked},
		edges:      [][2]string{{"root", "local"}, {"root", "empty"}, {"root", "locked"}},
	}
	h := newHarness(t, o, tfesim.Options{NoNativeRunTriggers: true})
	d, _ := h.engine(fastOptions())
	root := h.start("root")
	waitFor(t, "the lock to be alerted", func() bool { return len(h.alerts.Of(alerts.KindWorkspaceLocked)) > 0 })
	if _, err := h.client.Workspaces.ForceUnlock(h.ctx, h.id("locked")); err != nil {
		t.Fatal(err)
	}
	v := h.done(d, cascade.ID(root), 30*time.Second)
	want := map[string]cascade.State{"local": cascade.Blocked, "empty": cascade.Blocked, "locked": cascade.Applied}
	for _, m := range v.Members {
		if m.State != want[m.Name] {
			t.Errorf("%s: got %s (%s), want %s", m.Name, m.State, m.Reason, want[m.Name])
		}
	}
}

// A dry run decides everything and writes nothing to TFE.
func TestDryRun(t *testing.T) {
	t.Parallel()
	h := newHarness(t, chain(4, triggerApply, 20), tfesim.Options{NoNativeRunTriggers: true})
	opts := fastOptions()
	opts.DryRun = true
	d, _ := h.engine(opts)
	root := h.start("c00")
	v := h.done(d, cascade.ID(root), 30*time.Second)
	if v.Outcome != cascade.OutcomeDryRun {
		t.Fatalf("got %s:%s", v.Outcome, states(v))
	}
	for _, n := range []string{"c01", "c02", "c03"} {
		if got := h.runs(n); len(got) != 0 {
			t.Errorf("%s: a dry run created %d runs", n, len(got))
		}
	}
}

// waitFor waits up to 30 s for cond.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 30*time.Second, cond)
}

var _ = fmt.Sprint
var _ = dispatcher.StateDone
