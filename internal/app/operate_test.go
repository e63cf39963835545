package app_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/tfe-orchestrator/orchestrator/internal/api"
	"github.com/tfe-orchestrator/orchestrator/internal/app"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// The operator API and its controls, end to end: two daemons (replicas)
// on one JetStream, the simulator as TFE with its run triggers firing,
// controls given through the API of one replica or the other.

const (
	readSecret    = "read-token-0123456789abcdef"
	operateSecret = "operate-token-0123456789abcdef"
)

type operators struct {
	t      *testing.T
	ctx    context.Context
	sim    *tfesim.Sim
	client *tfe.Client
	a, b   *daemon
	logs   *observer.ObservedLogs
}

// ws is a workspace whose runs plan for planMS (long enough for a run TFE
// queued too early to be stopped while it plans) and apply on their own
// when TFE's run triggers queue them.
func ws(name string, planMS int64) tfesim.WorkspaceSpec {
	return tfesim.WorkspaceSpec{Name: name, AutoApplyRunTrigger: true, Behavior: tfesim.Behavior{PlanDurationMS: planMS, ApplyDurationMS: 20}}
}

// newOperators starts the simulator with organization acme (workspaces and
// run triggers "a>b") and two replicas; the first takes TFE's
// notifications.
func newOperators(t *testing.T, workspaces []tfesim.WorkspaceSpec, edges []string, opts dispatcher.Options) *operators {
	t.Helper()
	sim, simURL, client := startSim(t, tfesim.Options{})
	core, logs := observer.New(zapcore.InfoLevel)
	dataDir := t.TempDir()
	o := opts
	o.AckWait, o.LeaseTTL, o.Debounce = time.Second, 2*time.Second, 20*time.Millisecond
	o.Policy = cascade.Policy{Recheck: time.Second, LockedRetry: 100 * time.Millisecond, NativeGrace: 300 * time.Millisecond,
		Soon: 100 * time.Millisecond, CreateTimeout: 2 * time.Second, CreateSettle: 500 * time.Millisecond}
	cfg := app.Config{DataDir: dataDir, TFE: app.TFEConfig{Address: simURL, Token: "sim-token"}, Dispatcher: o, DisableWatchdog: true,
		API: app.APIConfig{ReadTokens: []string{"viewer:" + readSecret}, OperateTokens: []string{"alice:" + operateSecret}}}
	a := startLogged(t, cfg, zap.New(core))
	cfg.DataDir = t.TempDir()
	cfg.NATS = app.NATSConfig{URL: a.NATSURL(), NKeyFile: filepath.Join(dataDir, app.SeedFileName)}
	b := startLogged(t, cfg, zap.New(core))

	spec := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: workspaces,
		Notifications: []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
			Name: "orchestrator", URL: a.url("/webhooks/tfe"), Token: webhookToken,
			Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
		}}}}
	for _, e := range edges {
		src, dst, _ := strings.Cut(e, ">")
		spec.RunTriggers = append(spec.RunTriggers, tfesim.RunTriggerSpec{Source: src, Target: dst})
	}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{spec}}); err != nil {
		t.Fatal(err)
	}
	return &operators{t: t, ctx: context.Background(), sim: sim, client: client, a: a, b: b, logs: logs}
}

// api is a client of d's API with a token of the role.
func (o *operators) api(d *daemon, secret string) *api.Client {
	return &api.Client{Server: d.url(""), Token: secret}
}

// start applies a run in the root workspace and returns its cascade's ID.
func (o *operators) start(root string) string {
	o.t.Helper()
	r, err := o.client.Runs.Create(o.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: o.sim.WorkspaceID("acme", root)},
		AutoApply: tfe.Bool(true), Message: tfe.String("deploy " + root)})
	if err != nil {
		o.t.Fatal(err)
	}
	return cascade.ID(r.ID)
}

// view waits until the cascade, seen through the API, satisfies cond.
func (o *operators) view(c *api.Client, id, what string, cond func(*dispatcher.View) bool) *dispatcher.View {
	o.t.Helper()
	var v *dispatcher.View
	waitFor(o.t, what, func() bool {
		got, err := c.Show(o.ctx, id)
		if err != nil {
			return false
		}
		v = got
		return cond(v)
	})
	return v
}

