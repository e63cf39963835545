package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Run notification triggers, as TFE names them.
const (
	TriggerCreated        = "run:created"
	TriggerPlanning       = "run:planning"
	TriggerNeedsAttention = "run:needs_attention"
	TriggerApplying       = "run:applying"
	TriggerCompleted      = "run:completed"
	TriggerErrored        = "run:errored"
	TriggerVerification   = "verification"
)

func isRunTrigger(t string) bool {
	switch t {
	case TriggerCreated, TriggerPlanning, TriggerNeedsAttention, TriggerApplying, TriggerCompleted, TriggerErrored:
		return true
	}
	return false
}

// payload is the generic notification body of version 1. Version "2" (a
// string), for workspace and assessment notifications, has another shape
// and is not read past its version.
type payload struct {
	PayloadVersion              json.RawMessage `json:"payload_version"`
	NotificationConfigurationID string          `json:"notification_configuration_id"`
	RunURL                      string          `json:"run_url"`
	RunID                       string          `json:"run_id"`
	RunMessage                  string          `json:"run_message"`
	RunCreatedAt                time.Time       `json:"run_created_at"`
	RunCreatedBy                string          `json:"run_created_by"`
	WorkspaceID                 string          `json:"workspace_id"`
	WorkspaceName               string          `json:"workspace_name"`
	OrganizationName            string          `json:"organization_name"`
	Notifications               []notification  `json:"notifications"`
}

// notification is one item of notifications[]. JSON null leaves a field at
// its zero value, which is how a missing value is told.
type notification struct {
	Message      string    `json:"message"`
	Trigger      string    `json:"trigger"`
	RunStatus    string    `json:"run_status"`
	RunUpdatedAt time.Time `json:"run_updated_at"`
	RunUpdatedBy string    `json:"run_updated_by"`
}

// Decoded is what a notification body holds for us.
type Decoded struct {
	// Verification is true for TFE's "send a test" payload.
	Verification bool
	// Ignored counts notifications accepted but not acted on: other
	// payload versions and triggers that are not run triggers.
	Ignored int
	// Events are the run events, one per run notification, in order.
	Events []RunEvent
}

// ErrMalformed is returned for a body that is not JSON.
var ErrMalformed = errors.New("malformed JSON")

// ShapeError is returned for JSON that is not a notification payload.
type ShapeError struct{ Reason string }

func (e *ShapeError) Error() string { return "not a TFE notification payload: " + e.Reason }

// Decode reads a notification body and normalises its run notifications to
// run events stamped with receivedAt. It never fails on a payload version or
// trigger it does not act on: those are counted in Decoded.Ignored.
func Decode(body []byte, receivedAt time.Time) (Decoded, error) {
	var out Decoded
	var p payload
	err := json.Unmarshal(body, &p)
	var syntax *json.SyntaxError
	if errors.As(err, &syntax) {
		return out, ErrMalformed
	}
	version := p.PayloadVersion
	if err != nil {
		// Another payload version may use these field names with other
		// types: read the version alone before calling the shape wrong.
		var head struct {
			PayloadVersion json.RawMessage `json:"payload_version"`
		}
		if json.Unmarshal(body, &head) != nil {
			return out, &ShapeError{Reason: "the body is not a JSON object"}
		}
		version = head.PayloadVersion
	}
	switch strings.Trim(string(version), `"`) {
	case "1":
	case "", "null":
		return out, &ShapeError{Reason: "payload_version is missing"}
	default:
		// Workspace and assessment notifications (version 2) and versions
		// not yet known: accepted, not acted on.
		out.Ignored = 1
		return out, nil
	}
	if err != nil {
		return out, &ShapeError{Reason: trimJSONError(err)}
	}
	if len(p.Notifications) == 0 {
		return out, &ShapeError{Reason: "notifications is empty"}
	}
	for _, n := range p.Notifications {
		switch {
		case n.Trigger == TriggerVerification:
			out.Verification = true
		case !isRunTrigger(n.Trigger):
			out.Ignored++
		default:
			ev, err := runEvent(&p, &n, receivedAt)
			if err != nil {
				return Decoded{}, err
			}
			out.Events = append(out.Events, ev)
		}
	}
	return out, nil
}

