package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// The operators' commands against a running daemon (the simulator as
// TFE, embedded JetStream): a cascade whose middle member fails, seen with
// list, show and why, retried, watched to its end; pause and resume; the
// roles and the errors a person meets.
func TestOperatorCommands(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sim, err := tfesim.New(tfesim.Options{Token: "sim-token", RateLimit: -1, Timing: &tfesim.Timing{}})
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim.Handler())
	simDone := make(chan struct{})
	go func() { defer close(simDone); _ = sim.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-simDone; simSrv.Close() })

	const readToken, operateToken, hookToken = "read-0123456789abcdef", "operate-0123456789abcdef", "hook-token"
	d, err := app.New(app.Config{HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(), NATS: app.NATSConfig{EmbeddedListen: "off"},
		Webhook: events.WebhookOptions{Tokens: []string{hookToken}},
		TFE:     app.TFEConfig{Address: simSrv.URL, Token: "sim-token"}, DisableWatchdog: true,
		Dispatcher: dispatcher.Options{Debounce: 20 * time.Millisecond, Policy: cascade.Policy{NativeGrace: 200 * time.Millisecond, Recheck: time.Second}},
		API:        app.APIConfig{ReadTokens: []string{"viewer:" + readToken}, OperateTokens: []string{"alice:" + operateToken}},
	}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	runDone := make(chan error, 1)
	dctx, stop := context.WithCancel(ctx)
	go func() { runDone <- d.Run(dctx) }()
	t.Cleanup(func() { stop(); <-runDone })
	<-d.Ready()
	server := "http://" + d.HTTPAddr()

	spec := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test",
		Notifications: []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
			Name: "orchestrator", URL: server + "/webhooks/tfe", Token: hookToken,
			Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
		}}}}
	for _, name := range []string{"root", "net", "app"} {
		w := tfesim.WorkspaceSpec{Name: name, AutoApplyRunTrigger: true, Behavior: tfesim.Behavior{PlanDurationMS: 800, ApplyDurationMS: 20}}
		if name == "net" {
			w.Behavior.Outcome = tfesim.OutcomeErrored
		}
		spec.Workspaces = append(spec.Workspaces, w)
	}
	spec.RunTriggers = []tfesim.RunTriggerSpec{{Source: "root", Target: "net"}, {Source: "net", Target: "app"}}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{spec}}); err != nil {
		t.Fatal(err)
	}
	client, err := tfe.NewClient(&tfe.Config{Address: simSrv.URL, Token: "sim-token"})
	if err != nil {
		t.Fatal(err)
	}
	root, err := client.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: sim.WorkspaceID("acme", "root")}, AutoApply: tfe.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	id := cascade.ID(root.ID)
	env := map[string]string{"ORCHESTRATOR_SERVER": server, "ORCHESTRATOR_API_TOKEN": readToken}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmd(t, env, args...)
	}

	testutil.WaitFor(t, "the cascade to end with net failed", 30*time.Second, func() bool {
		_, out, _ := cli("cascades", "list", "--output", "json")
		return strings.Contains(out, id) && strings.Contains(out, `"outcome": "incomplete"`)
	})
	code, out, _ := cli("cascades", "list")
	for _, want := range []string{"ID", "PROGRESS", id, "acme", "root", "done (incomplete)", "1 failed, 1 blocked"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cascades list (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	code, out, _ = cli("cascades", "show", id)
	for _, want := range []string{"cascade " + id + " from root in acme: done (incomplete)", "root run:", "/app/acme/workspaces/root/runs/" + root.ID,
		"LAYER", "net", "failed", "app", "blocked", "upstream net failed"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cascades show (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	code, out, _ = cli("why", "app", "--organization", "acme")
	for _, want := range []string{id, "app did not run", "depends on net, which failed", "orchestrator cascades retry " + id + " net"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("why app (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	code, out, _ = cli("cascades", "show", id, "--output", "json")
	var v dispatcher.View
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.ID != id || len(v.Members) != 2 {
		t.Errorf("cascades show --output json (exit %d, %v): %s", code, err, out)
	}

	// The read token may not steer; a control needs a why.
	code, _, stderr := cli("cascades", "retry", id, "net", "--why", "fixed")
	if code != exitError || !strings.Contains(stderr, "not allowed") || !strings.Contains(stderr, "operate") {
		t.Errorf("retry with a read token: exit %d, %s", code, stderr)
	}
	env["ORCHESTRATOR_API_TOKEN"] = operateToken
	if code, _, stderr = cli("cascades", "retry", id, "net"); code != exitUsage || !strings.Contains(stderr, "--why is required") {
		t.Errorf("retry without --why: exit %d, %s", code, stderr)
	}
	if code, _, stderr = cli("cascades", "retry", id); code != exitUsage || !strings.Contains(stderr, "want ID WORKSPACE") {
		t.Errorf("retry without a workspace: exit %d, %s", code, stderr)
	}

	if err := sim.SetBehavior(sim.WorkspaceID("acme", "net"), tfesim.Behavior{PlanDurationMS: 800, ApplyDurationMS: 20}); err != nil {
		t.Fatal(err)
	}
	code, out, stderr = cli("cascades", "retry", id, "net", "--why", "fixed the credentials", "--by", "bob")
	if code != 0 || !strings.Contains(out, "running") {
		t.Fatalf("retry: exit %d, %s%s", code, out, stderr)
	}
	code, out, stderr = cli("cascades", "watch", id)
	if code != 0 || !strings.Contains(out, "app") || !strings.Contains(out, "cascade "+id+" done: applied") {
		t.Errorf("watch to the end: exit %d\n%s%s", code, out, stderr)
	}

	code, out, _ = cli("pause", "--organization", "acme", "--why", "change freeze")
	if code != 0 || !strings.Contains(out, "acme") || !strings.Contains(out, "alice") || !strings.Contains(out, "change freeze") {
		t.Errorf("pause: exit %d\n%s", code, out)
	}
	code, out, _ = cli("resume", "--organization", "acme", "--why", "freeze over")
	if code != 0 || !strings.Contains(out, "not paused anywhere") {
		t.Errorf("resume: exit %d\n%s", code, out)
	}

	delete(env, "ORCHESTRATOR_API_TOKEN")
	if code, _, stderr = cli("cascades", "list"); code != exitUsage || !strings.Contains(stderr, "give the API token") {
		t.Errorf("without a token: exit %d, %s", code, stderr)
	}
	if code, _, stderr = cli("cascades", "show", "c-run-nosuchrun", "--token", "wrong-token-0123456789"); code != exitError || !strings.Contains(stderr, "refused the token") {
		t.Errorf("with a wrong token: exit %d, %s", code, stderr)
	}
	if code, _, stderr = cli("cascades", "show", "c-run-nosuchrun", "--token", readToken); code != exitError || !strings.Contains(stderr, "no such cascade") {
		t.Errorf("an unknown cascade: exit %d, %s", code, stderr)
	}
}
