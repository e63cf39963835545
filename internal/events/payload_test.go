package events_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
)

var received = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func payloadFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeRunPayload(t *testing.T) {
	d, err := events.Decode(payloadFile(t, "run-canceled.json"), received)
	if err != nil {
		t.Fatal(err)
	}
	if d.Verification || d.Ignored != 0 || len(d.Events) != 1 {
		t.Fatalf("got %+v, want one event", d)
	}
	want := events.RunEvent{
		Organization:                "acme-org",
		WorkspaceID:                 "ws-XdeUVMWShTesDMME",
		WorkspaceName:               "my-workspace",
		RunID:                       "run-FwnENkvDnrpyFC7M",
		RunURL:                      "https://app.terraform.io/app/acme-org/my-workspace/runs/run-FwnENkvDnrpyFC7M",
		RunMessage:                  "Add five new queue workers",
		RunCreatedAt:                time.Date(2019, 1, 25, 18, 34, 0, 0, time.UTC),
		RunCreatedBy:                "sample-user",
		Trigger:                     "run:errored",
		Status:                      "canceled",
		Message:                     "Run Canceled",
		UpdatedAt:                   time.Date(2019, 1, 25, 18, 37, 4, 0, time.UTC),
		UpdatedBy:                   "sample-user",
		NotificationConfigurationID: "nc-AeUQ2zfKZzW9TiGZ",
		ReceivedAt:                  received,
	}
	if got := d.Events[0]; got != want {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got, want := d.Events[0].Subject(), "tfe.run.acme-org.ws-XdeUVMWShTesDMME.canceled"; got != want {
		t.Errorf("subject: got %s, want %s", got, want)
	}
	if got, want := d.Events[0].DedupID(), "run-FwnENkvDnrpyFC7M/run:errored/canceled/2019-01-25T18:37:04Z"; got != want {
		t.Errorf("dedup ID: got %s, want %s", got, want)
	}
}

func TestDecodeKinds(t *testing.T) {
	for _, tc := range []struct {
		file         string
		verification bool
		ignored      int
	}{
		{"verification.json", true, 0},
		{"workspace-v2.json", false, 1},
		{"assessment-v2.json", false, 1},
	} {
		t.Run(tc.file, func(t *testing.T) {
			d, err := events.Decode(payloadFile(t, tc.file), received)
			if err != nil {
				t.Fatal(err)
			}
			if d.Verification != tc.verification || d.Ignored != tc.ignored || len(d.Events) != 0 {
				t.Errorf("got %+v, want verification %v, ignored %d, no events", d, tc.verification, tc.ignored)
			}
		})
	}
}

// valid returns a version 1 run payload with fields replaced.
func valid(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(payloadFile(t, "run-applied.json"), &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func notif(m map[string]any) map[string]any {
	return m["notifications"].([]any)[0].(map[string]any)
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		body      []byte
		malformed bool
		want      string
	}{
		{"not JSON", []byte(`{"payload_version": 1,`), true, "malformed"},
		{"empty", []byte(``), true, "malformed"},
		{"an array", []byte(`[]`), false, "JSON object"},
		{"no version", []byte(`{"notifications": []}`), false, "payload_version"},
		{"no notifications", valid(t, func(m map[string]any) { delete(m, "notifications") }), false, "notifications"},
		{"notifications of the wrong type", valid(t, func(m map[string]any) { m["notifications"] = "x" }), false, "wrong type"},
		{"no run ID", valid(t, func(m map[string]any) { m["run_id"] = nil }), false, "run_id"},
		{"no organization", valid(t, func(m map[string]any) { delete(m, "organization_name") }), false, "organization_name"},
		{"no status", valid(t, func(m map[string]any) { notif(m)["run_status"] = nil }), false, "run_status"},
		{"no update time", valid(t, func(m map[string]any) { delete(notif(m), "run_updated_at") }), false, "run_updated_at"},
		{"a bad time", valid(t, func(m map[string]any) { notif(m)["run_updated_at"] = "yesterday" }), false, "RFC 3339"},
		{"a time before year 1 in UTC", valid(t, func(m map[string]any) { notif(m)["run_updated_at"] = "0001-01-01T00:30:00+01:00" }), false, "years 1 to 9999"},
		{"a time after year 9999 in UTC", valid(t, func(m map[string]any) { m["run_created_at"] = "9999-12-31T23:30:00-01:00" }), false, "years 1 to 9999"},
		{"a dot in a subject token", valid(t, func(m map[string]any) { m["organization_name"] = "acme.org" }), false, "organization_name"},
		{"a wildcard in a subject token", valid(t, func(m map[string]any) { notif(m)["run_status"] = ">" }), false, "run_status"},
		{"a run ID without its prefix", valid(t, func(m map[string]any) { m["run_id"] = "8F5JFydVYAmtTjET" }), false, "run_id"},
		{"a run ID that is too short", valid(t, func(m map[string]any) { m["run_id"] = "run-1" }), false, "run_id"},
		{"a run ID that is too long", valid(t, func(m map[string]any) { m["run_id"] = "run-" + strings.Repeat("a", 33) }), false, "run_id"},
		{"a run ID with other characters", valid(t, func(m map[string]any) { m["run_id"] = "run-8F5JFydV/../mtTjET" }), false, "run_id"},
		{"a workspace ID of another kind", valid(t, func(m map[string]any) { m["workspace_id"] = "run-2HRvNs49EWPjDqT1" }), false, "workspace_id"},
		{"a workspace ID with a space", valid(t, func(m map[string]any) { m["workspace_id"] = "ws-2HRvNs49 EWPjDqT1" }), false, "workspace_id"},
		{"a workspace ID that is too short", valid(t, func(m map[string]any) { m["workspace_id"] = "ws-1234567" }), false, "workspace_id"},
		{"an organization name with a slash", valid(t, func(m map[string]any) { m["organization_name"] = "acme/org" }), false, "organization_name"},
		{"an organization name that is too long", valid(t, func(m map[string]any) { m["organization_name"] = strings.Repeat("a", 129) }), false, "organization_name"},
		{"a workspace name with markup", valid(t, func(m map[string]any) { m["workspace_name"] = "*network*" }), false, "workspace_name"},
		{"a workspace name that is too long", valid(t, func(m map[string]any) { m["workspace_name"] = strings.Repeat("w", 91) }), false, "workspace_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := events.Decode(tc.body, received)
			if err == nil {
				t.Fatal("decoded without error")
			}
			if errors.Is(err, events.ErrMalformed) != tc.malformed {
				t.Errorf("malformed: got %v, want %v (%v)", errors.Is(err, events.ErrMalformed), tc.malformed, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// IDs and names at the edges of what TFE's formats allow are accepted.
func TestDecodeAcceptsTFEFormats(t *testing.T) {
	for _, tc := range []struct{ field, value string }{
		{"run_id", "run-12345678"},
		{"run_id", "run-" + strings.Repeat("Z", 32)},
		{"workspace_id", "ws-abcdefgh"},
		{"workspace_id", "ws-" + strings.Repeat("9", 32)},
		{"organization_name", "a"},
		{"organization_name", "Acme_Platform-2"},
		{"organization_name", strings.Repeat("o", 128)},
		{"workspace_name", strings.Repeat("w", 90)},
	} {
		body := valid(t, func(m map[string]any) { m[tc.field] = tc.value })
		if _, err := events.Decode(body, received); err != nil {
			t.Errorf("%s %q: %v", tc.field, tc.value, err)
		}
	}
}

func TestDecodeUnknownTriggerIsIgnored(t *testing.T) {
	body := valid(t, func(m map[string]any) {
		extra := map[string]any{"message": "?", "trigger": "run:teleported", "run_status": "applied", "run_updated_at": "2024-05-02T10:03:12Z"}
		m["notifications"] = append(m["notifications"].([]any), extra)
	})
	d, err := events.Decode(body, received)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 1 || d.Ignored != 1 {
		t.Errorf("got %d events and %d ignored, want 1 and 1", len(d.Events), d.Ignored)
	}
}

var (
	tfeID   = regexp.MustCompile(`^(run|ws)-[A-Za-z0-9]{8,32}$`)
	tfeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,128}$`)
)

// FuzzDecode checks that no input makes Decode panic, and that what it
// accepts makes events the stream can take.
func FuzzDecode(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "payloads"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			f.Add(payloadFile(f, e.Name()))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := events.Decode(body, received)
		if err != nil {
			if len(d.Events) != 0 {
				t.Fatal("events returned with an error")
			}
			return
		}
		for _, ev := range d.Events {
			tokens := strings.Split(ev.Subject(), ".")
			if len(tokens) != 5 {
				t.Fatalf("subject %q has %d tokens, want 5", ev.Subject(), len(tokens))
			}
			for _, tok := range tokens {
				if tok == "" || strings.ContainsAny(tok, " *>\t\r\n") {
					t.Fatalf("subject %q has a bad token %q", ev.Subject(), tok)
				}
			}
			if ev.RunID == "" || ev.DedupID() == "" || ev.UpdatedAt.IsZero() {
				t.Fatalf("accepted an event without run ID or update time: %+v", ev)
			}
			if !tfeID.MatchString(ev.RunID) || !tfeID.MatchString(ev.WorkspaceID) || !tfeName.MatchString(ev.Organization) || !tfeName.MatchString(ev.WorkspaceName) {
				t.Fatalf("accepted IDs or names outside TFE's formats: %+v", ev)
			}
			checkAppendJSON(t, ev)
		}
	})
}