func member(v *dispatcher.View, name string) dispatcher.MemberView {
	for _, m := range v.Members {
		if m.Name == name {
			return m
		}
	}
	return dispatcher.MemberView{}
}

// runs lists a workspace's runs, newest first.
func (o *operators) runs(name string) []*tfe.Run {
	o.t.Helper()
	list, err := o.client.Runs.List(o.ctx, o.sim.WorkspaceID("acme", name), &tfe.RunListOptions{ListOptions: tfe.ListOptions{PageSize: 100}})
	if err != nil {
		o.t.Fatal(err)
	}
	return list.Items
}

// created counts the runs the cascade created in a workspace.
func (o *operators) created(name, id string) int {
	n := 0
	for _, r := range o.runs(name) {
		if strings.HasPrefix(r.Message, cascade.Marker(id)) {
			n++
		}
	}
	return n
}

// appliedOnce checks TFE's records: the workspace has exactly one applied
// run, and it is the member's.
func (o *operators) appliedOnce(v *dispatcher.View, name string) {
	o.t.Helper()
	var applied []string
	for _, r := range o.runs(name) {
		if r.Status == tfe.RunApplied {
			applied = append(applied, r.ID)
		}
	}
	if m := member(v, name); len(applied) != 1 || applied[0] != m.RunID {
		o.t.Errorf("%s: member run %s (%s), applied in TFE: %v", name, m.RunID, m.State, applied)
	}
}

// scrape returns d's /metrics.
func scrape(t *testing.T, d *daemon) string {
	t.Helper()
	_, body := get(t, d.url("/metrics"))
	return body
}

func done(v *dispatcher.View) bool { return v.State == dispatcher.StateDone }

// counted sums a counter's series (every label) over both daemons.
func counted(t *testing.T, o *operators, name string) float64 {
	t.Helper()
	var n float64
	for _, d := range []*daemon{o.a, o.b} {
		for _, line := range strings.Split(scrape(t, d), "\n") {
			if line == name || strings.HasPrefix(line, name+" ") || strings.HasPrefix(line, name+"{") {
				f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
				if err != nil {
					t.Fatalf("metric line %q: %v", line, err)
				}
				n += f
			}
		}
	}
	return n
}

// states says how each member stands, for a failure's message.
func states(v *dispatcher.View) string {
	var b strings.Builder
	for _, m := range v.Members {
		b.WriteString("\n\t" + m.Name + ": " + string(m.State) + " (" + m.Reason + ") " + m.RunID)
	}
	return b.String()
}

