package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
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
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

const readToken, operateToken, hookToken = "read-0123456789abcdef", "operate-0123456789abcdef", "hook-token"

// publicURLOf is where operators reach the daemon startOperated starts
// (serve --public-url, given by its environment variable).
const publicURLOf = "https://orchestrator.example.com"

// operated is a daemon the operators' commands talk to: the simulator as
// TFE, embedded JetStream, the API with a read token (viewer) and an
// operate token (alice), read the way serve reads them.
type operated struct {
	sim    *tfesim.Sim
	tfe    *tfe.Client
	server string
	// tokenFile holds both tokens in serve's form, as serve was given them.
	tokenFile string
}

// startOperated starts the daemon on an organization acme of workspaces
// root → net → app; net's runs error when failNet.
func startOperated(t *testing.T, failNet bool) *operated {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	simSrv := simtest.Start(t, tfesim.Options{})
	sim := simSrv.Sim

	// The API tokens, as an operator gives serve them: a file each.
	readFile := writeFile(t, "# who may look\nviewer:"+readToken+"\n")
	operateFile := writeFile(t, "# who may steer\n\nalice:"+operateToken+"\n")
	fs := newFlagSet("serve", io.Discard)
	config := serveFlags(fs)
	if err := fs.parse([]string{"--api-read-token-file", readFile, "--api-operate-token-file", operateFile}, env(map[string]string{"ORCHESTRATOR_PUBLIC_URL": publicURLOf})); err != nil {
		t.Fatal(err)
	}
	served, err := config()
	if err != nil {
		t.Fatal(err)
	}
	both := writeFile(t, "viewer:"+readToken+"\n# steers too\nalice:"+operateToken+"\n")

	d, err := app.New(app.Config{HTTPListen: "127.0.0.1:0", DataDir: t.TempDir(), NATS: app.NATSConfig{EmbeddedListen: "off"},
		Webhook: events.WebhookOptions{Tokens: []string{hookToken}},
		TFE:     app.TFEConfig{Address: simSrv.URL, Token: "sim-token"}, DisableWatchdog: true,
		Dispatcher: dispatcher.Options{Debounce: 20 * time.Millisecond, Policy: cascade.Policy{NativeGrace: 200 * time.Millisecond, Recheck: time.Second}},
		API:        served.API, PublicURL: served.PublicURL,
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
		if name == "net" && failNet {
			w.Behavior.Outcome = tfesim.OutcomeErrored
		}
		spec.Workspaces = append(spec.Workspaces, w)
	}
	spec.RunTriggers = []tfesim.RunTriggerSpec{{Source: "root", Target: "net"}, {Source: "net", Target: "app"}}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{spec}}); err != nil {
		t.Fatal(err)
	}
	return &operated{sim: sim, tfe: simSrv.Client, server: server, tokenFile: both}
}

