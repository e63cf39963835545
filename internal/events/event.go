package events

import (
	"strings"
	"time"
)

// RunEvent is one run notification, normalised. It is the message body on
// the run event stream, JSON encoded.
type RunEvent struct {
	Organization                string    `json:"organization"`
	WorkspaceID                 string    `json:"workspace_id"`
	WorkspaceName               string    `json:"workspace_name"`
	RunID                       string    `json:"run_id"`
	RunURL                      string    `json:"run_url,omitempty"`
	RunMessage                  string    `json:"run_message,omitempty"`
	RunCreatedAt                time.Time `json:"run_created_at,omitzero"`
	RunCreatedBy                string    `json:"run_created_by,omitempty"`
	Trigger                     string    `json:"trigger"`
	Status                      string    `json:"status"`
	Message                     string    `json:"message,omitempty"`
	UpdatedAt                   time.Time `json:"updated_at"`
	UpdatedBy                   string    `json:"updated_by,omitempty"`
	NotificationConfigurationID string    `json:"notification_configuration_id,omitempty"`
	ReceivedAt                  time.Time `json:"received_at"`
}

// SubjectPrefix is the first token of every run event subject.
const SubjectPrefix = "tfe.run"

// Subject is where the event is published:
//
//	tfe.run.<organization>.<workspace ID>.<run status>
//
// so that a consumer can filter on organization ("tfe.run.acme.>"),
// workspace ("tfe.run.*.ws-abc.>") or status ("tfe.run.*.*.applied").
func (e *RunEvent) Subject() string {
	return strings.Join([]string{SubjectPrefix, e.Organization, e.WorkspaceID, e.Status}, ".")
}

// DedupID identifies the event for JetStream's de-duplication: the same
// notification delivered twice yields the same ID.
func (e *RunEvent) DedupID() string {
	return e.RunID + "/" + e.Trigger + "/" + e.Status + "/" + e.UpdatedAt.UTC().Format(time.RFC3339Nano)
}
