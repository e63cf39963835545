package tfeclient

import (
	"context"
	"fmt"
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
	// its organization, when TFE said; WorkspaceName when the workspace
	// was read with the run (ReadRunWithWorkspace).
	WorkspaceID, WorkspaceName, Organization string
	// Source is what queued the run, as TFE names it (tfe-api,
	// tfe-run-trigger, ...); Message is its message.
	Source, Message string
	// AutoApply: the run applies once planned. IsDestroy: it destroys
	// the workspace's resources. PlanOnly: it never applies.
	AutoApply, IsDestroy, PlanOnly bool
	// Actions are what TFE allows of the run now; all false when TFE did
	// not say.
	Actions RunActions
}

// RunActions say what TFE allows of a run now.
type RunActions struct {
	Cancelable, ForceCancelable, Discardable, Confirmable bool
}

func runOf(r *tfe.Run) Run {
	out := Run{ID: r.ID, Status: string(r.Status), CreatedAt: r.CreatedAt, StatusAt: StatusAt(r.Status, r.StatusTimestamps),
		Source: string(r.Source), Message: r.Message, AutoApply: r.AutoApply, IsDestroy: r.IsDestroy, PlanOnly: r.PlanOnly}
	if r.Workspace != nil {
		out.WorkspaceID, out.WorkspaceName = r.Workspace.ID, r.Workspace.Name
		if r.Workspace.Organization != nil {
			out.Organization = r.Workspace.Organization.Name
		}
	}
	if a := r.Actions; a != nil {
		out.Actions = RunActions{Cancelable: a.IsCancelable, ForceCancelable: a.IsForceCancelable, Discardable: a.IsDiscardable,
			Confirmable: a.IsConfirmable}
	}
	return out
}

// RunReader reads one run.
type RunReader interface {
	// ReadRun reads the run of this ID: one call. A run TFE does not know
	// (its workspace was deleted) is an error Classify calls Gone.
	ReadRun(ctx context.Context, runID string) (Run, error)
}

// RunWorkspaceReader reads one run with its workspace.
type RunWorkspaceReader interface {
	// ReadRunWithWorkspace reads the run of this ID as ReadRun does,
	// with its workspace's name and organization (WorkspaceName,
	// Organization) at no cost of a further call.
	ReadRunWithWorkspace(ctx context.Context, runID string) (Run, error)
}

// RunLister reads a workspace's latest runs.
type RunLister interface {
	// ListRuns reads the workspace's newest runs, newest first, at most
	// n (up to PageSize): one call. A workspace TFE does not know is an
	// error Classify calls Gone.
	ListRuns(ctx context.Context, workspaceID string, n int) ([]Run, error)
}

// RunStopper stops a run with a user's actions, each one call, leaving
// comment on the run. TFE refuses an action its Actions do not allow.
type RunStopper interface {
	// CancelRun asks TFE to cancel the run: it interrupts a plan or an
	// apply, gracefully.
	CancelRun(ctx context.Context, runID, comment string) error
	// ForceCancelRun ends the run at once; TFE allows it some time after
	// a cancel.
	ForceCancelRun(ctx context.Context, runID, comment string) error
	// DiscardRun discards a run that waits for a confirmation.
	DiscardRun(ctx context.Context, runID, comment string) error
}

// ReadRun implements RunReader.
func (t *TFE) ReadRun(ctx context.Context, runID string) (Run, error) {
	r, err := t.client.Runs.Read(ctx, runID)
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", runID, err)
	}
	return runOf(r), nil
}

// ReadRunWithWorkspace implements RunWorkspaceReader.
func (t *TFE) ReadRunWithWorkspace(ctx context.Context, runID string) (Run, error) {
	r, err := t.client.Runs.ReadWithOptions(ctx, runID, &tfe.RunReadOptions{Include: []tfe.RunIncludeOpt{tfe.RunWorkspace}})
	if err != nil {
		return Run{}, fmt.Errorf("read run %s: %w", runID, err)
	}
	return runOf(r), nil
}

// ListRuns implements RunLister.
func (t *TFE) ListRuns(ctx context.Context, workspaceID string, n int) ([]Run, error) {
	l, err := t.client.Runs.List(ctx, workspaceID, &tfe.RunListOptions{ListOptions: tfe.ListOptions{PageSize: n}})
	if err != nil {
		return nil, fmt.Errorf("list the runs of %s: %w", workspaceID, err)
	}
	out := make([]Run, 0, len(l.Items))
	for _, r := range l.Items {
		out = append(out, runOf(r))
	}
	return out, nil
}

// CancelRun implements RunStopper.
func (t *TFE) CancelRun(ctx context.Context, runID, comment string) error {
	if err := t.client.Runs.Cancel(ctx, runID, tfe.RunCancelOptions{Comment: optional(comment)}); err != nil {
		return fmt.Errorf("cancel run %s: %w", runID, err)
	}
	return nil
}

// ForceCancelRun implements RunStopper.
func (t *TFE) ForceCancelRun(ctx context.Context, runID, comment string) error {
	if err := t.client.Runs.ForceCancel(ctx, runID, tfe.RunForceCancelOptions{Comment: optional(comment)}); err != nil {
		return fmt.Errorf("force-cancel run %s: %w", runID, err)
	}
	return nil
}

// DiscardRun implements RunStopper.
func (t *TFE) DiscardRun(ctx context.Context, runID, comment string) error {
	if err := t.client.Runs.Discard(ctx, runID, tfe.RunDiscardOptions{Comment: optional(comment)}); err != nil {
		return fmt.Errorf("discard run %s: %w", runID, err)
	}
	return nil
}

// RunOptions are what a run is created with.
type RunOptions struct {
	// Message is the run's message in TFE's UI.
	Message string
	// AutoApply applies the run once planned, whatever the workspace's
	// setting; false leaves it to the workspace, unless SetAutoApply.
	AutoApply bool
	// SetAutoApply sends AutoApply as it is, false too: a run created
	// with AutoApply false then waits for a confirmation whatever the
	// workspace's setting.
	SetAutoApply bool
}

// RunStarter queues runs.
type RunStarter interface {
	// CreateRun queues a run in the workspace on its current
	// configuration: one call.
	CreateRun(ctx context.Context, workspaceID string, o RunOptions) (Run, error)
}

// RunApplier confirms runs.
type RunApplier interface {
	// ApplyRun confirms a run that waits for a person, leaving comment on
	// it: one call.
	ApplyRun(ctx context.Context, runID, comment string) error
}

// CreateRun implements RunStarter.
func (t *TFE) CreateRun(ctx context.Context, workspaceID string, o RunOptions) (Run, error) {
	opts := tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: workspaceID}, Message: optional(o.Message)}
	if o.AutoApply || o.SetAutoApply {
		opts.AutoApply = tfe.Bool(o.AutoApply)
	}
	r, err := t.client.Runs.Create(ctx, opts)
	if err != nil {
		return Run{}, fmt.Errorf("create run in %s: %w", workspaceID, err)
	}
	return runOf(r), nil
}

// ApplyRun implements RunApplier.
func (t *TFE) ApplyRun(ctx context.Context, runID, comment string) error {
	if err := t.client.Runs.Apply(ctx, runID, tfe.RunApplyOptions{Comment: optional(comment)}); err != nil {
		return fmt.Errorf("apply run %s: %w", runID, err)
	}
	return nil
}