// The operators' commands against a running daemon: a cascade whose
// middle member fails, seen with list, show and why, retried with the
// command why suggests, pasted as it is, watched to its end; pause and
// resume; the roles and the errors a person meets.
func TestOperatorCommands(t *testing.T) {
	o := startOperated(t, true)
	ctx := context.Background()
	sim, client, server := o.sim, o.tfe, o.server
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
	for _, want := range []string{"ID", "PROGRESS", "PAGE", id, "acme", "root", "done (incomplete)", "1 failed, 1 blocked", publicURLOf + "/ui/#" + id} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cascades list (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	if code, out, _ = cli("status"); code != 0 || !strings.Contains(out, publicURLOf+"/ui/") {
		t.Errorf("status (exit %d) does not say where the page is:\n%s", code, out)
	}
	code, out, _ = cli("cascades", "show", id)
	for _, want := range []string{"cascade " + id + " from root in acme: done (incomplete)", "root run:", "/app/acme/workspaces/root/runs/" + root.ID,
		"LAYER", "net", "failed", "app", "blocked", "upstream net failed", "page:", publicURLOf + "/ui/#" + id} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("cascades show (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	if !rfc3339UTC.MatchString(out) || localTime.MatchString(out) {
		t.Errorf("cascades list does not write its times in RFC 3339, UTC:\n%s", out)
	}
	code, out, _ = cli("why", "app", "--organization", "acme")
	for _, want := range []string{id, "app did not run", "depends on net, which failed", "orchestrator cascades retry " + id + " net"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("why app (exit %d) does not say %q:\n%s", code, want, out)
		}
	}
	if !rfc3339UTC.MatchString(out) {
		t.Errorf("why does not write its times in RFC 3339, UTC:\n%s", out)
	}
	suggested := pasted(out)
	if len(suggested) == 0 {
		t.Fatalf("why app suggests no command:\n%s", out)
	}
	code, out, stderr := cli("why", "typo", "--organization", "acme")
	if code != exitError || !strings.Contains(stderr, `no cascade kept knows a workspace "typo" in organization acme`) {
		t.Errorf("why of an unknown workspace: exit %d, want 1\n%s%s", code, out, stderr)
	}
	code, out, _ = cli("cascades", "show", id, "--output", "json")
	var v dispatcher.View
	if err := json.Unmarshal([]byte(out), &v); code != 0 || err != nil || v.ID != id || len(v.Members) != 2 {
		t.Errorf("cascades show --output json (exit %d, %v): %s", code, err, out)
	}

	// The read token may not steer; a control needs a why.
	code, _, stderr = cli("cascades", "retry", id, "net", "--why", "fixed")
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
	// app is blocked by net: its retry is refused, pointing at net.
	if code, _, stderr = cli("cascades", "retry", id, "app", "--why", "fixed"); code != exitError || !strings.Contains(stderr, "retry net") {
		t.Errorf("retry of app, blocked by net: exit %d, %s", code, stderr)
	}
	// The command why suggested, pasted as it is.
	code, out, stderr = cli(suggested...)
	if code != 0 || !strings.Contains(out, "running") || !strings.Contains(stderr, "retrying net; it resumes app") {
		t.Fatalf("%q, as why suggested it: exit %d, %s%s", suggested, code, out, stderr)
	}
	code, out, stderr = cli("cascades", "watch", id)
	if code != 0 || !strings.Contains(out, "app") || !strings.Contains(out, "cascade "+id+" done: applied") {
		t.Errorf("watch to the end: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr = cli("cascades", "retry", id, "net", "--why", "again"); code != exitError || !strings.Contains(stderr, "net is applied: only a failed or blocked member can be retried") {
		t.Errorf("retry of an applied member: exit %d, %s", code, stderr)
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
	if code, _, stderr = cli("cascades", "show", "c-run-nosuchrun", "--token", "wrong-token-0123456789"); code != exitError ||
		!strings.Contains(stderr, "refused the token") || !strings.Contains(stderr, "none of this server's API tokens") || strings.Contains(stderr, "is needed") {
		t.Errorf("with a wrong token: exit %d, %s", code, stderr)
	}
	if code, _, stderr = cli("cascades", "show", "c-run-nosuchrun", "--token", readToken); code != exitError || !strings.Contains(stderr, "no such cascade") {
		t.Errorf("an unknown cascade: exit %d, %s", code, stderr)
	}
}

var (
	rfc3339UTC = regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\b`)
	localTime  = regexp.MustCompile(`\d{4}-\d\d-\d\d \d\d:\d\d`)
)

// pasted returns the arguments of the first orchestrator command in text,
// as a shell reads it when a person pastes the line from that command on:
// words split at blanks, quotes joined, the command ended by a ; or the
// line's end.
func pasted(text string) []string {
	i := strings.Index(text, "orchestrator ")
	if i < 0 {
		return nil
	}
	line, _, _ := strings.Cut(text[i+len("orchestrator "):], "\n")
	var args []string
	var word strings.Builder
	inWord := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == ';':
			if inWord {
				args = append(args, word.String())
				word.Reset()
				inWord = false
			}
			if r == ';' {
				return args
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		args = append(args, word.String())
	}
	return args
}

// The CLI reads a token file as serve does: name:secret lines, comments,
// blank lines. A file of several tokens needs --token-name. No token and
// an unknown token are told apart, by the server and by the CLI.
func TestAPITokenFile(t *testing.T) {
	o := startOperated(t, false)
	vars := map[string]string{"ORCHESTRATOR_SERVER": o.server}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCmd(t, vars, args...)
	}

	// serve's own operate file, as it is.
	operateFile := writeFile(t, "# who may steer\n\nalice:"+operateToken+"\n")
	code, out, stderr := cli("pause", "--token-file", operateFile, "--why", "token file check", "--output", "json")
	if code != 0 || !strings.Contains(out, `"by": "alice"`) {
		t.Errorf("pause with serve's token file: exit %d\n%s%s", code, out, stderr)
	}
	vars["ORCHESTRATOR_API_TOKEN_FILE"] = o.tokenFile
	code, _, stderr = cli("cascades", "list")
	if code != exitUsage || !strings.Contains(stderr, "holds 2 tokens (viewer, alice): choose one with --token-name") || strings.Contains(stderr, readToken) {
		t.Errorf("a file of two tokens without --token-name: exit %d, %s", code, stderr)
	}
	code, out, stderr = cli("resume", "--token-name", "viewer", "--why", "x")
	if code != exitError || !strings.Contains(stderr, "not allowed") {
		t.Errorf("resume as viewer: exit %d, want 1 (not allowed)\n%s%s", code, out, stderr)
	}
	code, out, stderr = cli("resume", "--token-name", "alice", "--why", "token file check over")
	if code != 0 || !strings.Contains(out, "not paused anywhere") {
		t.Errorf("resume as alice: exit %d\n%s%s", code, out, stderr)
	}
	if code, _, stderr = cli("cascades", "list", "--token-name", "bob"); code != exitUsage || !strings.Contains(stderr, `no token named "bob" (it holds viewer, alice)`) {
		t.Errorf("an unknown --token-name: exit %d, %s", code, stderr)
	}
	delete(vars, "ORCHESTRATOR_API_TOKEN_FILE")
	// The value serve was given, name and all, works as --token too.
	if code, out, stderr = cli("cascades", "list", "--token", "viewer:"+readToken); code != 0 || !strings.Contains(out, "(no cascades)") {
		t.Errorf("--token name:secret: exit %d\n%s%s", code, out, stderr)
	}
	empty := writeFile(t, "# nobody yet\n\n")
	if code, _, stderr = cli("cascades", "list", "--token-file", empty); code != exitUsage || !strings.Contains(stderr, "holds no token") {
		t.Errorf("an empty token file: exit %d, %s", code, stderr)
	}

	for _, tc := range []struct{ header, want string }{
		{"", "a bearer token is needed"},
		{"Bearer ", "a bearer token is needed"},
		{"Bearer unknown-0123456789abcdef", "the bearer token is none of this server's API tokens"},
	} {
		req, err := http.NewRequest(http.MethodGet, o.server+"/api/v1/cascades", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), tc.want) {
			t.Errorf("Authorization %q: %d %s, want 401 saying %q", tc.header, res.StatusCode, body, tc.want)
		}
	}
}

// watch waits, up to --wait-start, for a cascade whose root run has not
// applied yet, then follows it to its end.
func TestWatchWaitsForStart(t *testing.T) {
	o := startOperated(t, false)
	ctx := context.Background()
	vars := map[string]string{"ORCHESTRATOR_SERVER": o.server, "ORCHESTRATOR_API_TOKEN": readToken}

	if code, _, stderr := runCmd(t, vars, "cascades", "watch", "c-run-nosuchrun", "--wait-start", "1s"); code != exitError ||
		!strings.Contains(stderr, "has not started") || !strings.Contains(stderr, "did not start within 1s") {
		t.Errorf("watch of a cascade that never starts: exit %d, want 1\n%s", code, stderr)
	}
	if code, _, stderr := runCmd(t, vars, "cascades", "watch", "c-run-nosuchrun", "--wait-start", "0s"); code != exitError || !strings.Contains(stderr, "no such cascade") {
		t.Errorf("watch --wait-start 0 of a cascade not started: exit %d, want 1\n%s", code, stderr)
	}

	// The root run waits for a person's confirmation: its cascade starts
	// only when the test applies it.
	root, err := o.tfe.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: o.sim.WorkspaceID("acme", "root")}, AutoApply: tfe.Bool(false)})
	if err != nil {
		t.Fatal(err)
	}
	id := cascade.ID(root.ID)
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"cascades", "watch", id}, env(vars), &stdout, &stderr)
	}()
	testutil.WaitFor(t, "watch to say it waits for the cascade", 30*time.Second, func() bool {
		return strings.Contains(stderr.String(), "cascade "+id+" has not started")
	})
	testutil.WaitFor(t, "the root run to wait for confirmation", 30*time.Second, func() bool {
		r, err := o.tfe.Runs.Read(ctx, root.ID)
		return err == nil && r.Status == tfe.RunPlanned
	})
	if err := o.tfe.Runs.Apply(ctx, root.ID, tfe.RunApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != exitOK || !strings.Contains(stdout.String(), "cascade "+id+" done: applied") || !rfc3339UTC.MatchString(stdout.String()) {
			t.Errorf("watch started before its cascade: exit %d\n%s%s", code, stdout.String(), stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("watch did not end\n%s%s", stdout.String(), stderr.String())
	}
}
