package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

const webhookToken = "webhook-token"

// harness is the whole path on one machine: the simulator sends signed
// notifications to the real webhook handler, which stores them in an
// embedded JetStream that dispatchers consume; dispatchers create runs in
// the simulator through go-tfe.
type harness struct {
	t      testing.TB
	ctx    context.Context
	sim    *tfesim.Sim
	simURL string
	client *tfe.Client
	js     jetstream.JetStream
	hook   string // webhook URL
	alerts *testutil.Alerts
}

// org describes a scenario: workspaces with plan/apply durations and edges.
type org struct {
	workspaces []tfesim.WorkspaceSpec
	edges      [][2]string
}

func ws(name string, planMS, applyMS int64) tfesim.WorkspaceSpec {
	return tfesim.WorkspaceSpec{Name: name, AutoApply: true, Behavior: tfesim.Behavior{PlanDurationMS: planMS, ApplyDurationMS: applyMS}}
}

func newHarness(t testing.TB, o org, simOpts tfesim.Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	js, _ := testutil.JetStream(t)
	if _, err := events.EnsureStream(ctx, js, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	wh, err := events.NewWebhook(events.WebhookOptions{Tokens: []string{webhookToken}}, events.NewPublisher(js, events.DefaultStreamName),
		events.NewMetrics(prometheus.NewRegistry()), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(wh)
	t.Cleanup(hookSrv.Close)

	simOpts.Token = "sim-token"
	if simOpts.RateLimit == 0 {
		simOpts.RateLimit = -1
	}
	if simOpts.Timing == nil {
		simOpts.Timing = &tfesim.Timing{} // each workspace sets its own durations
	}
	sim, err := tfesim.New(simOpts)
	if err != nil {
		t.Fatal(err)
	}
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)
	simDone := make(chan struct{})
	go func() {
		defer close(simDone)
		_ = sim.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-simDone })

	spec := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: o.workspaces,
		Notifications: []tfesim.ScenarioNotification{{NotificationSpec: tfesim.NotificationSpec{
			Name: "orchestrator", URL: hookSrv.URL, Token: webhookToken,
			Triggers: []string{"run:created", "run:planning", "run:needs_attention", "run:applying", "run:completed", "run:errored"},
		}}}}
	for _, e := range o.edges {
		spec.RunTriggers = append(spec.RunTriggers, tfesim.RunTriggerSpec{Source: e[0], Target: e[1]})
	}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{spec}}); err != nil {
		t.Fatal(err)
	}
	client, err := tfe.NewClient(&tfe.Config{Address: simSrv.URL, Token: "sim-token", HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, ctx: ctx, sim: sim, simURL: simSrv.URL, client: client, js: js, hook: hookSrv.URL, alerts: &testutil.Alerts{}}
}

// fastOptions are dispatcher options for tests: short waits so that
// recovery and reconciliation happen within a test's time.
func fastOptions() dispatcher.Options {
	return dispatcher.Options{
		AckWait: 500 * time.Millisecond, ReconcileInterval: 100 * time.Millisecond, ReconcileAfter: 500 * time.Millisecond,
		LockedRetry: 100 * time.Millisecond, LockedAlertAfter: 300 * time.Millisecond,
	}
}

// dispatcher starts a dispatcher with its own go-tfe client; stop ends it
// and waits.
func (h *harness) dispatcher(opts dispatcher.Options, hook func(string) error) (stop func()) {
	h.t.Helper()
	client, err := tfe.NewClient(&tfe.Config{Address: h.simURL, Token: "sim-token"})
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := dispatcher.New(h.ctx, opts, dispatcher.Deps{
		JetStream: h.js, Runs: client.Runs, Workspaces: client.Workspaces, ToolVersions: client.Admin.TerraformVersions,
		Planner: tfegraph.NewCache(client.RunTriggers, time.Minute, nil), Alerts: h.alerts, Log: zaptest.NewLogger(h.t, zaptest.Level(zap.WarnLevel)),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	if hook != nil {
		d.SetHook(hook)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("dispatcher: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return stop
}

func (h *harness) id(name string) string { return h.sim.WorkspaceID("acme", name) }

// start queues a run in the root workspace (auto-applied) and returns its ID.
func (h *harness) start(root string) string {
	h.t.Helper()
	r, err := h.client.Runs.Create(h.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: h.id(root)}, Message: tfe.String("deploy " + root)})
	if err != nil {
		h.t.Fatal(err)
	}
	return r.ID
}

func (h *harness) runs(name string) []*tfe.Run {
	h.t.Helper()
	list, err := h.client.Runs.List(h.ctx, h.id(name), &tfe.RunListOptions{ListOptions: tfe.ListOptions{PageSize: 100}})
	if err != nil {
		h.t.Fatal(err)
	}
	return list.Items
}

// cascadeRuns returns the runs of name a cascade created.
func (h *harness) cascadeRuns(name string) []*tfe.Run {
	var out []*tfe.Run
	for _, r := range h.runs(name) {
		if strings.HasPrefix(r.Message, "cascade ") {
			out = append(out, r)
		}
	}
	return out
}

func (h *harness) waitFor(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	testutil.WaitFor(h.t, what, timeout, cond)
}

// applied reports whether every named workspace has one applied cascade run.
func (h *harness) applied(names ...string) bool {
	for _, n := range names {
		rs := h.cascadeRuns(n)
		if len(rs) != 1 || rs[0].Status != tfe.RunApplied {
			return false
		}
	}
	return true
}

// checkOrder checks C2 and C3 from the simulator's timestamps: each named
// workspace has exactly one cascade run, created after every upstream's
// run (the root's, or its cascade run) applied.
func (h *harness) checkOrder(rootRun string, root string, edges [][2]string, names []string) {
	h.t.Helper()
	appliedAt := map[string]time.Time{}
	r, err := h.client.Runs.Read(h.ctx, rootRun)
	if err != nil {
		h.t.Fatal(err)
	}
	appliedAt[root] = r.StatusTimestamps.AppliedAt
	created := map[string]time.Time{}
	for _, n := range names {
		rs := h.cascadeRuns(n)
		if len(rs) != 1 {
			h.t.Errorf("%s: got %d cascade runs, want exactly 1", n, len(rs))
			continue
		}
		full, err := h.client.Runs.Read(h.ctx, rs[0].ID)
		if err != nil {
			h.t.Fatal(err)
		}
		created[n], appliedAt[n] = full.CreatedAt, full.StatusTimestamps.AppliedAt
	}
	for _, e := range edges {
		up, down := e[0], e[1]
		if !slices.Contains(names, down) {
			continue
		}
		if at, ok := appliedAt[up]; !ok || at.IsZero() || created[down].Before(at) {
			h.t.Errorf("%s's run was created at %s, before %s applied at %s", down, created[down].Format(time.StampMilli), up, at.Format(time.StampMilli))
		}
	}
}

func chain(n int) org {
	var o org
	for i := range n {
		o.workspaces = append(o.workspaces, ws(fmt.Sprintf("c%02d", i), 5, 5))
		if i > 0 {
			o.edges = append(o.edges, [2]string{fmt.Sprintf("c%02d", i-1), fmt.Sprintf("c%02d", i)})
		}
	}
	return o
}

func names(o org, skip string) []string {
	var out []string
	for _, w := range o.workspaces {
		if w.Name != skip {
			out = append(out, w.Name)
		}
	}
	return out
}