// The API answers nobody without a token, a read token no control, and
// never writes a token to its log.
func TestOperatorAPIRefusesWithoutTheRightToken(t *testing.T) {
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0)}, nil, dispatcher.Options{})
	call := func(method, path, token, body string) (int, http.Header, string) {
		req, _ := http.NewRequest(method, o.a.url(path), strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		var e struct {
			Error string `json:"error"`
		}
		if res.StatusCode >= 400 && json.Unmarshal(b, &e) != nil {
			t.Errorf("%s %s: error answer is not JSON: %s", method, path, b)
		}
		return res.StatusCode, res.Header, e.Error
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", "GET", "/api/v1/cascades", "", "", 401},
		{"wrong token", "GET", "/api/v1/cascades", "not-a-token-at-all-0123456789", "", 401},
		{"not a bearer", "GET", "/api/v1/cascades", "", "", 401},
		{"watch without token", "GET", "/api/v1/cascades/c-run-x/watch", "", "", 401},
		{"read token lists", "GET", "/api/v1/cascades", readSecret, "", 200},
		{"read token pauses", "POST", "/api/v1/pause", readSecret, `{"why":"x"}`, 403},
		{"read token cancels", "POST", "/api/v1/cascades/c-run-x/cancel", readSecret, `{"why":"x"}`, 403},
		{"read token excludes", "PUT", "/api/v1/exclusions", readSecret, `{"exclusions":[]}`, 403},
		{"operate token reads", "GET", "/api/v1/controls", operateSecret, "", 200},
		{"operate token, no why", "POST", "/api/v1/pause", operateSecret, `{}`, 400},
		{"operate token, unknown field", "POST", "/api/v1/pause", operateSecret, `{"why":"x","organisation":"acme"}`, 400},
		{"unknown cascade", "GET", "/api/v1/cascades/c-run-nosuchrun", readSecret, "", 404},
		{"unknown path", "GET", "/api/v1/nothing", readSecret, "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, h, msg := call(tc.method, tc.path, tc.token, tc.body)
			if code != tc.want {
				t.Fatalf("got %d (%s), want %d", code, msg, tc.want)
			}
			if code == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer challenge")
			}
			if code >= 400 && msg == "" {
				t.Errorf("no error message")
			}
		})
	}
	if _, _, msg := call("POST", "/api/v1/pause", operateSecret, `{"why":"x","organisation":"acme"}`); !strings.Contains(msg, "organisation") {
		t.Errorf("a bad field is not named: %q", msg)
	}
	for _, e := range o.logs.All() {
		line := e.Message
		for _, f := range e.Context {
			line += " " + f.String
		}
		if strings.Contains(line, readSecret) || strings.Contains(line, operateSecret) || strings.Contains(line, "not-a-token") {
			t.Errorf("a token reached the log: %s", line)
		}
	}

	off := start(t, app.Config{})
	res, err := http.Get(off.url("/api/v1/cascades"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 404 || !strings.Contains(string(b), "--api-read-token") {
		t.Errorf("without tokens: got %d %s, want 404 saying how to turn the API on", res.StatusCode, b)
	}
}

// A pause given to one replica holds the cascade on both: nothing is
// dispatched (the runs TFE's triggers queued are stopped while they plan);
// resume given to the other continues the same cascade, each member
// applied once.
func TestPauseHoldsEveryReplicaAndResumeContinues(t *testing.T) {
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), ws("net", 1000), ws("app", 1000)}, []string{"root>net", "net>app"}, dispatcher.Options{})
	ops := o.api(o.b, operateSecret)
	if _, err := ops.Pause(o.ctx, "", api.Decision{Why: "change freeze for the audit"}); err != nil {
		t.Fatal(err)
	}
	id := o.start("root")
	reader := o.api(o.a, readSecret)
	v := o.view(reader, id, "net to be held by the pause", func(v *dispatcher.View) bool {
		m := member(v, "net")
		return m.State == cascade.Waiting && strings.Contains(m.Reason, "dispatching paused") && v.Paused != ""
	})
	if !strings.Contains(v.Paused, "alice") || !strings.Contains(v.Paused, "audit") {
		t.Errorf("the view does not say who paused and why: %q", v.Paused)
	}
	waitFor(t, "the run TFE queued in net to be stopped", func() bool {
		runs := o.runs("net")
		return len(runs) == 1 && (runs[0].Status == tfe.RunCanceled || runs[0].Status == tfe.RunDiscarded)
	})
	if n := o.created("net", id); n != 0 {
		t.Fatalf("a paused cascade created %d runs in net", n)
	}
	for _, d := range []*daemon{o.a, o.b} {
		waitFor(t, "every replica's metrics to show the paused cascade", func() bool {
			m := scrape(t, d)
			return strings.Contains(m, `orchestrator_cascades_open{state="running"} 1`) &&
				strings.Contains(m, `orchestrator_cascade_members{state="waiting"} 2`)
		})
	}
	ctl, err := reader.Controls(o.ctx)
	if err != nil || ctl.Paused[""].By != "alice" {
		t.Fatalf("controls: %+v, %v", ctl, err)
	}

	if _, err := o.api(o.a, operateSecret).Resume(o.ctx, "", api.Decision{By: "bob", Why: "audit done"}); err != nil {
		t.Fatal(err)
	}
	v = o.view(reader, id, "the cascade to finish", done)
	if v.Outcome != cascade.OutcomeApplied || v.Paused != "" {
		t.Fatalf("outcome %s, paused %q:%s", v.Outcome, v.Paused, states(v))
	}
	o.appliedOnce(v, "net")
	o.appliedOnce(v, "app")
	waitFor(t, "the metrics to show no open cascade", func() bool {
		m := scrape(t, o.b)
		return strings.Contains(m, `orchestrator_cascades_open{state="running"} 0`) && strings.Contains(m, `orchestrator_cascade_members{state="waiting"} 0`)
	})
	if list, err := reader.List(o.ctx, api.ListOptions{Organization: "acme"}); err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("resume continued another cascade: %+v, %v", list, err)
	}
}

