package tfeclient

import (
	"context"
	"fmt"
	"time"

	tfe "github.com/hashicorp/go-tfe"
)

// Workspace is what the orchestrator reads of a TFE workspace.
type Workspace struct {
	ID, Name string
	// Organization is the name of the workspace's organization.
	Organization  string
	ExecutionMode string
	// Operations: TFE runs the workspace's plans and applies (the
	// setting that came before ExecutionMode; false with no mode is
	// local execution).
	Operations bool
	// TerraformVersion is the version (or constraint) the workspace's
	// runs use.
	TerraformVersion string
	// HasConfiguration: the workspace has a current configuration
	// version, which a run can be queued on.
	HasConfiguration bool
	// AutoApply and AutoApplyRunTrigger are the workspace's settings:
	// its runs, and the runs its run triggers queue, apply once planned.
	AutoApply, AutoApplyRunTrigger bool
	// Tags are the names of the workspace's tags.
	Tags   []string
	Locked bool
	// LockedByRun is the run holding the workspace's lock: "" when a
	// person or team holds it, or nobody does.
	LockedByRun string
	// LockedByUser and LockedByTeam are the user or the team (an ID)
	// holding the lock: "" when TFE named no such holder. LockedByUsername
	// and LockedByTeamName are their names, when TFE included them (a
	// plain read names the holder by ID only).
	LockedByUser, LockedByUsername, LockedByTeam, LockedByTeamName string
	// The averages of the workspace's plans and applies, as durations
	// whether the workspace was read or listed (go-tfe's list leaves them
	// in milliseconds counted as nanoseconds; they are converted here).
	PlanDurationAverage, ApplyDurationAverage time.Duration
	// CurrentRun is the workspace's current run, when it was listed with
	// WorkspaceQuery.CurrentRun and has one.
	CurrentRun *Run
}

// WorkspaceQuery says which workspaces of an organization a list reads,
// and what it reads with them.
type WorkspaceQuery struct {
	// Tags, when set, keeps the workspaces with all these tags
	// (comma-separated), as TFE's search[tags] does.
	Tags string
	// CurrentRun reads each workspace's current run with it, at no cost
	// of further calls.
	CurrentRun bool
	// CurrentRunStatus, when set, keeps the workspaces whose current run
	// is in one of these statuses (comma-separated), as TFE's
	// filter[current-run][status] does.
	CurrentRunStatus string
	// Sort is TFE's order of the list (its sort parameter, such as
	// "-current-run.created-at"); "" is TFE's default.
	Sort string
}

// WorkspaceLister reads the workspaces of an organization.
type WorkspaceLister interface {
	// ListWorkspaces gives the workspaces of organization that q selects
	// to each, a page at a time and in TFE's order, until each says it
	// has seen enough (more false), after the last page, or at the first
	// error, of TFE's (with context) or of each's (as is). One call per
	// page of PageSize workspaces.
	ListWorkspaces(ctx context.Context, organization string, q WorkspaceQuery, each func(page []Workspace) (more bool, err error)) error
}

// WorkspacePager reads the workspaces of an organization a page at a
// time, for a caller that shares or bounds its reads page by page
// (ReadPages).
type WorkspacePager interface {
	// ListWorkspacesPage reads the page of this number (0: the first) of
	// the workspaces of organization that q selects, PageSize to a page,
	// as ListWorkspaces gives them: one call.
	ListWorkspacesPage(ctx context.Context, organization string, q WorkspaceQuery, page int) (Page[Workspace], error)
}

// WorkspaceReader reads one workspace.
type WorkspaceReader interface {
	// ReadWorkspace reads the workspace of this ID: one call. An ID TFE
	// does not know is an error Classify calls Gone.
	ReadWorkspace(ctx context.Context, workspaceID string) (Workspace, error)
}

// CurrentRunReader reads one workspace with its current run.
type CurrentRunReader interface {
	// ReadWorkspaceWithCurrentRun reads the workspace of this ID as
	// ReadWorkspace does, with its current run (CurrentRun, nil when it
	// has none) at no cost of a further call.
	ReadWorkspaceWithCurrentRun(ctx context.Context, workspaceID string) (Workspace, error)
}

