package cascade

import (
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Facts are what the engine observed in TFE for one decision.
type Facts struct {
	// Workspaces are the members seen: each workspace with its current run
	// (the run that holds it, or last held it), by workspace ID.
	Workspaces map[string]Workspace
	// Quiet are members covered by a read of the workspace list newest
	// first without being seen: none has a current run created at or after
	// the time given.
	Quiet map[string]time.Time
	// Runs are runs read one by one, by ID.
	Runs map[string]Run
	// Lists are members' recent runs, newest first, by workspace ID: read
	// where the current run is not enough (before creating a run, or to
	// find the run a lost attempt created).
	Lists map[string][]Run
	// HeldBy names, for a member workspace that an older open cascade holds,
	// that cascade: it acts in the workspace first.
	HeldBy map[string]string
	// Self is the ID of the TFE user the engine acts as: a workspace it
	// locked shows this user. Empty when unknown: then no hold is taken.
	Self string
	// Tools says which Terraform versions the installation enables; nil
	// when unknown (no admin API).
	Tools map[string]Tool
	// Outputs are comparisons of upstream runs' outputs, by run ID: the
	// state version the run wrote against the one before it. Read when a
	// decision asks (Needs.Outputs).
	Outputs map[string]OutputsDiff
}

// OutputsDiff is what a comparison of the outputs a run wrote found. It
// holds output names only, never values.
type OutputsDiff struct {
	// Changed names the outputs added, removed, or whose value differs
	// from the state version before, in name order.
	Changed []string
	// Count is how many outputs the run's state version holds.
	Count int
	// Pending: TFE has not processed the state version yet, so its outputs
	// cannot be read yet. At is TFE's time when that was seen (zero when
	// TFE did not say).
	Pending bool
	At      time.Time
	// Unknown, when set, says why the outputs cannot be compared: 403, no
	// state version before it, a newer state version written since, a
	// sensitive value that cannot be read. The member runs.
	Unknown string
}

// Workspace is a member's workspace as TFE reported it.
type Workspace struct {
	ID   string
	Name string
	// Missing: TFE answered 404 for it.
	Missing bool
	Locked  bool
	// LockedByRun is the run holding the lock, when a run holds it;
	// otherwise a person or team holds it (LockedBy).
	LockedByRun string
	LockedBy    string
	// LockedByUser is the ID of the user holding the lock, when a user
	// holds it.
	LockedByUser        string
	ExecutionMode       string
	HasConfiguration    bool
	TerraformVersion    string
	AutoApply           bool
	AutoApplyRunTrigger bool
	Tags                []string
	// Current is the workspace's current run; nil when it never ran.
	Current *Run
}

// Run is a run as TFE reported it.
type Run struct {
	ID          string
	WorkspaceID string
	Status      string
	// Source is "tfe-run-trigger" for runs TFE's run triggers queued.
	Source    string
	Message   string
	CreatedAt time.Time
	// StatusAt is when the run entered its status, in TFE's time; zero
	// when TFE did not say.
	StatusAt    time.Time
	AutoApply   bool
	IsDestroy   bool
	PlanOnly    bool
	Discardable bool
	Cancelable  bool
	Confirmable bool
	// Gone: TFE answered 404 for the run (its workspace was deleted).
	Gone bool
}

// Tool is a Terraform version as the installation lists it.
type Tool struct {
	Enabled, Deprecated bool
}

// SourceRunTrigger is the source of runs TFE's native run triggers queue.
const SourceRunTrigger = "tfe-run-trigger"

// Native reports whether TFE's run triggers queued the run.
func (r *Run) Native() bool { return r.Source == SourceRunTrigger }

// stopped reports whether the run ended by being stopped, not by its own
// plan or apply.
func (r Run) stopped() bool {
	return r.Status == runstatus.Canceled || r.Status == runstatus.ForceCanceled || r.Status == runstatus.Discarded
}

// Final reports whether a run status is one a run never leaves.
func Final(status string) bool { return runstatus.Final(status) }

// awaitsPerson reports whether a run in its status waits for a person:
// to confirm its plan, or to decide on a policy or a run task.
func (r *Run) awaitsPerson() bool {
	switch r.Status {
	case runstatus.PolicyOverride, runstatus.PolicySoftFailed, runstatus.PostPlanAwaitingDecision:
		return true
	case runstatus.Planned, runstatus.CostEstimated, runstatus.PolicyChecked, runstatus.PostPlanCompleted:
		return !r.AutoApply
	}
	return false
}

// outcome maps a final run status to the member state it ends in.
func outcome(status string) State {
	switch status {
	case runstatus.Applied:
		return Applied
	case runstatus.PlannedAndFinished, runstatus.PlannedAndSaved:
		return NoChanges
	}
	return Failed
}

// applying reports whether a run is confirmed to apply or applying:
// stopping it now may interrupt an apply, so the cascade does not.
func (r *Run) applying() bool {
	switch r.Status {
	case runstatus.Applying, runstatus.ApplyQueued, runstatus.Confirmed, runstatus.QueuingApply:
		return true
	}
	return false
}