// Cancel with stop_runs stops the run under way and dispatches nothing
// more; the cascade ends cancelled and says who cancelled it.
func TestCancelStopsTheCascadeAndItsRuns(t *testing.T) {
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), ws("net", 60_000), ws("app", 500)}, []string{"root>net", "net>app"}, dispatcher.Options{})
	id := o.start("root")
	c := o.api(o.a, operateSecret)
	o.view(c, id, "net to run", func(v *dispatcher.View) bool { return member(v, "net").State == cascade.Running })
	if _, err := c.Cancel(o.ctx, id, api.CancelRequest{Decision: api.Decision{Why: "bad change in network"}, StopRuns: true}); err != nil {
		t.Fatal(err)
	}
	v := o.view(c, id, "the cascade to end", done)
	if v.Outcome != cascade.OutcomeCancelled || !strings.Contains(v.Cancelled, "bad change in network") {
		t.Errorf("outcome %s, cancelled %q", v.Outcome, v.Cancelled)
	}
	waitFor(t, "net's run to be stopped", func() bool {
		runs := o.runs("net")
		return len(runs) == 1 && cascade.Final(string(runs[0].Status)) && runs[0].Status != tfe.RunApplied
	})
	if runs := o.runs("app"); len(runs) != 0 {
		t.Errorf("app got runs after the cancel: %s", runs[0].ID)
	}
	if m := member(v, "app"); m.State != cascade.Blocked || !strings.Contains(m.Reason, "cancelled") {
		t.Errorf("app: %s (%s)", m.State, m.Reason)
	}
	if _, err := c.Retry(o.ctx, id, api.RetryRequest{Decision: api.Decision{Why: "try again"}, Workspace: "net"}); !api.IsStatus(err, 409) || !strings.Contains(err.Error(), "is cancelled") {
		t.Errorf("retry in a cancelled cascade: %v, want 409", err)
	}
}

