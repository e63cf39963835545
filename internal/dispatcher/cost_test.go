package dispatcher_test

import (
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// The API cost of a cascade, from the simulator's counters, with TFE's
// native run triggers firing. With the graph known (warm), the normal path
// costs about 1.1 calls per member for chains and for layers where each
// member has two upstreams (a run stopped per member that two upstreams
// queue runs in, plus the reads, shared by the members they cover; see
// docs/benchmarks.md); read cold, the graph costs one call per workspace
// more. The bound here leaves room for a loaded machine, where events
// that come apart in time are read together and a run queued behind
// another is listed: the benchmarks measure the cost itself.
func TestAPICostPerMember(t *testing.T) {
	for _, tc := range []struct {
		name    string
		org     org
		root    string
		warmMax float64
		coldMax float64
		members int
	}{
		{"chain of 20", chain(20, triggerApply, 300), "c00", 1.3, 2.5, 19},
		{"layers of 5 where each member has two upstreams", layered(3, 5, triggerApply, 1500, 20), "root", 1.3, 2.5, 15},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.org, tfesim.Options{})
			// Events a moment apart are read in one look; runs plan for
			// longer than that, as real ones do, so one queued too early is
			// still stopped in time.
			opts := fastOptions()
			opts.Debounce, opts.Policy.Recheck = 500*time.Millisecond, time.Minute
			d, _ := h.engine(opts)
			cost := func() float64 {
				h.sim.ResetStats()
				root := h.start(tc.root)
				// A deadline generous enough for a loaded machine, not a speed.
				v := h.done(d, cascade.ID(root), 3*time.Minute)
				calls := apiCalls(h.sim.Stats()) - 1 // the root run the test created
				if v.Outcome != cascade.OutcomeApplied {
					t.Fatalf("got %s:%s", v.Outcome, states(v))
				}
				h.checkOnce(v, root)
				return float64(calls) / float64(tc.members)
			}
			cold := cost()
			warm := cost()
			t.Logf("API calls per member: cold %.2f, warm %.2f", cold, warm)
			if warm > tc.warmMax || cold > tc.coldMax {
				t.Errorf("API calls per member: cold %.2f (at most %.1f), warm %.2f (at most %.1f)", cold, tc.coldMax, warm, tc.warmMax)
			}
		})
	}
}
