package dispatcher_test

import (
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// While a run plans in a workspace no cascade holds, the engine reads the
// run triggers of its closure: should the run apply, the cascade it starts
// knows its fan-ins at once. Here the root plans for ten minutes, so what
// is read was read while it planned.
func TestRunTriggersReadWhileTheRootPlans(t *testing.T) {
	t.Parallel()
	o := org{workspaces: []tfesim.WorkspaceSpec{
		wsKind("root", autoApply, 600_000, 50),
		wsKind("a", triggerApply, 50, 50), wsKind("b", triggerApply, 50, 50), wsKind("sink", triggerApply, 50, 50),
	}, edges: [][2]string{{"root", "a"}, {"root", "b"}, {"a", "sink"}, {"b", "sink"}}}
	h := newHarness(t, o, tfesim.Options{})
	h.engine(fastOptions())
	h.sim.ResetStats()
	run := h.start("root")
	testutil.WaitFor(t, "the closure's run triggers to be read", time.Minute, func() bool {
		return costOf(h.sim.Stats()).TriggerLists >= 4
	})
	r, err := h.client.Runs.Read(h.ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status == tfe.RunApplied || r.Status == tfe.RunApplying {
		t.Fatalf("the root is %s: the read was not made while it planned", r.Status)
	}
}
