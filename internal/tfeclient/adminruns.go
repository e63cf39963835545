package tfeclient

import (
	"context"
	"fmt"
	"strings"

	tfe "github.com/hashicorp/go-tfe"
)

// AdminRuns reach the runs of every organization through TFE's admin API,
// which needs a site-admin token and which HCP Terraform does not have.
type AdminRuns interface {
	// ListAdminRuns reads every run, of every organization, whose status
	// is one of statuses: one call per page of PageSize runs. A run's
	// WorkspaceID and Organization are empty when TFE did not say.
	ListAdminRuns(ctx context.Context, statuses []string) ([]Run, error)
	// AdminForceCancelRun ends the run at once, leaving comment on it:
	// one call. TFE ends it canceled.
	AdminForceCancelRun(ctx context.Context, runID, comment string) error
}

// ListAdminRuns implements AdminRuns.
func (t *TFE) ListAdminRuns(ctx context.Context, statuses []string) ([]Run, error) {
	opts := &tfe.AdminRunsListOptions{RunStatus: strings.Join(statuses, ",")}
	runs, err := All(ctx, func(ctx context.Context, page tfe.ListOptions) ([]*tfe.AdminRun, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := t.client.Admin.Runs.List(ctx, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list the runs of every organization: %w", err)
		}
		return l.Items, l.Pagination, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Run, 0, len(runs))
	for _, r := range runs {
		run := Run{ID: r.ID, Status: string(r.Status), CreatedAt: r.CreatedAt, StatusAt: StatusAt(r.Status, r.StatusTimestamps)}
		if r.Workspace != nil {
			run.WorkspaceID = r.Workspace.ID
		}
		if r.Organization != nil {
			run.Organization = r.Organization.Name
		}
		out = append(out, run)
	}
	return out, nil
}

// AdminForceCancelRun implements AdminRuns.
func (t *TFE) AdminForceCancelRun(ctx context.Context, runID, comment string) error {
	if err := t.client.Admin.Runs.ForceCancel(ctx, runID, tfe.AdminRunForceCancelOptions{Comment: optional(comment)}); err != nil {
		return fmt.Errorf("force-cancel run %s as an admin: %w", runID, err)
	}
	return nil
}
