package tfeclient

import (
	"context"
	"fmt"

	tfe "github.com/hashicorp/go-tfe"
)

// The run events a notification configuration can be triggered by, as TFE
// names them.
const (
	NotifyRunCreated        = string(tfe.NotificationTriggerCreated)
	NotifyRunPlanning       = string(tfe.NotificationTriggerPlanning)
	NotifyRunNeedsAttention = string(tfe.NotificationTriggerNeedsAttention)
	NotifyRunApplying       = string(tfe.NotificationTriggerApplying)
	NotifyRunCompleted      = string(tfe.NotificationTriggerCompleted)
	NotifyRunErrored        = string(tfe.NotificationTriggerErrored)
)

// NotificationConfiguration is what the orchestrator reads of a
// workspace's notification configuration. TFE never returns its token.
type NotificationConfiguration struct {
	ID, Name, URL string
	Enabled       bool
	Triggers      []string
}

// NotificationSettings are what is written of a generic (webhook)
// notification configuration. On update, an empty Name, URL or Token, and
// nil Triggers, leave what the configuration has; Enabled is always
// written.
type NotificationSettings struct {
	Name, URL string
	// Token signs the notifications (HMAC); TFE never shows it again.
	Token    string
	Enabled  bool
	Triggers []string
}

// NotificationAdmin reads and writes the notification configurations of
// workspaces.
type NotificationAdmin interface {
	// ListNotificationConfigurations reads every configuration of the
	// workspace: one call per page of PageSize.
	ListNotificationConfigurations(ctx context.Context, workspaceID string) ([]NotificationConfiguration, error)
	// CreateNotificationConfiguration adds a generic configuration to the
	// workspace: one call, in which TFE verifies the URL.
	CreateNotificationConfiguration(ctx context.Context, workspaceID string, s NotificationSettings) error
	// UpdateNotificationConfiguration changes the configuration of this
	// ID: one call.
	UpdateNotificationConfiguration(ctx context.Context, id string, s NotificationSettings) error
}

// ListNotificationConfigurations implements NotificationAdmin.
func (t *TFE) ListNotificationConfigurations(ctx context.Context, workspaceID string) ([]NotificationConfiguration, error) {
	opts := &tfe.NotificationConfigurationListOptions{}
	ncs, err := All(ctx, func(ctx context.Context, page tfe.ListOptions) ([]*tfe.NotificationConfiguration, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := t.client.NotificationConfigurations.List(ctx, workspaceID, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list notification configurations of %s: %w", workspaceID, err)
		}
		return l.Items, l.Pagination, nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]NotificationConfiguration, 0, len(ncs))
	for _, nc := range ncs {
		out = append(out, NotificationConfiguration{ID: nc.ID, Name: nc.Name, URL: nc.URL, Enabled: nc.Enabled, Triggers: nc.Triggers})
	}
	return out, nil
}

// CreateNotificationConfiguration implements NotificationAdmin.
func (t *TFE) CreateNotificationConfiguration(ctx context.Context, workspaceID string, s NotificationSettings) error {
	_, err := t.client.NotificationConfigurations.Create(ctx, workspaceID, tfe.NotificationConfigurationCreateOptions{
		DestinationType: tfe.NotificationDestination(tfe.NotificationDestinationTypeGeneric),
		Enabled:         tfe.Bool(s.Enabled), Name: tfe.String(s.Name), URL: optional(s.URL), Token: optional(s.Token),
		Triggers: notificationTriggers(s.Triggers),
	})
	if err != nil {
		return fmt.Errorf("create notification configuration on %s: %w", workspaceID, err)
	}
	return nil
}

// UpdateNotificationConfiguration implements NotificationAdmin.
func (t *TFE) UpdateNotificationConfiguration(ctx context.Context, id string, s NotificationSettings) error {
	_, err := t.client.NotificationConfigurations.Update(ctx, id, tfe.NotificationConfigurationUpdateOptions{
		Enabled: tfe.Bool(s.Enabled), Name: optional(s.Name), URL: optional(s.URL), Token: optional(s.Token),
		Triggers: notificationTriggers(s.Triggers),
	})
	if err != nil {
		return fmt.Errorf("update notification configuration %s: %w", id, err)
	}
	return nil
}

func notificationTriggers(triggers []string) []tfe.NotificationTriggerType {
	if triggers == nil {
		return nil
	}
	out := make([]tfe.NotificationTriggerType, 0, len(triggers))
	for _, t := range triggers {
		out = append(out, tfe.NotificationTriggerType(t))
	}
	return out
}

// optional is s to send, nil (not sent) when empty.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
