package dispatcher_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/dispatcher"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

const webhookToken = "webhook-token"

// harness is the whole path on one machine: the simulator sends signed
// notifications to the real webhook handler, which stores them in an
// embedded JetStream that engines consume; engines read TFE and create
// runs in the simulator through the unmodified go-tfe client.
type harness struct {
	t      testing.TB
	ctx    context.Context
	sim    *tfesim.Sim
	simURL string
	client *tfe.Client // the test's own: a person's and the checks'
	js     jetstream.JetStream
	hook   string // webhook URL
	alerts *testutil.Alerts
}

// org describes an organization: workspaces and the edges between them.
type org struct {
	workspaces []tfesim.WorkspaceSpec
	edges      [][2]string
}

// How a workspace applies runs its run triggers queue.
type approval int

const (
	autoApply      approval = iota // auto-apply and auto-apply-run-trigger
	triggerApply                   // only auto-apply-run-trigger: the usual setting of chained workspaces
	personApproves                 // neither: a person confirms each run
)

func ws(name string, planMS, applyMS int64) tfesim.WorkspaceSpec {
	return wsKind(name, autoApply, planMS, applyMS)
}

func wsKind(name string, kind approval, planMS, applyMS int64) tfesim.WorkspaceSpec {
	return tfesim.WorkspaceSpec{Name: name, AutoApply: kind == autoApply, AutoApplyRunTrigger: kind != personApproves,
		Behavior: tfesim.Behavior{PlanDurationMS: planMS, ApplyDurationMS: applyMS}}
}

func newHarness(t testing.TB, o org, simOpts tfesim.Options) *harness {
	t.Helper()
	js, _ := testutil.JetStream(t)
	return newHarnessOn(t, js, events.StreamOptions{}, o, simOpts)
}

// newHarnessOn builds the harness on a JetStream of the test's (a cluster).
func newHarnessOn(t testing.TB, js jetstream.JetStream, stream events.StreamOptions, o org, simOpts tfesim.Options) *harness {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if _, err := events.EnsureStream(ctx, js, stream); err != nil {
		t.Fatal(err)
	}
	wh, err := events.NewWebhook(events.WebhookOptions{Tokens: []string{webhookToken}}, events.NewPublisher(js, events.DefaultStreamName),
		events.NewMetrics(prometheus.NewRegistry()), zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)).Named("webhook"))
	if err != nil {
		t.Fatal(err)
	}
	hookSrv := httptest.NewServer(wh)
	t.Cleanup(hookSrv.Close)

	// Instant phases unless a test times them: each workspace sets its own
	// durations.
	simOpts.Token = simtest.Token
	simSrv := simtest.Start(t, simOpts)
	sim := simSrv.Sim

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
	return &harness{t: t, ctx: ctx, sim: sim, simURL: simSrv.URL, client: simSrv.Client, js: js, hook: hookSrv.URL, alerts: &testutil.Alerts{}}
}

// fastOptions are engine options for tests: short waits, so that
// recovery, rechecks and takeovers happen within a test's time.
func fastOptions() dispatcher.Options {
	return dispatcher.Options{
		AckWait: time.Second, LeaseTTL: 2 * time.Second, Debounce: 20 * time.Millisecond,
		Policy: cascade.Policy{
			Recheck: time.Second, LockedRetry: 100 * time.Millisecond, LockedAlertAfter: 300 * time.Millisecond,
			NativeGrace: 300 * time.Millisecond, Soon: 100 * time.Millisecond, CreateTimeout: 2 * time.Second,
			CreateSettle: 500 * time.Millisecond, ApprovalReminder: time.Hour,
		},
	}
}

// engine starts an engine (a replica) with a go-tfe client of its own;
// stop ends it and waits.
func (h *harness) engine(opts dispatcher.Options) (*dispatcher.Dispatcher, func()) {
	h.t.Helper()
	return h.engineWith(opts, nil)
}

// engineWith starts an engine whose requests to TFE go through transport
// (nil: straight).
func (h *harness) engineWith(opts dispatcher.Options, transport http.RoundTripper) (*dispatcher.Dispatcher, func()) {
	h.t.Helper()
	return h.engineOn(h.js, opts, transport)
}

