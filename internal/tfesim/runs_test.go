package tfesim_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

func (e *testEnv) wantStatus(runID string, want tfe.RunStatus) {
	e.t.Helper()
	if got := e.status(runID); got != want {
		e.t.Fatalf("run %s: got status %s, want %s", runID, got, want)
	}
}

func TestRunLifecycleAutoApply(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	e.behave(ws.ID, tfesim.Behavior{PlanDurationMS: 1000, ApplyDurationMS: 2000})

	r := e.run(ws.ID, tfe.RunCreateOptions{Message: tfe.String("deploy")})
	if r.Message != "deploy" || !r.AutoApply {
		t.Errorf("created run: message %q auto-apply %v, want deploy, true", r.Message, r.AutoApply)
	}
	e.wantStatus(r.ID, tfe.RunPlanning)
	e.sim.Advance(999 * time.Millisecond)
	e.wantStatus(r.ID, tfe.RunPlanning)
	e.sim.Advance(time.Millisecond)
	e.wantStatus(r.ID, tfe.RunApplying)
	e.sim.Advance(2 * time.Second)
	e.wantStatus(r.ID, tfe.RunApplied)

	got, err := e.client.Runs.Read(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	ts := got.StatusTimestamps
	if !ts.PlanningAt.Equal(epoch) || !ts.PlannedAt.Equal(epoch.Add(time.Second)) ||
		!ts.ApplyingAt.Equal(epoch.Add(time.Second)) || !ts.AppliedAt.Equal(epoch.Add(3*time.Second)) {
		t.Errorf("status timestamps: planning %v planned %v applying %v applied %v", ts.PlanningAt, ts.PlannedAt, ts.ApplyingAt, ts.AppliedAt)
	}
	if !got.HasChanges || got.Actions.IsCancelable || got.Actions.IsConfirmable {
		t.Errorf("applied run: has-changes %v, actions %+v", got.HasChanges, got.Actions)
	}

	w, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if w.PlanDurationAverage != time.Second || w.ApplyDurationAverage != 2*time.Second || w.RunsCount != 1 || w.RunFailures != 0 {
		t.Errorf("performance: plan %v apply %v runs %d failures %d; want 1s 2s 1 0",
			w.PlanDurationAverage, w.ApplyDurationAverage, w.RunsCount, w.RunFailures)
	}
}

// FinishPhase ends a timed phase at once, stamped with the clock's time,
// and the run moves on as it would have at the phase's end; a run that
// waits on a person or has ended is refused.
func TestFinishPhase(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	e.behave(ws.ID, tfesim.Behavior{PlanDurationMS: 3_600_000, ApplyDurationMS: 3_600_000})
	r := e.run(ws.ID, tfe.RunCreateOptions{})
	e.wantStatus(r.ID, tfe.RunPlanning)
	e.sim.Advance(time.Second)
	if err := e.sim.FinishPhase(r.ID); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(r.ID, tfe.RunApplying) // planned, then auto-applied, at once
	e.sim.Advance(time.Second)
	if err := e.sim.FinishPhase(r.ID); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(r.ID, tfe.RunApplied)
	got, err := e.client.Runs.Read(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ts := got.StatusTimestamps; !ts.PlannedAt.Equal(epoch.Add(time.Second)) || !ts.AppliedAt.Equal(epoch.Add(2*time.Second)) {
		t.Errorf("planned at %v, applied at %v; want the times FinishPhase was called", ts.PlannedAt, ts.AppliedAt)
	}
	if err := e.sim.FinishPhase(r.ID); err == nil {
		t.Error("an applied run's phase was finished")
	}

	person := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("app")})
	waits := e.run(person.ID, tfe.RunCreateOptions{})
	e.wantStatus(waits.ID, tfe.RunPlanned)
	if err := e.sim.FinishPhase(waits.ID); err == nil {
		t.Error("a run waiting for a person moved on")
	}
	e.wantStatus(waits.ID, tfe.RunPlanned)
	if err := e.sim.FinishPhase("run-doesnotexist0001"); err == nil {
		t.Error("a run the simulator does not know was finished")
	}
}