func runEvent(p *payload, n *notification, receivedAt time.Time) (RunEvent, error) {
	required := [...]struct{ name, value string }{
		{"run_id", p.RunID},
		{"workspace_id", p.WorkspaceID},
		{"workspace_name", p.WorkspaceName},
		{"organization_name", p.OrganizationName},
		{"notifications[].run_status", n.RunStatus},
	}
	for _, f := range required {
		if f.value == "" {
			return RunEvent{}, &ShapeError{Reason: f.name + " is missing for trigger " + n.Trigger}
		}
	}
	switch {
	case !validID(p.RunID, "run-"):
		return RunEvent{}, &ShapeError{Reason: "run_id is not a TFE run ID (run- then 8 to 32 letters and digits)"}
	case !validID(p.WorkspaceID, "ws-"):
		return RunEvent{}, &ShapeError{Reason: "workspace_id is not a TFE workspace ID (ws- then 8 to 32 letters and digits)"}
	case !ValidName(p.OrganizationName, maxOrganizationName):
		return RunEvent{}, &ShapeError{Reason: "organization_name is not a TFE organization name (letters, digits, - and _)"}
	case !ValidName(p.WorkspaceName, maxWorkspaceName):
		return RunEvent{}, &ShapeError{Reason: "workspace_name is not a TFE workspace name (up to 90 letters, digits, - and _)"}
	case !validToken(n.RunStatus):
		return RunEvent{}, &ShapeError{Reason: "run_status must be a plain name"}
	}
	if n.RunUpdatedAt.IsZero() {
		return RunEvent{}, &ShapeError{Reason: "notifications[].run_updated_at is missing for trigger " + n.Trigger}
	}
	ev := RunEvent{
		Organization:                p.OrganizationName,
		WorkspaceID:                 p.WorkspaceID,
		WorkspaceName:               p.WorkspaceName,
		RunID:                       p.RunID,
		RunURL:                      p.RunURL,
		RunMessage:                  p.RunMessage,
		RunCreatedBy:                p.RunCreatedBy,
		Trigger:                     n.Trigger,
		Status:                      n.RunStatus,
		Message:                     n.Message,
		UpdatedAt:                   n.RunUpdatedAt.UTC(),
		UpdatedBy:                   n.RunUpdatedBy,
		NotificationConfigurationID: p.NotificationConfigurationID,
		ReceivedAt:                  receivedAt.UTC(),
	}
	if !p.RunCreatedAt.IsZero() {
		ev.RunCreatedAt = p.RunCreatedAt.UTC()
	}
	for _, t := range [...]time.Time{ev.RunCreatedAt, ev.UpdatedAt} {
		if !t.IsZero() && (t.Year() < 1 || t.Year() > 9999) {
			// Not representable in RFC 3339 once in UTC.
			return RunEvent{}, &ShapeError{Reason: "a timestamp is outside the years 1 to 9999"}
		}
	}
	return ev, nil
}

// TFE's limits on names. Workspace names are at most 90 characters; TFE
// documents no length for organization names, so the bound here only keeps
// junk out.
const (
	maxOrganizationName = 128
	maxWorkspaceName    = 90
)

// validID reports whether id is prefix followed by 8 to 32 ASCII letters and
// digits. TFE's IDs have 16 (run-FwnENkvDnrpyFC7M); the range leaves room
// without letting anything else through.
func validID(id, prefix string) bool {
	rest, ok := strings.CutPrefix(id, prefix)
	if !ok || len(rest) < 8 || len(rest) > 32 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// ValidName reports whether s is a TFE organization or workspace name: 1 to
// max ASCII letters, digits, - and _.
func ValidName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// validToken reports whether s can stand as one token of a NATS subject.
func validToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for _, c := range s {
		if c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f {
			return false
		}
	}
	return true
}

func trimJSONError(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s has the wrong type", te.Field)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return "a timestamp is not RFC 3339"
	}
	return err.Error()
}
