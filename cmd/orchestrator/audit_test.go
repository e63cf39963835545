package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
)

// The audit trail end to end: controls of every kind used through the CLI
// and the API, each then found in `orchestrator audit` with who and why;
// resume tells what it lifted; a pause of an organization TFE does not
// know and a why too long are refused; status says what is in force.
func TestAuditAndStatusCommands(t *testing.T) {
	o := startOperated(t, true)
	ctx := context.Background()
	env := map[string]string{"ORCHESTRATOR_SERVER": o.server, "ORCHESTRATOR_API_TOKEN": operateToken}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmd(t, env, args...)
	}
	alice := &api.Client{Server: o.server, Token: operateToken}

	// Refused: an organization TFE does not know, a why of 60,000 characters.
	if code, _, stderr := cli("pause", "--organization", "acne", "--why", "typo"); code != exitError || !strings.Contains(stderr, "organization acne is not known to TFE") {
		t.Errorf("pause of an unknown organization: exit %d, %s", code, stderr)
	}
	if _, err := alice.Pause(ctx, "acne", api.Decision{Why: "typo"}); !api.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("pause of an unknown organization: %v, want 422", err)
	}
	long := strings.Repeat("w", 60000)
	if code, _, stderr := cli("pause", "--why", long); code != exitError || !strings.Contains(stderr, "why: at most 1000 characters, not 60000") {
		t.Errorf("pause with a 60,000-character why: exit %d, %.300s", code, stderr)
	}
	if _, err := alice.Pause(ctx, "", api.Decision{Why: long}); !api.IsStatus(err, http.StatusBadRequest) {
		t.Errorf("pause with a 60,000-character why: %v, want 400", err)
	}
	if code, out, stderr := cli("status", "--output", "json"); code != 0 || strings.Contains(out, `"paused": {}`) == false {
		t.Errorf("refused pauses are in force: exit %d\n%s%s", code, out, stderr)
	}

	// Resume tells whether it lifted a pause, and whose.
	code, out, stderr := cli("resume", "--organization", "acme", "--why", "just in case")
	if code != 0 || !strings.Contains(out, "nothing lifted: there was no pause of organization acme") {
		t.Errorf("resume with nothing paused: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, stderr = cli("pause", "--organization", "acme", "--by", "bob", "--why", "year-end prep"); code != 0 {
		t.Fatalf("pause: exit %d\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli("resume", "--organization", "acme", "--why", "prep done")
	if code != 0 || !strings.Contains(out, "lifted the pause of organization acme: bob (token alice) had paused it since ") || !strings.Contains(out, "(year-end prep)") {
		t.Errorf("resume of bob's pause: exit %d\n%s%s", code, out, stderr)
	}

	// A cascade whose member net fails: retried and cancelled; no guard
	// holds it, so an approval is refused and not recorded.
	root, err := o.tfe.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: o.sim.WorkspaceID("acme", "root")}, AutoApply: tfe.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := cascade.ID(root.ID)
	testutil.WaitFor(t, "the cascade to end with net failed", 30*time.Second, func() bool {
		v, err := alice.Show(ctx, id)
		return err == nil && v.State == dispatcher.StateDone
	})
	if code, out, stderr := cli("cascades", "approve", id, "--why", "checked the plan"); code != exitError || !strings.Contains(stderr, "does not hold cascade "+id) {
		t.Errorf("approve of a cascade no guard holds: exit %d\n%s%s", code, out, stderr)
	}
	for _, args := range [][]string{
		{"cascades", "retry", id, "net", "--why", "fixed the credentials"},
		{"cascades", "cancel", id, "--why", "stop for today"},
	} {
		if code, out, stderr := cli(args...); code != 0 {
			t.Fatalf("%q: exit %d\n%s%s", args, code, out, stderr)
		}
	}

	// Freeze windows and exclusions, replaced as lists.
	now := time.Now().UTC().Truncate(time.Second)
	yearEnd := dispatcher.Freeze{Organization: "acme", Start: now.Add(-time.Minute), End: now.Add(48 * time.Hour), By: "carol", Why: "year end"}
	if _, err := alice.SetFreezes(ctx, api.FreezesRequest{Freezes: []dispatcher.Freeze{{Organization: "acne", Start: now, End: now.Add(time.Hour), Why: "typo"}}}); !api.IsStatus(err, http.StatusUnprocessableEntity) {
		t.Errorf("a freeze of an unknown organization: %v, want 422", err)
	}
	if _, err := alice.SetFreezes(ctx, api.FreezesRequest{Freezes: []dispatcher.Freeze{yearEnd}}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetExclusions(ctx, api.ExclusionsRequest{Exclusions: []dispatcher.Exclusion{{Organization: "acme", Name: "app", Why: "by hand"}}}); err != nil {
		t.Fatal(err)
	}
	code, out, _ = cli("status", "--token", readToken)
	for _, want := range []string{"readiness:", "ready", "guard:", "none", "replicas:", "audit kept:", "2160h0m0s", "dispatching is not paused anywhere",
		"FREEZE", "acme", "in force", "carol (token alice)", "year end", "EXCLUDED", "workspace app", "by hand"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("status (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	// One operator lifts another's freeze with an empty list: only with a
	// why, and it is recorded.
	if _, err := alice.SetFreezes(ctx, api.FreezesRequest{}); !api.IsStatus(err, http.StatusBadRequest) || !strings.Contains(err.Error(), "year end") {
		t.Errorf("a freeze removed without a why: %v, want 400 naming it", err)
	}
	if _, err := alice.SetFreezes(ctx, api.FreezesRequest{By: "dave", Why: "auditors done early"}); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.SetExclusions(ctx, api.ExclusionsRequest{Why: "app is automated again"}); err != nil {
		t.Fatal(err)
	}

	code, out, stderr = cli("audit", "--output", "json")
	var trail api.AuditTrail
	if err := json.Unmarshal([]byte(out), &trail); code != 0 || err != nil {
		t.Fatalf("audit --output json: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	want := []struct{ action, by, why string }{
		{dispatcher.AuditExclusionRemoved, "alice", "app is automated again"},
		{dispatcher.AuditFreezeRemoved, "dave (token alice)", "auditors done early"},
		{dispatcher.AuditExclusionAdded, "alice", "by hand"},
		{dispatcher.AuditFreezeAdded, "carol (token alice)", "year end"},
		{dispatcher.AuditCancel, "alice", "stop for today"},
		{dispatcher.AuditRetry, "alice", "fixed the credentials"},
		{dispatcher.AuditResume, "alice", "prep done"},
		{dispatcher.AuditPause, "bob (token alice)", "year-end prep"},
		{dispatcher.AuditResume, "alice", "just in case"},
	}
	if len(trail.Records) != len(want) {
		t.Fatalf("%d audit records, want %d:\n%s", len(trail.Records), len(want), out)
	}
	for i, w := range want {
		if r := trail.Records[i]; r.Action != w.action || r.By != w.by || r.Why != w.why || r.After == "" {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
	}
	if r := trail.Records[5]; r.Cascade != id || r.Workspace != "net" || r.Organization != "acme" || !strings.Contains(r.Before, "member net (") || !strings.Contains(r.Before, ") failed") {
		t.Errorf("the retry's record does not say what it concerns: %+v", r)
	}

	code, out, _ = cli("audit", "--token", readToken)
	for _, want := range []string{"AT", "BY", "ACTION", "WHY", "freeze removed", "dave (token alice)", "year end", "retry", id + "/net", "not paused"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	if !rfc3339UTC.MatchString(out) || localTime.MatchString(out) {
		t.Errorf("audit does not write its times in RFC 3339, UTC:\n%s", out)
	}
	code, out, _ = cli("audit", "--cascade", id, "--limit", "2", "--output", "json")
	trail = api.AuditTrail{}
	if err := json.Unmarshal([]byte(out), &trail); code != 0 || err != nil || len(trail.Records) != 2 ||
		trail.Records[0].Action != dispatcher.AuditCancel || trail.Records[1].Action != dispatcher.AuditRetry {
		t.Errorf("audit --cascade --limit 2: exit %d, %v\n%s", code, err, out)
	}
	if code, _, stderr := cli("audit", "--since", "yesterday"); code != exitUsage || !strings.Contains(stderr, "--since") {
		t.Errorf("audit --since yesterday: exit %d, %s", code, stderr)
	}

	// A cascade's own trail, for the page, with a read token.
	req, _ := http.NewRequest(http.MethodGet, o.server+"/api/v1/cascades/"+id+"/audit", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	trail = api.AuditTrail{}
	if err := json.Unmarshal(body, &trail); res.StatusCode != http.StatusOK || err != nil || len(trail.Records) != 2 {
		t.Errorf("GET /api/v1/cascades/%s/audit: %d, %v\n%s", id, res.StatusCode, err, body)
	}
	req, _ = http.NewRequest(http.MethodGet, o.server+"/api/v1/cascades/c-run-nosuchrun/audit", nil)
	req.Header.Set("Authorization", "Bearer "+readToken)
	if res, err = http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusNotFound {
		t.Errorf("the audit of an unknown cascade: %v, want 404", res.Status)
	}
	res.Body.Close()
}
