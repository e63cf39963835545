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
	Locked        bool
	// LockedByRun is the run holding the workspace's lock: "" when a
	// person or team holds it, or nobody does.
	LockedByRun string
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

// WorkspaceReader reads one workspace.
type WorkspaceReader interface {
	// ReadWorkspace reads the workspace of this ID: one call. An ID TFE
	// does not know is an error Classify calls Gone.
	ReadWorkspace(ctx context.Context, workspaceID string) (Workspace, error)
}

// ListWorkspaces implements WorkspaceLister.
func (t *TFE) ListWorkspaces(ctx context.Context, organization string, q WorkspaceQuery, each func(page []Workspace) (bool, error)) error {
	opts := &tfe.WorkspaceListOptions{Tags: q.Tags}
	if q.CurrentRun {
		opts.Include = []tfe.WSIncludeOpt{tfe.WSCurrentRun}
	}
	list := func(ctx context.Context, page tfe.ListOptions) ([]*tfe.Workspace, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := t.client.Workspaces.List(ctx, organization, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list workspaces of %s: %w", organization, err)
		}
		return l.Items, l.Pagination, nil
	}
	_, err := EachPage(ctx, list, 0, func(items []*tfe.Workspace) (bool, error) {
		page := make([]Workspace, 0, len(items))
		for _, w := range items {
			ws := workspaceOf(w)
			ws.PlanDurationAverage *= time.Millisecond
			ws.ApplyDurationAverage *= time.Millisecond
			if ws.Organization == "" {
				ws.Organization = organization
			}
			if q.CurrentRun && w.CurrentRun != nil {
				r := runOf(w.CurrentRun)
				r.WorkspaceID, r.Organization = ws.ID, ws.Organization
				ws.CurrentRun = &r
			}
			page = append(page, ws)
		}
		return each(page)
	})
	return err
}

// ReadWorkspace implements WorkspaceReader.
func (t *TFE) ReadWorkspace(ctx context.Context, workspaceID string) (Workspace, error) {
	w, err := t.client.Workspaces.ReadByID(ctx, workspaceID)
	if err != nil {
		return Workspace{}, fmt.Errorf("read workspace %s: %w", workspaceID, err)
	}
	return workspaceOf(w), nil
}

func workspaceOf(w *tfe.Workspace) Workspace {
	ws := Workspace{ID: w.ID, Name: w.Name, ExecutionMode: w.ExecutionMode, Locked: w.Locked,
		PlanDurationAverage: w.PlanDurationAverage, ApplyDurationAverage: w.ApplyDurationAverage}
	if w.Organization != nil {
		ws.Organization = w.Organization.Name
	}
	if w.Locked && w.LockedBy != nil && w.LockedBy.Run != nil {
		ws.LockedByRun = w.LockedBy.Run.ID
	}
	return ws
}