// ListWorkspaces implements WorkspaceLister.
func (t *TFE) ListWorkspaces(ctx context.Context, organization string, q WorkspaceQuery, each func(page []Workspace) (bool, error)) error {
	_, err := ReadPages(ctx, func(ctx context.Context, page int) (Page[Workspace], error) {
		return t.ListWorkspacesPage(ctx, organization, q, page)
	}, 0, each)
	return err
}

// ListWorkspacesPage implements WorkspacePager.
func (t *TFE) ListWorkspacesPage(ctx context.Context, organization string, q WorkspaceQuery, page int) (Page[Workspace], error) {
	opts := &tfe.WorkspaceListOptions{Tags: q.Tags, CurrentRunStatus: q.CurrentRunStatus, Sort: q.Sort,
		ListOptions: tfe.ListOptions{PageNumber: page, PageSize: PageSize}}
	if q.CurrentRun {
		opts.Include = []tfe.WSIncludeOpt{tfe.WSCurrentRun}
	}
	l, err := t.client.Workspaces.List(ctx, organization, opts)
	if err != nil {
		return Page[Workspace]{}, fmt.Errorf("list workspaces of %s: %w", organization, err)
	}
	out := Page[Workspace]{Items: make([]Workspace, 0, len(l.Items))}
	if l.Pagination != nil {
		out.Next = l.Pagination.NextPage
	}
	for _, w := range l.Items {
		ws := workspaceOf(w)
		ws.PlanDurationAverage *= time.Millisecond
		ws.ApplyDurationAverage *= time.Millisecond
		if ws.Organization == "" {
			ws.Organization = organization
		}
		if q.CurrentRun {
			ws.CurrentRun = currentRunOf(w, ws)
		}
		out.Items = append(out.Items, ws)
	}
	return out, nil
}

// currentRunOf is w's current run, read with it, as a Run of ws; nil when
// it has none.
func currentRunOf(w *tfe.Workspace, ws Workspace) *Run {
	if w.CurrentRun == nil || w.CurrentRun.ID == "" {
		return nil
	}
	r := runOf(w.CurrentRun)
	r.WorkspaceID, r.WorkspaceName, r.Organization = ws.ID, ws.Name, ws.Organization
	return &r
}

// ReadWorkspace implements WorkspaceReader.
func (t *TFE) ReadWorkspace(ctx context.Context, workspaceID string) (Workspace, error) {
	w, err := t.client.Workspaces.ReadByID(ctx, workspaceID)
	if err != nil {
		return Workspace{}, fmt.Errorf("read workspace %s: %w", workspaceID, err)
	}
	return workspaceOf(w), nil
}

// ReadWorkspaceWithCurrentRun implements CurrentRunReader.
func (t *TFE) ReadWorkspaceWithCurrentRun(ctx context.Context, workspaceID string) (Workspace, error) {
	w, err := t.client.Workspaces.ReadByIDWithOptions(ctx, workspaceID, &tfe.WorkspaceReadOptions{Include: []tfe.WSIncludeOpt{tfe.WSCurrentRun}})
	if err != nil {
		return Workspace{}, fmt.Errorf("read workspace %s: %w", workspaceID, err)
	}
	ws := workspaceOf(w)
	ws.CurrentRun = currentRunOf(w, ws)
	return ws, nil
}

func workspaceOf(w *tfe.Workspace) Workspace {
	ws := Workspace{ID: w.ID, Name: w.Name, ExecutionMode: w.ExecutionMode, Operations: w.Operations,
		TerraformVersion: w.TerraformVersion, HasConfiguration: w.CurrentConfigurationVersion != nil && w.CurrentConfigurationVersion.ID != "",
		AutoApply: w.AutoApply, AutoApplyRunTrigger: w.AutoApplyRunTrigger, Tags: w.TagNames, Locked: w.Locked,
		PlanDurationAverage: w.PlanDurationAverage, ApplyDurationAverage: w.ApplyDurationAverage}
	if w.Organization != nil {
		ws.Organization = w.Organization.Name
	}
	if lb := w.LockedBy; w.Locked && lb != nil {
		if lb.Run != nil {
			ws.LockedByRun = lb.Run.ID
		}
		if lb.User != nil {
			ws.LockedByUser, ws.LockedByUsername = lb.User.ID, lb.User.Username
		}
		if lb.Team != nil {
			ws.LockedByTeam, ws.LockedByTeamName = lb.Team.ID, lb.Team.Name
		}
	}
	return ws
}
