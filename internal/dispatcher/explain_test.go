package dispatcher_test

import (
	"fmt"
	"strings"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// inTFE says, for a test that timed out, what TFE shows of every member
// the cascade has not finished with: its workspace's lock and its runs,
// read with the faults off so that the account is complete.
func (h *harness) inTFE(v *dispatcher.View) string {
	if err := h.sim.SetFaults(tfesim.Faults{}); err != nil {
		return "\nin TFE: " + err.Error()
	}
	var b strings.Builder
	b.WriteString("\nin TFE:")
	for _, m := range v.Members {
		if m.State.Final() && (m.Hold == "" || m.Hold == "released" || m.Hold == "lifted") {
			continue
		}
		ws, err := h.client.Workspaces.ReadByID(h.ctx, m.WorkspaceID)
		if err != nil {
			fmt.Fprintf(&b, "\n  %s: %v", m.Name, err)
			continue
		}
		lock := "unlocked"
		if ws.Locked {
			lock = "locked by " + lockedBy(ws)
		}
		list, err := h.client.Runs.List(h.ctx, m.WorkspaceID, &tfe.RunListOptions{ListOptions: tfe.ListOptions{PageSize: 100}})
		if err != nil {
			fmt.Fprintf(&b, "\n  %s: %s; runs: %v", m.Name, lock, err)
			continue
		}
		fmt.Fprintf(&b, "\n  %s: %s, stopped %d; runs:%s", m.Name, lock, m.Stopped, describeRuns(list.Items))
	}
	return b.String()
}

func lockedBy(ws *tfe.Workspace) string {
	switch lb := ws.LockedBy; {
	case lb == nil:
		return "?"
	case lb.Run != nil:
		return "run " + lb.Run.ID
	case lb.User != nil:
		return "user " + lb.User.ID
	case lb.Team != nil:
		return "team " + lb.Team.ID
	}
	return "?"
}