// engineOn starts an engine on a JetStream connection of its own.
func (h *harness) engineOn(js jetstream.JetStream, opts dispatcher.Options, transport http.RoundTripper) (*dispatcher.Dispatcher, func()) {
	h.t.Helper()
	if transport == nil {
		transport = http.DefaultTransport
	}
	httpClient := &http.Client{Timeout: 30 * time.Second, Transport: tfeclient.Transport(transport)}
	client, err := tfe.NewClient(&tfe.Config{Address: h.simURL, Token: simtest.Token, HTTPClient: httpClient, RetryServerErrors: true})
	if err != nil {
		h.t.Fatal(err)
	}
	opts.Address = h.simURL
	api := tfeclient.New(client)
	d, err := dispatcher.New(h.ctx, opts, dispatcher.Deps{
		JetStream: js, Runs: api, Workspaces: api, ToolVersions: api, Users: api,
		StateVersions: api,
		Planner:       tfegraph.NewCache(api, time.Minute, nil), Alerts: h.alerts,
		Log: harnessLog(h.t, fmt.Sprintf("engine-%d", engines.Add(1))),
	})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(h.ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				h.t.Errorf("engine: %v", err)
			}
		})
	}
	h.t.Cleanup(stop)
	return d, stop
}

var engines atomic.Int64 // engines started, to tell them apart in a log

// harnessLog is an engine's log: warnings in the test's output, and with
// ORCHESTRATOR_TEST_LOG set, everything in that file too (for a failure
// that needs the whole story).
func harnessLog(t testing.TB, instance string) *zap.Logger {
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	path := os.Getenv("ORCHESTRATOR_TEST_LOG")
	if path == "" {
		return log
	}
	return zap.New(zapcore.NewTee(log.Core(), debugLog(t, path).Core())).With(zap.String("test", t.Name()), zap.String("engine", instance))
}

// debugLog is a logger writing everything, debug included, to the file at
// path (appended to).
func debugLog(t testing.TB, path string) *zap.Logger {
	cfg := zap.NewDevelopmentConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.DebugLevel)
	cfg.OutputPaths = []string{path}
	log, err := cfg.Build()
	if err != nil {
		t.Fatal(err)
	}
	return log
}

func (h *harness) id(name string) string { return h.sim.WorkspaceID("acme", name) }

// start queues a run in the root workspace, as a person would through the
// API (it applies on its own), and returns its ID.
func (h *harness) start(root string) string {
	h.t.Helper()
	r, err := h.client.Runs.Create(h.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: h.id(root)}, Message: tfe.String("deploy " + root),
		AutoApply: tfe.Bool(true)})
	if err != nil {
		h.t.Fatal(err)
	}
	return r.ID
}

// runs lists a workspace's runs, newest first.
func (h *harness) runs(name string) []*tfe.Run {
	h.t.Helper()
	list, err := h.client.Runs.List(h.ctx, h.id(name), &tfe.RunListOptions{ListOptions: tfe.ListOptions{PageSize: 100}})
	if err != nil {
		h.t.Fatal(err)
	}
	return list.Items
}

// applied returns the runs of a workspace that applied.
func (h *harness) applied(name string) []*tfe.Run {
	var out []*tfe.Run
	for _, r := range h.runs(name) {
		if r.Status == tfe.RunApplied {
			out = append(out, r)
		}
	}
	return out
}

// viewPoll is how often done and until read a cascade's view: a snapshot
// reads every member from KV, and reading it every few milliseconds took
// a tenth of a test's CPU from the engines it waits on (tests run in
// parallel); a cascade's members change on the scale of a run's phases.
const viewPoll = 25 * time.Millisecond

// done waits until cascade id is done, through the read model.
func (h *harness) done(d *dispatcher.Dispatcher, id string, timeout time.Duration) *dispatcher.View {
	h.t.Helper()
	var v *dispatcher.View
	deadline := time.Now().Add(timeout)
	for {
		var err error
		v, err = d.Reads().Snapshot(h.ctx, id)
		if err == nil && v.State == dispatcher.StateDone {
			return v
		}
		if time.Now().After(deadline) {
			if v != nil {
				h.t.Fatalf("cascade %s not done after %s:%s%s", id, timeout, states(v), h.inTFE(v))
			}
			h.t.Fatalf("cascade %s not done after %s: %v", id, timeout, err)
		}
		time.Sleep(viewPoll)
	}
}

