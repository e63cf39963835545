package dispatcher_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// The API cost of a cascade, from the simulator's counters, with TFE's
// native run triggers firing. With the graph known (warm), a chain costs
// about one call per member; a member with several upstreams whose runs
// apply on their own is held (C13), which costs about five calls more
// (see docs/benchmarks.md, where the figures are measured); read cold, the
// graph costs one call per workspace more.
func TestAPICostPerMember(t *testing.T) {
	// Not beside the other engine tests: the figure is measured, and how
	// events fall into looks depends on how busy the machine is. The cases
	// run beside each other.
	for _, tc := range []struct {
		name    string
		org     org
		root    string
		members int
		fanIns  int // members with several upstreams: held (C13)
	}{
		{"chain of 20", chain(20, triggerApply, 300), "c00", 19, 0},
		{"layers of 5 where each member has two upstreams", layered(3, 5, triggerApply, 1500, 20), "root", 15, 10},
		// TFE may sort workspaces that never ran first in a list sorted by
		// current run (docs/tfesim.md: inferred, and the simulator does):
		// the economy must not depend on it.
		{"chain of 20 among 500 workspaces that never ran", withNeverRun(chain(20, triggerApply, 300), 500), "c00", 19, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // each on its own harness
			// The bound is a guard against reads that grow with the cascade
			// (a look reading every member one by one), not a figure: how
			// events fall into looks depends on the machine's speed. It is
			// two calls a member, plus five for each held member (lock,
			// unlock, the list that finds its run behind the hold, the
			// stop of the run queued too early, the list that confirms
			// it), plus the graph's reads when cold.
			warmMax := 2.0 + 5*float64(tc.fanIns)/float64(tc.members)
			coldMax := warmMax + 2.5
			h := newHarness(t, tc.org, tfesim.Options{})
			opts := fastOptions()
			opts.Debounce, opts.Policy.Recheck = 500*time.Millisecond, time.Minute
			d, _ := h.engine(opts)
			cost := func() float64 {
				h.sim.ResetStats()
				root := h.start(tc.root)
				// A deadline generous enough for a loaded machine, not a speed.
				v := h.done(d, cascade.ID(root), 3*time.Minute)
				calls := apiCalls(h.sim.Stats()) - 1 // the root run the test created
				t.Logf("requests: %v", h.sim.Stats().Requests)
				if v.Outcome != cascade.OutcomeApplied {
					t.Fatalf("got %s:%s", v.Outcome, states(v))
				}
				h.checkOnce(v, root)
				return float64(calls) / float64(tc.members)
			}
			cold := cost()
			warm := cost()
			t.Logf("API calls per member: cold %.2f, warm %.2f", cold, warm)
			if warm > warmMax || cold > coldMax {
				t.Errorf("API calls per member: cold %.2f (at most %.1f), warm %.2f (at most %.1f)", cold, coldMax, warm, warmMax)
			}
		})
	}
}

// withNeverRun adds n workspaces that never ran to an organization.
func withNeverRun(o org, n int) org {
	for i := range n {
		o.workspaces = append(o.workspaces, wsKind(fmt.Sprintf("idle-%04d", i), triggerApply, 20, 20))
	}
	return o
}
