package tfeclient

import (
	"context"
	"fmt"

	tfe "github.com/hashicorp/go-tfe"
)

// RunTrigger is a run trigger: a run applied in the source workspace
// queues a run in the target workspace.
type RunTrigger struct {
	// SourceID is the source workspace: "" when TFE named none (a source
	// that is not a workspace).
	SourceID, SourceName string
	// TargetID is the target workspace: "" when TFE named none.
	TargetID, TargetName string
}

// TriggerDirection says which of a workspace's run triggers to list.
type TriggerDirection string

// Directions, as TFE's filter[run-trigger][type] names them.
const (
	// Inbound: the triggers whose target is the workspace.
	Inbound = TriggerDirection(tfe.RunTriggerInbound)
	// Outbound: the triggers whose source is the workspace.
	Outbound = TriggerDirection(tfe.RunTriggerOutbound)
)

// RunTriggerLister reads a workspace's run triggers.
type RunTriggerLister interface {
	// ListRunTriggers reads every run trigger of the workspace in the
	// direction, in TFE's order: one call per page of PageSize triggers.
	ListRunTriggers(ctx context.Context, workspaceID string, dir TriggerDirection) ([]RunTrigger, error)
}

// ListRunTriggers implements RunTriggerLister.
func (t *TFE) ListRunTriggers(ctx context.Context, workspaceID string, dir TriggerDirection) ([]RunTrigger, error) {
	opts := &tfe.RunTriggerListOptions{RunTriggerType: tfe.RunTriggerFilterOp(dir)}
	rts, err := All(ctx, func(ctx context.Context, page tfe.ListOptions) ([]*tfe.RunTrigger, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := t.client.RunTriggers.List(ctx, workspaceID, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list %s run triggers of %s: %w", dir, workspaceID, err)
		}
		return l.Items, l.Pagination, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]RunTrigger, 0, len(rts))
	for _, rt := range rts {
		r := RunTrigger{SourceName: rt.SourceableName, TargetName: rt.WorkspaceName}
		switch {
		case rt.SourceableChoice != nil && rt.SourceableChoice.Workspace != nil:
			r.SourceID = rt.SourceableChoice.Workspace.ID
		case rt.Sourceable != nil:
			r.SourceID = rt.Sourceable.ID
		}
		if rt.Workspace != nil {
			r.TargetID = rt.Workspace.ID
		}
		out = append(out, r)
	}
	return out, nil
}
