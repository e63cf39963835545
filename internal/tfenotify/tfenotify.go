// Package tfenotify installs the orchestrator's notification configuration
// on TFE workspaces. TFE has no organization-wide notifications, so the
// orchestrator needs one generic configuration per workspace.
//
// Install is idempotent: a workspace whose configuration already has the
// URL, triggers and enabled state is left alone. TFE never returns a
// configuration's token, so the token is written on create, and on update
// only when asked.
package tfenotify

import (
	"context"
	"fmt"
	"slices"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// Triggers are the notification triggers the orchestrator needs.
var Triggers = []string{
	tfeclient.NotifyRunCreated, tfeclient.NotifyRunPlanning, tfeclient.NotifyRunNeedsAttention,
	tfeclient.NotifyRunApplying, tfeclient.NotifyRunCompleted, tfeclient.NotifyRunErrored,
}

// DefaultName names the configuration the orchestrator installs.
const DefaultName = "tfe-run-orchestrator"

// Options say what to install where.
type Options struct {
	Organization string
	URL          string
	Token        string
	Name         string // default DefaultName
	// Tags restricts the install to workspaces with all these tags.
	Tags string
	// UpdateToken writes the token on existing configurations too.
	UpdateToken bool
	DryRun      bool
}

// Result is what Install did (or, in a dry run, would do) per workspace.
type Result struct {
	Workspace string
	Action    string // created, updated, unchanged
}

// Admin is what Install reads and writes of TFE (*tfeclient.TFE is one).
type Admin interface {
	tfeclient.WorkspaceLister
	tfeclient.NotificationAdmin
}

// Install creates or updates the configuration on every workspace of the
// organization (or those with the tags).
func Install(ctx context.Context, api Admin, o Options) ([]Result, error) {
	if o.Organization == "" || o.URL == "" || o.Token == "" {
		return nil, fmt.Errorf("organization, URL and token are required")
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	var results []Result
	err := api.ListWorkspaces(ctx, o.Organization, tfeclient.WorkspaceQuery{Tags: o.Tags}, func(page []tfeclient.Workspace) (bool, error) {
		for _, w := range page {
			action, err := installOne(ctx, api, w, o)
			if err != nil {
				return false, fmt.Errorf("workspace %s: %w", w.Name, err)
			}
			results = append(results, Result{Workspace: w.Name, Action: action})
		}
		return true, nil
	})
	return results, err
}

func installOne(ctx context.Context, ncs tfeclient.NotificationAdmin, w tfeclient.Workspace, o Options) (string, error) {
	list, err := ncs.ListNotificationConfigurations(ctx, w.ID)
	if err != nil {
		return "", err
	}
	var existing *tfeclient.NotificationConfiguration
	for i, nc := range list {
		if nc.Name == o.Name {
			existing = &list[i]
		}
	}
	if existing == nil {
		if !o.DryRun {
			err := ncs.CreateNotificationConfiguration(ctx, w.ID, tfeclient.NotificationSettings{
				Name: o.Name, URL: o.URL, Token: o.Token, Enabled: true, Triggers: Triggers,
			})
			if err != nil {
				return "", err
			}
		}
		return "created", nil
	}
	if existing.URL == o.URL && existing.Enabled && sameTriggers(existing.Triggers) && !o.UpdateToken {
		return "unchanged", nil
	}
	if !o.DryRun {
		// TFE never returns the token: it is written when asked only.
		update := tfeclient.NotificationSettings{URL: o.URL, Enabled: true, Triggers: Triggers}
		if o.UpdateToken {
			update.Token = o.Token
		}
		if err := ncs.UpdateNotificationConfiguration(ctx, existing.ID, update); err != nil {
			return "", err
		}
	}
	return "updated", nil
}

func sameTriggers(have []string) bool {
	if len(have) != len(Triggers) {
		return false
	}
	for _, t := range Triggers {
		if !slices.Contains(have, t) {
			return false
		}
	}
	return true
}