func TestRunLifecycleConfirm(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	e.behave(ws.ID, tfesim.Behavior{PlanDurationMS: 100, ApplyDurationMS: 100})

	first := e.run(ws.ID, tfe.RunCreateOptions{})
	second := e.run(ws.ID, tfe.RunCreateOptions{})
	queued, err := e.client.Runs.Read(e.ctx, second.ID)
	if err != nil {
		t.Fatal(err)
	}
	if queued.Status != tfe.RunPending || queued.PositionInQueue != 0 {
		t.Errorf("second run: got %s at position %d, want pending at 0", queued.Status, queued.PositionInQueue)
	}
	e.sim.Advance(time.Hour)
	e.wantStatus(first.ID, tfe.RunPlanned)
	e.wantStatus(second.ID, tfe.RunPending) // the planned run still holds the workspace

	if err := e.client.Runs.Apply(e.ctx, second.ID, tfe.RunApplyOptions{}); err == nil {
		t.Error("applying a pending run succeeded, want 409")
	}
	if err := e.client.Runs.Apply(e.ctx, first.ID, tfe.RunApplyOptions{Comment: tfe.String("lgtm")}); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(first.ID, tfe.RunApplying)
	e.sim.Advance(100 * time.Millisecond)
	e.wantStatus(first.ID, tfe.RunApplied)
	e.wantStatus(second.ID, tfe.RunPlanning)

	comments, err := e.client.Comments.List(e.ctx, first.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(comments.Items) != 1 || comments.Items[0].Body != "lgtm" {
		t.Errorf("comments: got %+v, want [lgtm]", comments.Items)
	}
}

func TestRunOutcomesAndActions(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")

	t.Run("no changes", func(t *testing.T) {
		ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("quiet")})
		e.behave(ws.ID, tfesim.Behavior{Outcome: tfesim.OutcomeNoChanges})
		r := e.run(ws.ID, tfe.RunCreateOptions{})
		e.wantStatus(r.ID, tfe.RunPlannedAndFinished)
	})

	t.Run("errored", func(t *testing.T) {
		ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("broken")})
		e.behave(ws.ID, tfesim.Behavior{Outcome: tfesim.OutcomeErrored})
		r := e.run(ws.ID, tfe.RunCreateOptions{})
		e.wantStatus(r.ID, tfe.RunErrored)
		w, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID)
		if err != nil {
			t.Fatal(err)
		}
		if w.RunFailures != 1 {
			t.Errorf("run-failures: got %d, want 1", w.RunFailures)
		}
	})

	t.Run("cancel and discard", func(t *testing.T) {
		ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("busy")})
		e.behave(ws.ID, tfesim.Behavior{PlanDurationMS: 60_000})
		planning := e.run(ws.ID, tfe.RunCreateOptions{})
		pending := e.run(ws.ID, tfe.RunCreateOptions{})
		if err := e.client.Runs.Discard(e.ctx, pending.ID, tfe.RunDiscardOptions{Comment: tfe.String("superseded")}); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(pending.ID, tfe.RunDiscarded)
		if err := e.client.Runs.Cancel(e.ctx, planning.ID, tfe.RunCancelOptions{}); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(planning.ID, tfe.RunCanceled)
	})

	t.Run("a stuck run ignores cancel until force-cancel", func(t *testing.T) {
		ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("stuck")})
		e.behave(ws.ID, tfesim.Behavior{StuckIn: tfesim.StatusPlanning})
		r := e.run(ws.ID, tfe.RunCreateOptions{})
		e.sim.Advance(24 * time.Hour)
		e.wantStatus(r.ID, tfe.RunPlanning)
		if err := e.client.Runs.ForceCancel(e.ctx, r.ID, tfe.RunForceCancelOptions{}); err == nil {
			t.Error("force-cancel before cancel succeeded, want 409")
		}
		if err := e.client.Runs.Cancel(e.ctx, r.ID, tfe.RunCancelOptions{}); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(r.ID, tfe.RunPlanning)
		if err := e.client.Runs.ForceCancel(e.ctx, r.ID, tfe.RunForceCancelOptions{}); err == nil {
			t.Error("force-cancel during the cool-off succeeded, want 409")
		}
		e.sim.Advance(time.Hour)
		got, err := e.client.Runs.Read(e.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Actions.IsForceCancelable {
			t.Error("after the cool-off the run is not force-cancelable")
		}
		if err := e.client.Runs.ForceCancel(e.ctx, r.ID, tfe.RunForceCancelOptions{}); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(r.ID, "force_canceled")
	})

	t.Run("a locked workspace starts no run", func(t *testing.T) {
		ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("locked"), AutoApply: tfe.Bool(true)})
		if _, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{}); err != nil {
			t.Fatal(err)
		}
		r := e.run(ws.ID, tfe.RunCreateOptions{})
		e.sim.Advance(time.Hour)
		e.wantStatus(r.ID, tfe.RunPending)
		if _, err := e.client.Workspaces.Unlock(e.ctx, ws.ID); err != nil {
			t.Fatal(err)
		}
		e.wantStatus(r.ID, tfe.RunApplied)
	})

	t.Run("runs list newest first with filters", func(t *testing.T) {
		ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("listed"), AutoApply: tfe.Bool(true)})
		first := e.run(ws.ID, tfe.RunCreateOptions{Message: tfe.String("cascade c-1: after net")})
		second := e.run(ws.ID, tfe.RunCreateOptions{Message: tfe.String("manual")})
		list, err := e.client.Runs.List(e.ctx, ws.ID, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 2 || list.Items[0].ID != second.ID || list.Items[1].ID != first.ID {
			t.Fatalf("runs list: got %d runs, want [second, first]", len(list.Items))
		}
		found, err := e.client.Runs.List(e.ctx, ws.ID, &tfe.RunListOptions{Search: "cascade c-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(found.Items) != 1 || found.Items[0].ID != first.ID {
			t.Errorf("search[basic]: got %d runs, want the first", len(found.Items))
		}
		applied, err := e.client.Runs.List(e.ctx, ws.ID, &tfe.RunListOptions{Status: "applied"})
		if err != nil {
			t.Fatal(err)
		}
		if len(applied.Items) != 2 {
			t.Errorf("filter[status]=applied: got %d runs, want 2", len(applied.Items))
		}
	})

	t.Run("no configuration, local mode", func(t *testing.T) {
		bare, err := e.client.Workspaces.Create(e.ctx, "acme", tfe.WorkspaceCreateOptions{Name: tfe.String("bare")})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Runs.Create(e.ctx, tfe.RunCreateOptions{Workspace: bare}); err == nil {
			t.Error("a run in a workspace with no configuration version was created")
		}
		local := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("local"), ExecutionMode: tfe.String("local")})
		if _, err := e.client.Runs.Create(e.ctx, tfe.RunCreateOptions{Workspace: local}); err == nil {
			t.Error("a run in a local-mode workspace was created")
		}
	})
}

