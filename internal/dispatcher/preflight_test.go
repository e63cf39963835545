package dispatcher_test

import (
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
)

// A target that a run holds (here a person's run waiting for confirmation)
// is not waited for: the cascade's run is created at once and queues
// behind it, as TFE queues runs, and no lock alert is raised.
func TestTargetHeldByRunIsDispatched(t *testing.T) {
	o := chain(2)
	h := newHarness(t, o, noNative)
	held, err := h.client.Runs.Create(h.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: h.id("c01")}, AutoApply: tfe.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	h.waitFor("the person's run to wait for confirmation", 10*time.Second, func() bool {
		r, err := h.client.Runs.Read(h.ctx, held.ID)
		return err == nil && r.Status == tfe.RunPlanned
	})
	h.dispatcher(fastOptions(), nil)
	h.start("c00")
	h.waitFor("the cascade's run to queue behind the held lock", 30*time.Second, func() bool {
		rs := h.cascadeRuns("c01")
		return len(rs) == 1 && rs[0].Status == tfe.RunPending
	})
	if got := h.alerts.Of(alerts.KindWorkspaceLocked); len(got) != 0 {
		t.Errorf("lock alerts: got %+v, want none for a lock a run holds", got)
	}
	if err := h.client.Runs.Discard(h.ctx, held.ID, tfe.RunDiscardOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the cascade's run to apply", 30*time.Second, func() bool { return h.applied("c01") })
}
