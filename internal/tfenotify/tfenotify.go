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

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// Triggers are the notification triggers the orchestrator needs.
var Triggers = []tfe.NotificationTriggerType{
	tfe.NotificationTriggerCreated, tfe.NotificationTriggerPlanning, tfe.NotificationTriggerNeedsAttention,
	tfe.NotificationTriggerApplying, tfe.NotificationTriggerCompleted, tfe.NotificationTriggerErrored,
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

// Workspaces and NotificationConfigurations are the parts of go-tfe used.
type Workspaces interface {
	List(ctx context.Context, organization string, options *tfe.WorkspaceListOptions) (*tfe.WorkspaceList, error)
}

// NotificationConfigurations is the part of go-tfe's API used.
type NotificationConfigurations interface {
	List(ctx context.Context, subscribableID string, options *tfe.NotificationConfigurationListOptions) (*tfe.NotificationConfigurationList, error)
	Create(ctx context.Context, workspaceID string, options tfe.NotificationConfigurationCreateOptions) (*tfe.NotificationConfiguration, error)
	Update(ctx context.Context, id string, options tfe.NotificationConfigurationUpdateOptions) (*tfe.NotificationConfiguration, error)
}

// Install creates or updates the configuration on every workspace of the
// organization (or those with the tags).
func Install(ctx context.Context, ws Workspaces, ncs NotificationConfigurations, o Options) ([]Result, error) {
	if o.Organization == "" || o.URL == "" || o.Token == "" {
		return nil, fmt.Errorf("organization, URL and token are required")
	}
	if o.Name == "" {
		o.Name = DefaultName
	}
	var results []Result
	opts := &tfe.WorkspaceListOptions{Tags: o.Tags}
	list := func(ctx context.Context, page tfe.ListOptions) ([]*tfe.Workspace, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := ws.List(ctx, o.Organization, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list workspaces of %s: %w", o.Organization, err)
		}
		return l.Items, l.Pagination, nil
	}
	_, err := tfeclient.EachPage(ctx, list, 0, func(page []*tfe.Workspace) (bool, error) {
		for _, w := range page {
			action, err := installOne(ctx, ncs, w, o)
			if err != nil {
				return false, fmt.Errorf("workspace %s: %w", w.Name, err)
			}
			results = append(results, Result{Workspace: w.Name, Action: action})
		}
		return true, nil
	})
	return results, err
}

func installOne(ctx context.Context, ncs NotificationConfigurations, w *tfe.Workspace, o Options) (string, error) {
	list, err := ncs.List(ctx, w.ID, &tfe.NotificationConfigurationListOptions{ListOptions: tfe.ListOptions{PageSize: 100}})
	if err != nil {
		return "", fmt.Errorf("list notification configurations: %w", err)
	}
	var existing *tfe.NotificationConfiguration
	for _, nc := range list.Items {
		if nc.Name == o.Name {
			existing = nc
		}
	}
	if existing == nil {
		if !o.DryRun {
			_, err := ncs.Create(ctx, w.ID, tfe.NotificationConfigurationCreateOptions{
				DestinationType: tfe.NotificationDestination(tfe.NotificationDestinationTypeGeneric),
				Enabled:         tfe.Bool(true), Name: tfe.String(o.Name), URL: tfe.String(o.URL), Token: tfe.String(o.Token),
				Triggers: Triggers,
			})
			if err != nil {
				return "", fmt.Errorf("create notification configuration: %w", err)
			}
		}
		return "created", nil
	}
	if existing.URL == o.URL && existing.Enabled && sameTriggers(existing.Triggers) && !o.UpdateToken {
		return "unchanged", nil
	}
	if !o.DryRun {
		update := tfe.NotificationConfigurationUpdateOptions{
			Enabled: tfe.Bool(true), URL: tfe.String(o.URL), Triggers: Triggers,
		}
		if o.UpdateToken {
			update.Token = tfe.String(o.Token)
		}
		if _, err := ncs.Update(ctx, existing.ID, update); err != nil {
			return "", fmt.Errorf("update notification configuration: %w", err)
		}
	}
	return "updated", nil
}

func sameTriggers(have []string) bool {
	if len(have) != len(Triggers) {
		return false
	}
	for _, t := range Triggers {
		if !slices.Contains(have, string(t)) {
			return false
		}
	}
	return true
}