func TestAdminRuns(t *testing.T) {
	e := newEnv(t, tfesim.Options{UserTokens: []string{"user-token"}})
	e.org("acme")
	stuck := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("stuck")})
	done := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("done"), AutoApply: tfe.Bool(true)})
	e.behave(stuck.ID, tfesim.Behavior{StuckIn: tfesim.StatusPlanning})
	stuckRun := e.run(stuck.ID, tfe.RunCreateOptions{})
	e.run(stuck.ID, tfe.RunCreateOptions{}) // pending behind it
	e.run(done.ID, tfe.RunCreateOptions{})
	e.sim.Advance(time.Hour)

	list, err := e.client.Admin.Runs.List(e.ctx, &tfe.AdminRunsListOptions{RunStatus: "planning,pending"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[1].ID != stuckRun.ID || list.Items[1].Workspace.ID != stuck.ID {
		t.Fatalf("filter[status]=planning,pending: got %d runs, want the stuck run and the one pending behind it", len(list.Items))
	}
	byQuery, err := e.client.Admin.Runs.List(e.ctx, &tfe.AdminRunsListOptions{Query: "done"})
	if err != nil {
		t.Fatal(err)
	}
	if len(byQuery.Items) != 1 || byQuery.Items[0].Status != tfe.RunApplied {
		t.Errorf("q=done: got %d runs, want the applied one", len(byQuery.Items))
	}

	code, body := e.raw("GET", "/api/v2/admin/runs?filter%5Bstatus%5D=planning", adminToken, "")
	if code != http.StatusOK {
		t.Fatalf("admin runs: got %d", code)
	}
	var doc struct {
		Data []json.RawMessage `json:"data"`
		Meta struct {
			StatusCounts map[string]int `json:"status-counts"`
		} `json:"meta"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	counts := doc.Meta.StatusCounts
	if len(doc.Data) != 1 || counts["planning"] != 1 || counts["pending"] != 1 || counts["applied"] != 1 || counts["total"] != 3 {
		t.Errorf("status-counts: got %v with %d runs, want planning 1 pending 1 applied 1 total 3", counts, len(doc.Data))
	}
	if code, _ := e.raw("GET", "/api/v2/admin/runs", "user-token", ""); code != http.StatusNotFound {
		t.Errorf("admin runs as a non-admin: got %d, want 404", code)
	}

	if err := e.client.Admin.Runs.ForceCancel(e.ctx, stuckRun.ID, tfe.AdminRunForceCancelOptions{Comment: tfe.String("stuck in planning for 1h")}); err != nil {
		t.Fatal(err)
	}
	e.wantStatus(stuckRun.ID, tfe.RunCanceled)
	comments, err := e.client.Comments.List(e.ctx, stuckRun.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(comments.Items) != 1 || comments.Items[0].Body != "stuck in planning for 1h" {
		t.Errorf("comments: got %+v, want the force-cancel comment", comments.Items)
	}
	if err := e.client.Admin.Runs.ForceCancel(e.ctx, stuckRun.ID, tfe.AdminRunForceCancelOptions{}); err == nil {
		t.Error("force-cancelling a final run succeeded, want 409")
	}
	if err := e.client.Admin.Runs.ForceCancel(e.ctx, "run-doesnotexist0000", tfe.AdminRunForceCancelOptions{}); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("unknown run: got %v, want ErrResourceNotFound", err)
	}
}

func TestNativeRunTriggers(t *testing.T) {
	diamond := func(t *testing.T, autoApplyRunTrigger bool) (*testEnv, map[string]*tfe.Workspace) {
		e := newEnv(t, tfesim.Options{})
		e.org("acme")
		ws := map[string]*tfe.Workspace{}
		for _, name := range []string{"a", "b", "c", "d"} {
			ws[name] = e.workspace("acme", tfe.WorkspaceCreateOptions{
				Name: tfe.String(name), AutoApply: tfe.Bool(name == "a"), AutoApplyRunTrigger: tfe.Bool(autoApplyRunTrigger),
			})
			e.behave(ws[name].ID, tfesim.Behavior{PlanDurationMS: 1000, ApplyDurationMS: 1000})
		}
		for _, edge := range [][2]string{{"a", "b"}, {"a", "c"}, {"b", "d"}, {"c", "d"}} {
			if _, err := e.client.RunTriggers.Create(e.ctx, ws[edge[1]].ID, tfe.RunTriggerCreateOptions{Sourceable: ws[edge[0]]}); err != nil {
				t.Fatal(err)
			}
		}
		return e, ws
	}
	runs := func(e *testEnv, ws *tfe.Workspace) []*tfe.Run {
		e.t.Helper()
		list, err := e.client.Runs.List(e.ctx, ws.ID, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		return list.Items
	}

	t.Run("with auto-apply-run-trigger", func(t *testing.T) {
		e, ws := diamond(t, true)
		e.run(ws["a"].ID, tfe.RunCreateOptions{})
		e.sim.Advance(2 * time.Second) // a applies
		e.sim.Advance(2 * time.Second) // b and c apply, each queues a run in d
		d := runs(e, ws["d"])
		if len(d) != 2 {
			t.Fatalf("d: got %d runs, want 2", len(d))
		}
		newest, oldest := d[0], d[1]
		if oldest.Status != tfe.RunPlanQueued && oldest.Status != tfe.RunPlanning || newest.Status != tfe.RunPending {
			t.Errorf("d: got %s then %s, want the first running and the second pending behind it", oldest.Status, newest.Status)
		}
		if oldest.Source != "tfe-run-trigger" || !oldest.AutoApply {
			t.Errorf("d's first run: source %s auto-apply %v, want tfe-run-trigger, true", oldest.Source, oldest.AutoApply)
		}
		e.sim.Advance(10 * time.Second)
		for _, name := range []string{"b", "c"} {
			if got := runs(e, ws[name]); len(got) != 1 || got[0].Status != tfe.RunApplied {
				t.Errorf("%s: got %d runs, want one applied", name, len(got))
			}
		}
		for _, r := range runs(e, ws["d"]) {
			if r.Status != tfe.RunApplied {
				t.Errorf("d: run %s ended %s, want applied", r.ID, r.Status)
			}
		}
	})

	t.Run("without it the triggered runs wait for confirmation", func(t *testing.T) {
		e, ws := diamond(t, false)
		e.run(ws["a"].ID, tfe.RunCreateOptions{})
		e.sim.Advance(time.Hour)
		for _, name := range []string{"b", "c"} {
			got := runs(e, ws[name])
			if len(got) != 1 || got[0].Status != tfe.RunPlanned || got[0].AutoApply {
				t.Errorf("%s: got %d runs, want one planned awaiting confirmation", name, len(got))
			}
		}
		if got := runs(e, ws["d"]); len(got) != 0 {
			t.Errorf("d: got %d runs before b or c applied, want none", len(got))
		}
	})
}