// until waits for the cascade's view to satisfy cond, and fails the test
// with the members' states when timeout passes first.
func (h *harness) until(d *dispatcher.Dispatcher, id, what string, timeout time.Duration, cond func(*dispatcher.View) bool) {
	h.t.Helper()
	var v *dispatcher.View
	deadline := time.Now().Add(timeout)
	for {
		var err error
		v, err = d.Reads().Snapshot(h.ctx, id)
		if err == nil && cond(v) {
			return
		}
		if time.Now().After(deadline) {
			if v != nil {
				h.t.Fatalf("timed out after %s waiting for %s:%s%s", timeout, what, states(v), h.inTFE(v))
			}
			h.t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, err)
		}
		time.Sleep(viewPoll)
	}
}

// person confirms, through the API as a person would, every run of the
// cascade that waits in the named workspaces, until the test ends.
func (h *harness) person(d *dispatcher.Dispatcher, id string, names ...string) {
	ctx, cancel := context.WithCancel(h.ctx)
	h.t.Cleanup(cancel)
	go func() {
		for ctx.Err() == nil {
			v, err := d.Reads().Snapshot(ctx, id)
			if err == nil {
				for _, m := range v.Members {
					if m.State == cascade.AwaitingApproval && slices.Contains(names, m.Name) {
						_ = h.client.Runs.Apply(ctx, m.RunID, tfe.RunApplyOptions{Comment: tfe.String("looks good")})
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
}

// untilEnded is a phase duration (ms) that never ends on its own in a
// test: an hour. The test ends it when it chooses (see pace).
const untilEnded = 3_600_000

// pace drives the timed phases of the runs of the cascade rootRun starts,
// instead of the wall clock, until the test ends: the root run's phases,
// and those of every run the engine has taken as a member's (its own, or
// one TFE's run triggers queued that it adopted), end as soon as pace sees
// them; a run the engine has not taken never moves on by pace. A test
// whose runs queue or plan for untilEnded has, for each run TFE queues
// too early, all the time a look needs to stop it, however loaded the
// machine, and waits for no phase longer than the engine takes to act.
// A run the engine should have stopped and did not is still going when
// the cascade is done: checkOnce fails the test.
//
// With names, pace moves only the runs of those members (and the root's).
// It returns a stop, which waits for pace to end; the test's end stops it
// too.
func (h *harness) pace(d *dispatcher.Dispatcher, rootRun string, names ...string) (stop func()) {
	ctx, cancel := context.WithCancel(h.ctx)
	id := cascade.ID(rootRun)
	done := make(chan struct{})
	stop = func() {
		cancel()
		<-done
	}
	h.t.Cleanup(stop)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			// Errors are phases not timed (the run waits for a lock, a
			// person, or ended): the next round looks again.
			_ = h.sim.FinishPhase(rootRun)
			if v, err := d.Reads().Snapshot(ctx, id); err == nil {
				for _, m := range v.Members {
					if m.RunID != "" && !cascade.Final(m.RunStatus) && (len(names) == 0 || slices.Contains(names, m.Name)) {
						_ = h.sim.FinishPhase(m.RunID)
					}
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(viewPoll):
			}
		}
	}()
	return stop
}

// describeRuns says what each run was, for a failure's message.
func describeRuns(runs []*tfe.Run) string {
	var b strings.Builder
	for _, r := range runs {
		fmt.Fprintf(&b, "\n\t%s %s source=%s created=%s applied=%s message=%q", r.ID, r.Status, r.Source,
			r.CreatedAt.Format("15:04:05.000"), r.StatusTimestamps.AppliedAt.Format("15:04:05.000"), r.Message)
	}
	return b.String()
}

// checkOnce checks C2, C3 and C7 from TFE's own records: every member that
// applied has exactly one applied run since the cascade started, created
// after every upstream's run applied, and no member has a run left going.
func (h *harness) checkOnce(v *dispatcher.View, rootRun string) {
	h.t.Helper()
	root, err := h.client.Runs.Read(h.ctx, rootRun)
	if err != nil {
		h.t.Fatal(err)
	}
	appliedAt := map[string]time.Time{v.Root: root.StatusTimestamps.AppliedAt}
	created := map[string]time.Time{}
	for _, m := range v.Members {
		var since []*tfe.Run
		for _, r := range h.runs(m.Name) {
			if !r.CreatedAt.Before(root.CreatedAt) {
				since = append(since, r)
			}
			if !cascade.Final(string(r.Status)) {
				h.t.Errorf("%s: run %s is still %s when the cascade is done", m.Name, r.ID, r.Status)
			}
		}
		var applied []*tfe.Run
		for _, r := range since {
			if r.Status == tfe.RunApplied {
				applied = append(applied, r)
			}
		}
		switch {
		case m.State == cascade.Applied && (len(applied) != 1 || applied[0].ID != m.RunID):
			h.t.Errorf("%s: applied %s, but TFE has %d applied runs since the cascade started: %s", m.Name, m.RunID, len(applied), describeRuns(applied))
		case m.State != cascade.Applied && len(applied) > 0:
			h.t.Errorf("%s: %s, but run %s applied there", m.Name, m.State, applied[0].ID)
		}
		if m.State == cascade.Applied {
			full, err := h.client.Runs.Read(h.ctx, m.RunID)
			if err != nil {
				h.t.Fatal(err)
			}
			created[m.Name], appliedAt[m.Name] = full.CreatedAt, full.StatusTimestamps.AppliedAt
		}
	}
	for _, m := range v.Members {
		if m.State != cascade.Applied {
			continue
		}
		for _, up := range m.WaitsFor {
			if at, ok := appliedAt[up]; ok && created[m.Name].Before(at) {
				h.t.Errorf("%s's run was created at %s, before %s applied at %s", m.Name, created[m.Name].Format(time.StampMilli), up, at.Format(time.StampMilli))
			}
		}
	}
}

// apiCalls counts the requests the simulator served, but pings.
func apiCalls(st tfesim.Stats) int {
	n := 0
	for route, c := range st.Requests {
		if !strings.HasSuffix(route, "/ping") && !strings.HasPrefix(route, "GET /_sim") && !strings.HasPrefix(route, "PUT /_archivist") {
			n += c
		}
	}
	return n
}

func states(v *dispatcher.View) string {
	var b strings.Builder
	for _, m := range v.Members {
		fmt.Fprintf(&b, "\n  %s: %s %q run %s (%s) hold %q", m.Name, m.State, m.Reason, m.RunID, m.RunStatus, m.Hold)
	}
	return b.String()
}

func chain(n int, kind approval, planMS int64) org {
	var o org
	for i := range n {
		o.workspaces = append(o.workspaces, wsKind(fmt.Sprintf("c%02d", i), kind, planMS, 20))
		if i > 0 {
			o.edges = append(o.edges, [2]string{fmt.Sprintf("c%02d", i-1), fmt.Sprintf("c%02d", i)})
		}
	}
	return o
}

// layered is a root and layers×width workspaces; each workspace of a layer
// has two upstreams in the layer before (the root for the first).
func layered(layers, width int, kind approval, planMS, applyMS int64) org {
	o := org{workspaces: []tfesim.WorkspaceSpec{wsKind("root", autoApply, planMS, applyMS)}}
	name := func(l, i int) string { return fmt.Sprintf("l%02d-%03d", l, i) }
	for l := range layers {
		for i := range width {
			// Upstreams finish a little apart, as they do in life.
			jitter := int64((l*7+i*13)%10) * 15
			o.workspaces = append(o.workspaces, wsKind(name(l, i), kind, planMS+jitter, applyMS))
			if l == 0 {
				o.edges = append(o.edges, [2]string{"root", name(l, i)})
				continue
			}
			o.edges = append(o.edges, [2]string{name(l-1, i), name(l, i)}, [2]string{name(l-1, (i+1)%width), name(l, i)})
		}
	}
	return o
}

func discardOpts(comment string) tfe.RunDiscardOptions {
	return tfe.RunDiscardOptions{Comment: tfe.String(comment)}
}
