// Package alerts carries what the orchestrator tells operators: cycles,
// blocked cascades, dispatch failures, stuck runs, cancels, rejected
// webhooks, a TFE token refused. Every part of the product raises alerts through a Notifier; the
// sinks decide where they go.
//
// What it guarantees: Raise never blocks the caller on a sink and never
// fails; an alert is logged whatever the other sinks do.
package alerts

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// Kinds of alert.
const (
	KindCycle           = "cycle"
	KindCascadeBlocked  = "cascade_blocked"
	KindDispatchFailed  = "dispatch_failed"
	KindWorkspaceLocked = "workspace_locked"
	KindDeprecated      = "terraform_version_deprecated"
	KindStuckRun        = "stuck_run"
	KindRunCancelled    = "run_force_cancelled"
	KindReminder        = "run_awaiting"
	KindWebhookRejected = "webhook_rejected"
	KindUncontrolledRun = "uncontrolled_run"
	KindEventRejected   = "event_rejected"
	KindEventDropped    = "event_dropped"
	KindMalformedState  = "malformed_state"
	KindTFEUnauthorized = "tfe_unauthorized"
	KindHoldLifted      = "hold_lifted"
)

// Kinds lists every kind of alert, for metric labels (anything else counts
// as "other").
var Kinds = []string{KindHoldLifted, KindCycle, KindCascadeBlocked, KindDispatchFailed, KindWorkspaceLocked, KindDeprecated, KindStuckRun,
	KindRunCancelled, KindReminder, KindWebhookRejected, KindUncontrolledRun, KindEventRejected, KindEventDropped,
	KindMalformedState, KindTFEUnauthorized}

// Severities.
const (
	SeverityInfo     = "info"
	SeverityWarning  = "warning"
	SeverityCritical = "critical"
)

// Alert is one thing an operator should know.
type Alert struct {
	Kind         string `json:"kind"`
	Severity     string `json:"severity"`
	Organization string `json:"organization,omitempty"`
	Workspace    string `json:"workspace,omitempty"` // name
	WorkspaceID  string `json:"workspace_id,omitempty"`
	RunID        string `json:"run_id,omitempty"`
	RunURL       string `json:"run_url,omitempty"` // the run in TFE's UI
	CascadeID    string `json:"cascade_id,omitempty"`
	PageURL      string `json:"page_url,omitempty"` // the cascade's operator page (PipelineOptions.PublicURL)
	Message      string `json:"message"`
	// Key identifies the condition: alerts with the same key within a
	// window are one alert.
	Key  string    `json:"key"`
	Time time.Time `json:"time"`
}

// Notifier raises alerts.
type Notifier interface {
	Raise(ctx context.Context, a Alert)
}

// Subject is the NATS subject prefix alerts are published under, followed
// by the kind: orchestrator.alerts.cycle.
const Subject = "orchestrator.alerts"

// Basic logs every alert and publishes it on NATS (core, fire and forget).
type Basic struct {
	Log  *zap.Logger
	Conn *nats.Conn // nil: log only
	Now  func() time.Time
}

// Raise logs and publishes a.
func (b *Basic) Raise(_ context.Context, a Alert) {
	if a.Time.IsZero() {
		if b.Now != nil {
			a.Time = b.Now()
		} else {
			a.Time = time.Now()
		}
	}
	fields := []zap.Field{zap.String("kind", a.Kind), zap.String("severity", a.Severity), zap.String("key", a.Key)}
	if a.CascadeID != "" {
		fields = append(fields, zap.String("cascade_id", a.CascadeID))
	}
	if a.Workspace != "" {
		fields = append(fields, zap.String("workspace", a.Workspace))
	}
	if a.WorkspaceID != "" {
		fields = append(fields, zap.String("workspace_id", a.WorkspaceID))
	}
	if a.RunID != "" {
		fields = append(fields, zap.String("run_id", a.RunID))
	}
	b.Log.Warn("alert: "+a.Message, fields...)
	if b.Conn == nil {
		return
	}
	data, err := json.Marshal(a)
	if err != nil {
		return
	}
	if err := b.Conn.Publish(Subject+"."+a.Kind, data); err != nil {
		b.Log.Warn("alert not published", zap.String("key", a.Key), zap.Error(err))
	}
}
