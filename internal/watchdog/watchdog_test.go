package watchdog_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/testutil"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
	"github.com/tfe-orchestrator/orchestrator/internal/watchdog"
)

type env struct {
	t      *testing.T
	ctx    context.Context
	sim    *tfesim.Sim
	clock  *tfesim.ManualClock
	client *tfe.Client
	tfe    *tfeclient.TFE // over client
	js     jetstream.JetStream
	alerts *testutil.Alerts
}

// newEnv runs the simulator on a manual clock that the watchdogs share.
func newEnv(t *testing.T, workspaces ...tfesim.WorkspaceSpec) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	clock := tfesim.NewManualClock(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	srv := simtest.Start(t, tfesim.Options{Clock: clock})
	sim, client := srv.Sim, srv.Client
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{{Name: "acme", Email: "ops@acme.test", Workspaces: workspaces}}}); err != nil {
		t.Fatal(err)
	}
	js, _ := testutil.JetStream(t)
	return &env{t: t, ctx: ctx, sim: sim, clock: clock, client: client, tfe: tfeclient.New(client), js: js, alerts: &testutil.Alerts{}}
}

func (e *env) watchdog(opts watchdog.Options) *watchdog.Watchdog {
	e.t.Helper()
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	w, err := watchdog.New(e.ctx, opts, watchdog.Deps{
		JetStream: e.js, AdminRuns: e.tfe, Runs: e.tfe, Workspaces: e.tfe, Alerts: e.alerts, Log: zap.NewNop(),
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// lead runs w until it holds the lease.
func (e *env) lead(w *watchdog.Watchdog) (stop func()) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx)
	}()
	stop = func() { cancel(); <-done }
	e.t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.WaitFor(t, what, 20*time.Second, cond)
}

func (e *env) run(name string) string {
	e.t.Helper()
	r, err := e.client.Runs.Create(e.ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: e.sim.WorkspaceID("acme", name)}})
	if err != nil {
		e.t.Fatal(err)
	}
	return r.ID
}

func (e *env) status(runID string) tfe.RunStatus {
	e.t.Helper()
	r, err := e.client.Runs.Read(e.ctx, runID)
	if err != nil {
		e.t.Fatal(err)
	}
	return r.Status
}

func (e *env) comments(runID string) []string {
	e.t.Helper()
	list, err := e.client.Comments.List(e.ctx, runID)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, c := range list.Items {
		out = append(out, c.Body)
	}
	return out
}

func stuck(name, status string) tfesim.WorkspaceSpec {
	return tfesim.WorkspaceSpec{Name: name, AutoApply: true, Behavior: tfesim.Behavior{StuckIn: status}}
}