// A member whose run errored blocks what depends on it; "why" says so and
// how to fix it; a retry after the fix runs it again and resumes what it
// blocked, each member applied once.
func TestRetryResumesWhatAFailedMemberBlocked(t *testing.T) {
	net := ws("net", 1000)
	net.Behavior.Outcome = tfesim.OutcomeErrored
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), net, ws("app", 1000)}, []string{"root>net", "net>app"}, dispatcher.Options{})
	id := o.start("root")
	c := o.api(o.b, operateSecret)
	v := o.view(c, id, "the cascade to end with net failed", done)
	if member(v, "net").State != cascade.Failed || member(v, "app").State != cascade.Blocked {
		t.Fatalf("net %s, app %s", member(v, "net").State, member(v, "app").State)
	}
	why, err := o.api(o.a, readSecret).Why(o.ctx, "acme", "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(why.Cascades) != 1 {
		t.Fatalf("why app: %+v", why)
	}
	for _, want := range []string{"app did not run", "depends on net, which failed", "orchestrator cascades retry " + id + " net"} {
		if !strings.Contains(why.Cascades[0].Explanation, want) {
			t.Errorf("why app: %q does not say %q", why.Cascades[0].Explanation, want)
		}
	}

	// app is blocked by net: retrying it is refused, pointing at net.
	if _, err := c.Retry(o.ctx, id, api.RetryRequest{Decision: api.Decision{Why: "try app"}, Workspace: "app"}); !api.IsStatus(err, 409) || !strings.Contains(err.Error(), "retry net") {
		t.Errorf("retry of app, blocked by net: %v, want 409 pointing at net", err)
	}
	if err := o.sim.SetBehavior(o.sim.WorkspaceID("acme", "net"), tfesim.Behavior{PlanDurationMS: 1000, ApplyDurationMS: 20}); err != nil {
		t.Fatal(err)
	}
	a, err := c.Retry(o.ctx, id, api.RetryRequest{Decision: api.Decision{Why: "fixed the provider credentials"}, Workspace: "net"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Retry.Member != "net" || !slices.Equal(a.Retry.Unblocks, []string{"app"}) || a.View == nil || a.View.ID != id {
		t.Errorf("retry answer: %+v (view %v)", a.Retry, a.View)
	}
	v = o.view(c, id, "the retried cascade to finish", func(v *dispatcher.View) bool { return done(v) && member(v, "app").State == cascade.Applied })
	if v.Outcome != cascade.OutcomeApplied {
		t.Errorf("outcome %s", v.Outcome)
	}
	o.appliedOnce(v, "net")
	o.appliedOnce(v, "app")
	// Reopened by the retry, the cascade is counted finished once.
	waitFor(t, "the metrics to count the cascade started", func() bool { return counted(t, o, "orchestrator_cascades_started_total") == 1 })
	if n := counted(t, o, "orchestrator_cascades_finished_total"); n != 1 {
		t.Errorf("cascades finished: %v, want 1 (started 1)", n)
	}

	// net applied: a retry of it is refused, and nothing changes.
	_, err = c.Retry(o.ctx, id, api.RetryRequest{Decision: api.Decision{Why: "once more"}, Workspace: "net"})
	if !api.IsStatus(err, 409) || !strings.Contains(err.Error(), "net is applied: only a failed or blocked member can be retried") {
		t.Errorf("retry of an applied member: %v, want 409", err)
	}
	after, err := c.Show(o.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if !done(after) || after.Outcome != cascade.OutcomeApplied || !after.FinishedAt.Equal(v.FinishedAt) {
		t.Errorf("after a refused retry: %s (%s), finished %s, was %s", after.State, after.Outcome, after.FinishedAt, v.FinishedAt)
	}
	if n := counted(t, o, "orchestrator_cascades_finished_total"); n != 1 {
		t.Errorf("cascades finished after a refused retry: %v, want 1", n)
	}
	// No guard holds it: an approval is refused.
	if _, err := c.Approve(o.ctx, id, api.Decision{Why: "go"}); !api.IsStatus(err, 409) || !strings.Contains(err.Error(), "does not hold cascade "+id) {
		t.Errorf("approval of a cascade no guard holds: %v, want 409", err)
	}
	if _, err := c.Retry(o.ctx, id, api.RetryRequest{Decision: api.Decision{Why: "again"}, Workspace: "nosuch"}); !api.IsStatus(err, 400) {
		t.Errorf("retry of a workspace that is not a member: %v, want 400", err)
	}
}

// An excluded workspace is never dispatched: the cascade skips it and
// leaves it alone, and runs the rest.
func TestExcludedWorkspaceIsNeverDispatched(t *testing.T) {
	tagged := ws("audit", 1000)
	tagged.Tags = []string{"no-cascade"}
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), ws("db", 1000), tagged, ws("app", 1000)},
		[]string{"root>db", "root>audit", "root>app"}, dispatcher.Options{})
	c := o.api(o.a, operateSecret)
	if _, err := c.SetExclusions(o.ctx, api.ExclusionsRequest{Exclusions: []dispatcher.Exclusion{
		{Organization: "acme", Name: "db", Why: "database changes go by hand"},
		{Tag: "no-cascade", Why: "audited workspaces"},
	}}); err != nil {
		t.Fatal(err)
	}
	id := o.start("root")
	v := o.view(c, id, "the cascade to finish", done)
	for _, name := range []string{"db", "audit"} {
		if m := member(v, name); m.State != cascade.Skipped || !strings.Contains(m.Reason, "excluded") {
			t.Errorf("%s: %s (%s)", name, m.State, m.Reason)
		}
		if n := o.created(name, id); n != 0 {
			t.Errorf("%s: the cascade created %d runs in an excluded workspace", name, n)
		}
	}
	o.appliedOnce(v, "app")
	why, err := c.Why(o.ctx, "acme", "db")
	if err != nil || why.Excluded == nil || len(why.Cascades) != 1 || !strings.Contains(why.Cascades[0].Explanation, "db was skipped") {
		t.Errorf("why db: %+v, %v", why, err)
	}
}

