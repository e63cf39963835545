package tfeclient

import (
	"time"

	tfe "github.com/hashicorp/go-tfe"
)

// Run is what the orchestrator reads of a TFE run.
type Run struct {
	ID string
	// Status is TFE's status of the run (the vocabulary of runstatus).
	Status    string
	CreatedAt time.Time
	// StatusAt is when the run entered Status, by TFE's status timestamps
	// (see the function StatusAt): zero when TFE did not say.
	StatusAt time.Time
	// WorkspaceID and Organization (a name) are the run's workspace and
	// its organization, when TFE said.
	WorkspaceID, Organization string
	// Actions are what TFE allows of the run now; all false when TFE did
	// not say.
	Actions RunActions
}

// RunActions say what TFE allows of a run now.
type RunActions struct {
	Cancelable, ForceCancelable, Discardable bool
}

func runOf(r *tfe.Run) Run {
	out := Run{ID: r.ID, Status: string(r.Status), CreatedAt: r.CreatedAt, StatusAt: StatusAt(r.Status, r.StatusTimestamps)}
	if r.Workspace != nil {
		out.WorkspaceID = r.Workspace.ID
		if r.Workspace.Organization != nil {
			out.Organization = r.Workspace.Organization.Name
		}
	}
	if a := r.Actions; a != nil {
		out.Actions = RunActions{Cancelable: a.IsCancelable, ForceCancelable: a.IsForceCancelable, Discardable: a.IsDiscardable}
	}
	return out
}
