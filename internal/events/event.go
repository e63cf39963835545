package events

import (
	"strings"
	"time"
	"unicode/utf8"
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

// AppendJSON appends the event's JSON encoding to b. The bytes are those
// json.Marshal writes (fields in order, empty ones omitted as tagged, the
// same string escaping), made without reflection: every webhook encodes
// its events on the ingest path.
func (e *RunEvent) AppendJSON(b []byte) []byte {
	b = append(b, `{"organization":`...)
	b = appendJSONString(b, e.Organization)
	b = append(b, `,"workspace_id":`...)
	b = appendJSONString(b, e.WorkspaceID)
	b = append(b, `,"workspace_name":`...)
	b = appendJSONString(b, e.WorkspaceName)
	b = append(b, `,"run_id":`...)
	b = appendJSONString(b, e.RunID)
	b = appendOptionalString(b, `,"run_url":`, e.RunURL)
	b = appendOptionalString(b, `,"run_message":`, e.RunMessage)
	if !e.RunCreatedAt.IsZero() {
		b = append(b, `,"run_created_at":`...)
		b = appendJSONTime(b, e.RunCreatedAt)
	}
	b = appendOptionalString(b, `,"run_created_by":`, e.RunCreatedBy)
	b = append(b, `,"trigger":`...)
	b = appendJSONString(b, e.Trigger)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, e.Status)
	b = appendOptionalString(b, `,"message":`, e.Message)
	b = append(b, `,"updated_at":`...)
	b = appendJSONTime(b, e.UpdatedAt)
	b = appendOptionalString(b, `,"updated_by":`, e.UpdatedBy)
	b = appendOptionalString(b, `,"notification_configuration_id":`, e.NotificationConfigurationID)
	b = append(b, `,"received_at":`...)
	b = appendJSONTime(b, e.ReceivedAt)
	return append(b, '}')
}

func appendOptionalString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

// appendJSONTime writes t as time.Time's MarshalJSON does. Decode admits
// only years 1 to 9999, which RFC 3339 can represent.
func appendJSONTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendJSONString quotes s as encoding/json does: control characters,
// quote and backslash escaped, and <, >, &, U+2028 and U+2029 as \u
// escapes; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= ' ' && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