// The blast-radius guard holds a cascade larger than its limit, on every
// replica, until an operator approves it.
func TestGuardHoldsALargeCascadeUntilApproved(t *testing.T) {
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), ws("a", 1000), ws("b", 1000), ws("c", 1000)},
		[]string{"root>a", "root>b", "root>c"}, dispatcher.Options{GuardLimit: 2})
	id := o.start("root")
	c := o.api(o.b, operateSecret)
	v := o.view(c, id, "the guard to hold the cascade", func(v *dispatcher.View) bool {
		return v.Held != "" && strings.Contains(member(v, "a").Reason, "blast-radius guard")
	})
	if !strings.Contains(v.Held, "3 members, more than 2") {
		t.Errorf("held: %q", v.Held)
	}
	for _, name := range []string{"a", "b", "c"} {
		if n := o.created(name, id); n != 0 {
			t.Fatalf("%s: a held cascade created %d runs", name, n)
		}
	}
	if _, err := c.Approve(o.ctx, id, api.Decision{Why: "expected: new region"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Approve(o.ctx, id, api.Decision{Why: "twice"}); !api.IsStatus(err, 409) || !strings.Contains(err.Error(), "does not hold") {
		t.Errorf("approval of an approved cascade: %v, want 409", err)
	}
	v = o.view(c, id, "the approved cascade to finish", done)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("outcome %s:%s", v.Outcome, states(v))
	}
	for _, name := range []string{"a", "b", "c"} {
		o.appliedOnce(v, name)
	}
}

// "Why" explains, in words, a workspace a cascade skipped because nothing
// upstream changed, and one on a run-trigger cycle.
func TestWhyExplainsSkippedAndCycledWorkspaces(t *testing.T) {
	same := ws("config", 0)
	same.Behavior.Outcome = tfesim.OutcomeNoChanges
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), same, ws("edge", 0), ws("ring-a", 1000), ws("ring-b", 1000)},
		[]string{"root>config", "config>edge", "root>ring-a", "ring-a>ring-b", "ring-b>ring-a"}, dispatcher.Options{})
	id := o.start("root")
	c := o.api(o.a, readSecret)
	o.view(c, id, "the cascade to finish", done)
	for name, wants := range map[string][]string{
		"edge":   {"edge was skipped", "none of its upstreams changed anything"},
		"ring-b": {"ring-b never runs in a cascade", "run-trigger cycle", "remove one of the cycle's run triggers"},
		"root":   {"root started the cascade " + id},
	} {
		why, err := c.Why(o.ctx, "acme", name)
		if err != nil || len(why.Cascades) != 1 {
			t.Fatalf("why %s: %+v, %v", name, why, err)
		}
		for _, want := range wants {
			if !strings.Contains(why.Cascades[0].Explanation, want) {
				t.Errorf("why %s: %q does not say %q", name, why.Cascades[0].Explanation, want)
			}
		}
	}
	why, err := c.Why(o.ctx, "acme", "nowhere")
	if err != nil || len(why.Cascades) != 0 || !strings.Contains(why.Explanation, "No cascade kept") {
		t.Errorf("why of a workspace no cascade reached: %+v, %v", why, err)
	}
}