func TestStuckPlanningIsCancelledOnce(t *testing.T) {
	slow := tfesim.WorkspaceSpec{Name: "slow", AutoApply: true, Behavior: tfesim.Behavior{PlanDurationMS: (3 * time.Hour).Milliseconds()}}
	e := newEnv(t, stuck("stuck", "planning"), slow)
	// slow's history: one run that planned for 3h, so its planning budget
	// is 3 × 3h = 9h.
	e.run("slow")
	e.sim.Advance(3 * time.Hour)
	stuckRun := e.run("stuck")
	slowRun := e.run("slow")
	e.sim.Advance(2 * time.Hour) // both have planned for 2h; stuck's budget is the 30m floor

	w := e.watchdog(watchdog.Options{})
	e.lead(w)
	waitFor(t, "the lease", w.Leader)
	for range 3 { // repeated scans must not cancel twice
		if err := w.Scan(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.status(stuckRun); got != tfe.RunCanceled { // TFE's admin force-cancel ends a run canceled
		t.Errorf("stuck run: got %s, want canceled", got)
	}
	if c := e.comments(stuckRun); len(c) != 1 || !strings.Contains(c[0], "planning for 2h0m0s, over its budget of 30m0s") {
		t.Errorf("stuck run comments: %q", c)
	}
	if got := e.status(slowRun); got != tfe.RunPlanning {
		t.Errorf("slow run under its budget: got %s, want planning", got)
	}
	if got := e.alerts.Of(alerts.KindRunCancelled); len(got) != 1 || got[0].RunID != stuckRun || got[0].Workspace != "stuck" || got[0].Organization != "acme" {
		t.Errorf("cancel alerts: %+v, want one for the stuck run", got)
	}
}

func TestStuckApplyingAlertsUnlessOptedIn(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(map[bool]string{false: "default", true: "opted in"}[allow], func(t *testing.T) {
			e := newEnv(t, stuck("state", "applying"))
			r := e.run("state")
			e.sim.Advance(3 * time.Hour) // the applying floor is 1h
			w := e.watchdog(watchdog.Options{AllowApplying: allow})
			e.lead(w)
			waitFor(t, "the lease", w.Leader)
			if err := w.Scan(e.ctx); err != nil {
				t.Fatal(err)
			}
			want, kind := tfe.RunStatus("applying"), alerts.KindStuckRun
			if allow {
				want, kind = tfe.RunCanceled, alerts.KindRunCancelled
			}
			if got := e.status(r); got != want {
				t.Errorf("got %s, want %s", got, want)
			}
			if got := e.alerts.Of(kind); len(got) != 1 {
				t.Errorf("%s alerts: got %d, want 1", kind, len(got))
			}
		})
	}
}

func TestRemindersOnly(t *testing.T) {
	confirm := tfesim.WorkspaceSpec{Name: "confirm"} // no auto-apply: waits at planned
	locked := tfesim.WorkspaceSpec{Name: "locked", AutoApply: true, Locked: true}
	e := newEnv(t, confirm, locked)
	planned := e.run("confirm")
	pending := e.run("locked")
	e.sim.Advance(48 * time.Hour)
	w := e.watchdog(watchdog.Options{})
	e.lead(w)
	waitFor(t, "the lease", w.Leader)
	if err := w.Scan(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.status(planned); got != tfe.RunPlanned {
		t.Errorf("awaiting confirmation: got %s, want planned", got)
	}
	if got := e.status(pending); got != tfe.RunPending {
		t.Errorf("behind a lock: got %s, want pending", got)
	}
	reminders := e.alerts.Of(alerts.KindReminder)
	if len(reminders) != 2 || len(e.alerts.Of(alerts.KindRunCancelled)) != 0 {
		t.Fatalf("got %d reminders and %d cancels, want 2 and 0", len(reminders), len(e.alerts.Of(alerts.KindRunCancelled)))
	}
	all := reminders[0].Message + "\n" + reminders[1].Message
	for _, want := range []string{"waits for a person: planned", "queued behind a locked workspace"} {
		if !strings.Contains(all, want) {
			t.Errorf("reminders do not say %q:\n%s", want, all)
		}
	}
}

func TestDryRunCancelsNothing(t *testing.T) {
	e := newEnv(t, stuck("stuck", "plan_queued"))
	r := e.run("stuck")
	e.sim.Advance(time.Hour)
	w := e.watchdog(watchdog.Options{DryRun: true})
	e.lead(w)
	waitFor(t, "the lease", w.Leader)
	if err := w.Scan(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.status(r); got != tfe.RunPlanQueued {
		t.Errorf("dry run: got %s, want plan_queued", got)
	}
	if got := e.alerts.Of(alerts.KindStuckRun); len(got) != 1 || !strings.Contains(got[0].Message, "dry run: would force-cancel") {
		t.Errorf("dry-run alerts: %+v", got)
	}
}

// Two watchdogs: one acts; when it stops, the other takes over within the
// lease TTL, and no run is cancelled twice.
func TestTwoWatchdogs(t *testing.T) {
	e := newEnv(t, stuck("one", "planning"), stuck("two", "planning"))
	opts := watchdog.Options{Interval: 20 * time.Millisecond, LeaseTTL: time.Second}
	a, b := e.watchdog(opts), e.watchdog(opts)
	stopA := e.lead(a)
	waitFor(t, "a to lead", a.Leader)
	stopB := e.lead(b)

	first := e.run("one")
	e.sim.Advance(time.Hour)
	waitFor(t, "the first stuck run to be cancelled", func() bool { return e.status(first) == tfe.RunCanceled })
	if b.Leader() {
		t.Fatal("two watchdogs lead at once")
	}

	stopA()
	second := e.run("two")
	e.sim.Advance(time.Hour)
	waitFor(t, "b to take over", b.Leader)
	waitFor(t, "the second stuck run to be cancelled", func() bool { return e.status(second) == tfe.RunCanceled })
	stopB()
	for _, r := range []string{first, second} {
		if c := e.comments(r); len(c) != 1 {
			t.Errorf("run %s has %d cancel comments, want 1", r, len(c))
		}
	}
	if got := len(e.alerts.Of(alerts.KindRunCancelled)); got != 2 {
		t.Errorf("cancel alerts: got %d, want 2", got)
	}
}

func TestBudgetFlag(t *testing.T) {
	var b watchdog.Budgets
	for _, v := range []string{"planning=45m", "queued=5m"} {
		if err := b.Set(v); err != nil {
			t.Fatal(err)
		}
	}
	if b.For(watchdog.GroupPlanning, time.Hour, 0) != 45*time.Minute || b.For(watchdog.GroupQueued, 0, 0) != 5*time.Minute {
		t.Errorf("set budgets not used: %s", b.String())
	}
	if got := b.For(watchdog.GroupApplying, 0, 30*time.Minute); got != 90*time.Minute {
		t.Errorf("applying budget from a 30m average: got %s, want 1h30m (3×)", got)
	}
	if got := b.For(watchdog.GroupApplying, 0, time.Minute); got != time.Hour {
		t.Errorf("applying budget from a 1m average: got %s, want the 1h floor", got)
	}
	for _, bad := range []string{"planning", "planning=soon", "lunch=1h", "queued=-1m"} {
		if err := b.Set(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// Without the admin API: each workspace's current run is read from the
// workspace list, a stuck run gets a cancel request, then the force-cancel
// TFE allows an hour later; a slow run under the budget its average gives
// is left alone (the list's averages are in milliseconds).
func TestWorkspaceScan(t *testing.T) {
	slow := tfesim.WorkspaceSpec{Name: "slow", AutoApply: true, Behavior: tfesim.Behavior{PlanDurationMS: (4 * time.Hour).Milliseconds()}}
	e := newEnv(t, stuck("stuck", "planning"), slow)
	e.run("slow")
	e.sim.Advance(4 * time.Hour) // slow's plan average: 4h
	stuckRun := e.run("stuck")
	slowRun := e.run("slow")
	e.sim.Advance(2 * time.Hour)

	w, err := watchdog.New(e.ctx, watchdog.Options{Now: e.clock.Now, Scan: watchdog.ScanWorkspaces, Organizations: []string{"acme"}},
		watchdog.Deps{JetStream: e.js, Runs: e.tfe, Workspaces: e.tfe, Alerts: e.alerts, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	e.lead(w)
	waitFor(t, "the lease", w.Leader)
	e.sim.ResetStats()
	for range 2 {
		if err := w.Scan(e.ctx); err != nil {
			t.Fatal(err)
		}
	}
	st := e.sim.Stats()
	if st.Requests["GET /api/v2/organizations/{org}/workspaces"] != 2 || st.Requests["POST /api/v2/runs/{id}/actions/cancel"] != 1 {
		t.Errorf("two scans cost %v, want two workspace lists and one cancel", st.Requests)
	}
	if got := e.status(stuckRun); got != tfe.RunPlanning {
		t.Fatalf("a stuck run ignores a cancel: got %s", got)
	}
	e.sim.Advance(time.Hour) // TFE allows force-cancel an hour after the cancel
	if err := w.Scan(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.status(stuckRun); got != "force_canceled" {
		t.Errorf("after the cool-off: got %s, want force_canceled", got)
	}
	if got := e.status(slowRun); got != tfe.RunPlanning {
		t.Errorf("slow run: got %s, want planning", got)
	}
	if c := e.comments(stuckRun); len(c) != 2 {
		t.Errorf("stuck run comments: %q, want the cancel's and the force-cancel's", c)
	}
	if _, err := watchdog.New(e.ctx, watchdog.Options{Scan: watchdog.ScanWorkspaces}, watchdog.Deps{JetStream: e.js}); err == nil {
		t.Error("a workspace scan without organizations was accepted")
	}
}

// Between scans the watchdog follows the run events: a run the events say
// has been planning past its budget is read once through the API and
// cancelled, with no scan at all; while no run is overdue it costs no call.
func TestRunEventsBetweenScans(t *testing.T) {
	e := newEnv(t, stuck("stuck", "planning"), tfesim.WorkspaceSpec{Name: "fine", AutoApply: true})
	if _, err := events.EnsureStream(e.ctx, e.js, events.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	publish := func(runID, ws, status string) {
		t.Helper()
		ev := events.RunEvent{Organization: "acme", WorkspaceID: e.sim.WorkspaceID("acme", ws), WorkspaceName: ws,
			RunID: runID, Trigger: "run:planning", Status: status, UpdatedAt: e.clock.Now()}
		if _, err := events.NewPublisher(e.js, events.DefaultStreamName).Publish(e.ctx, &ev); err != nil {
			t.Fatal(err)
		}
	}
	stuckRun := e.run("stuck")
	publish(stuckRun, "stuck", "planning")
	w := e.watchdog(watchdog.Options{Interval: time.Hour, EventCheck: 20 * time.Millisecond, Stream: events.DefaultStreamName})
	e.lead(w)
	waitFor(t, "the lease", w.Leader)
	e.sim.ResetStats()
	// Within budget: several event checks go by without an API call.
	waitFor(t, "event checks to run", func() bool { return w.EventChecks() >= 5 })
	if n := e.sim.Stats().Requests["GET /api/v2/runs/{id}"]; n != 0 {
		t.Fatalf("%d run reads while nothing was overdue", n)
	}
	e.sim.Advance(time.Hour) // past the 30m planning floor
	waitFor(t, "the stuck run to be cancelled from the events", func() bool { return e.status(stuckRun) == tfe.RunCanceled })
	if n := e.sim.Stats().Requests["GET /api/v2/admin/runs"]; n != 0 {
		t.Errorf("%d scans ran; the events alone should have found the run", n)
	}
}

// The lease is fenced by its deadline: a watchdog whose lease passed its
// deadline writes nothing (no claim, no cancel), although its key is still
// in the bucket; the same lease within its deadline cancels the run.
func TestLeasePastItsDeadlineCancelsNothing(t *testing.T) {
	e := newEnv(t, stuck("stuck", "planning"))
	r := e.run("stuck")
	e.sim.Advance(2 * time.Hour) // the planning floor is 30m
	w := e.watchdog(watchdog.Options{LeaseTTL: time.Minute})
	var skew atomic.Int64
	watchdog.SetLeaseClock(w, func() time.Time { return time.Now().Add(time.Duration(skew.Load())) })
	if ok, err := watchdog.TakeLease(e.ctx, w); err != nil || !ok {
		t.Fatalf("take the lease: %v %v", ok, err)
	}
	if !w.Leader() {
		t.Fatal("a watchdog that just took the lease does not lead")
	}

	skew.Store(int64(time.Minute)) // past the deadline: 48s after the take
	if w.Leader() {
		t.Error("a watchdog whose lease passed its deadline leads")
	}
	if err := w.Scan(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.status(r); got != tfe.RunPlanning {
		t.Errorf("past the lease's deadline: got %s, want planning (not cancelled)", got)
	}
	if c := e.comments(r); len(c) != 0 {
		t.Errorf("past the lease's deadline: comments %q, want none", c)
	}
	claims, err := e.js.KeyValue(e.ctx, "watchdog-claims")
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := claims.Keys(e.ctx); !errors.Is(err, jetstream.ErrNoKeysFound) {
		t.Errorf("past the lease's deadline: claims %q (%v), want none", keys, err)
	}

	skew.Store(0) // the same lease, within its deadline
	if err := w.Scan(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.status(r); got != tfe.RunCanceled {
		t.Errorf("within the lease's deadline: got %s, want canceled", got)
	}
	if got := e.alerts.Of(alerts.KindRunCancelled); len(got) != 1 {
		t.Errorf("cancel alerts: got %d, want 1", len(got))
	}
}