// A watch streams a cascade as it moves, from the first view to its end.
func TestWatchStreamsACascadeToItsEnd(t *testing.T) {
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), ws("net", 300), ws("app", 300)}, []string{"root>net", "net>app"}, dispatcher.Options{})
	id := o.start("root")
	c := o.api(o.b, readSecret)
	o.view(c, id, "the cascade to exist", func(*dispatcher.View) bool { return true })
	ctx, cancel := context.WithTimeout(o.ctx, 30*time.Second)
	defer cancel()
	var seen []string
	err := c.Watch(ctx, id, func(v *dispatcher.View) bool {
		seen = append(seen, string(member(v, "app").State))
		return !done(v)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 2 || seen[len(seen)-1] != string(cascade.Applied) {
		t.Errorf("app's states through the watch: %v; want several, ending applied", seen)
	}
	if err := c.Watch(ctx, "c-run-nosuchrun", func(*dispatcher.View) bool { return false }); !api.IsStatus(err, http.StatusNotFound) {
		t.Errorf("watch of an unknown cascade: %v, want 404", err)
	}
}

// The daemon says at start what it is and how it is configured, with no
// secret in the line, and exports what it is as orchestrator_build_info.
func TestStartupLineAndBuildInfo(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	_, simURL, _ := startSim(t, tfesim.Options{})
	d := startLogged(t, app.Config{Version: "1.2.3", TFE: app.TFEConfig{Address: simURL, Token: "sim-token"}, DisableWatchdog: true,
		Alerts: app.AlertsConfig{SlackURL: "https://hooks.slack.example/T000/B000/secret-slack-path"},
		API:    app.APIConfig{OperateTokens: []string{"alice:" + operateSecret}}}, zap.New(core))
	lines := logs.FilterMessage("starting").All()
	if len(lines) != 1 {
		t.Fatalf("got %d startup lines", len(lines))
	}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	buf, err := enc.EncodeEntry(lines[0].Entry, lines[0].Context)
	if err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	for _, want := range []string{`"version":"1.2.3"`, `"revision":`, `"apply_policy":"workspace"`, `"operate_tokens":["alice"]`,
		`"slack":true`, `"token":true`, `"reconcile_interval":`} {
		if !strings.Contains(line, want) {
			t.Errorf("the startup line does not say %s:\n%s", want, line)
		}
	}
	for _, secret := range []string{"sim-token", operateSecret, "secret-slack-path", webhookToken} {
		if strings.Contains(line, secret) {
			t.Errorf("the startup line holds a secret: %s", line)
		}
	}
	if m := scrape(t, d); !strings.Contains(m, `orchestrator_build_info{go_version="go`) || !strings.Contains(m, `version="1.2.3"} 1`) {
		t.Errorf("no build info in /metrics")
	}
}

// A freeze window in force holds dispatching as a pause does, saying until
// when; lifting it lets the same cascade go on.
func TestFreezeWindowHoldsDispatching(t *testing.T) {
	o := newOperators(t, []tfesim.WorkspaceSpec{ws("root", 0), ws("net", 1000)}, []string{"root>net"}, dispatcher.Options{})
	c := o.api(o.a, operateSecret)
	now := time.Now().UTC()
	if _, err := c.SetFreezes(o.ctx, api.FreezesRequest{Freezes: []dispatcher.Freeze{{Organization: "acme", Start: now.Add(-time.Minute), End: now.Add(time.Hour), Why: "quarter close"}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetFreezes(o.ctx, api.FreezesRequest{Freezes: []dispatcher.Freeze{{Start: now, End: now.Add(-time.Hour), Why: "backwards"}}}); !api.IsStatus(err, 400) {
		t.Errorf("a window that ends before it starts: %v, want 400", err)
	}
	id := o.start("root")
	o.view(c, id, "the freeze to hold net", func(v *dispatcher.View) bool {
		m := member(v, "net")
		return m.State == cascade.Waiting && strings.Contains(m.Reason, "freeze window until") && strings.Contains(m.Reason, "quarter close")
	})
	if n := o.created("net", id); n != 0 {
		t.Fatalf("a frozen cascade created %d runs", n)
	}
	if _, err := c.SetFreezes(o.ctx, api.FreezesRequest{Why: "quarter closed"}); err != nil {
		t.Fatal(err)
	}
	v := o.view(c, id, "the cascade to finish once the freeze is lifted", done)
	if v.Outcome != cascade.OutcomeApplied {
		t.Fatalf("outcome %s:%s", v.Outcome, states(v))
	}
	o.appliedOnce(v, "net")
}
