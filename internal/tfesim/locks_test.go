package tfesim_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// A run holds its workspace's lock from the moment it leaves pending until
// it ends, including while it waits for confirmation: the workspace reads
// locked by that run, and a user can neither lock nor unlock it.
func TestRunHoldsWorkspaceLock(t *testing.T) {
	e := newEnv(t, tfesim.Options{Timing: &tfesim.Timing{Queue: time.Second, Plan: time.Second, Apply: time.Second}})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	r := e.run(ws.ID, tfe.RunCreateOptions{})

	for _, step := range []struct {
		after  time.Duration
		status tfe.RunStatus
		apply  bool // confirm the run at this step
	}{
		{0, tfe.RunPlanQueued, false},
		{time.Second, tfe.RunPlanning, false},
		{time.Second, tfe.RunPlanned, true},
		{0, tfe.RunApplyQueued, false},
		{time.Second, tfe.RunApplying, false},
	} {
		e.sim.Advance(step.after)
		e.wantStatus(r.ID, step.status)
		t.Run(string(step.status), func(t *testing.T) {
			e.wantLockedByRun(ws.ID, r.ID)
			if _, err := e.client.Workspaces.Unlock(e.ctx, ws.ID); !errors.Is(err, tfe.ErrWorkspaceLockedByRun) {
				t.Errorf("unlock: got %v, want ErrWorkspaceLockedByRun", err)
			}
			if _, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{}); !errors.Is(err, tfe.ErrWorkspaceLocked) {
				t.Errorf("lock: got %v, want ErrWorkspaceLocked (409)", err)
			}
			if code, _ := e.raw("POST", "/api/v2/workspaces/"+ws.ID+"/actions/force-unlock", adminToken, ""); code != http.StatusConflict {
				t.Errorf("force-unlock: got %d, want 409", code)
			}
			e.wantLockedByRun(ws.ID, r.ID) // nothing above released it
		})
		if step.apply {
			if err := e.client.Runs.Apply(e.ctx, r.ID, tfe.RunApplyOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.sim.Advance(time.Second)
	e.wantStatus(r.ID, tfe.RunApplied)
	got, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Locked || got.LockedBy != nil {
		t.Errorf("after the run: locked %v by %+v, want unlocked", got.Locked, got.LockedBy)
	}
	if got.CurrentRun == nil || got.CurrentRun.ID != r.ID {
		t.Errorf("after the run: current run %+v, want %s", got.CurrentRun, r.ID)
	}
}

func (e *testEnv) wantLockedByRun(wsID, runID string) {
	e.t.Helper()
	ws, err := e.client.Workspaces.ReadByID(e.ctx, wsID)
	if err != nil {
		e.t.Fatal(err)
	}
	if !ws.Locked || ws.LockedBy == nil || ws.LockedBy.Run == nil || ws.LockedBy.Run.ID != runID {
		e.t.Fatalf("got locked %v by %+v, want locked by run %s", ws.Locked, ws.LockedBy, runID)
	}
}

// Every way a run ends releases the lock, and the next pending run takes it.
func TestRunReleasesLockWhenItEnds(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(e *testEnv, runID string)
		want tfe.RunStatus
	}{
		{"discarded", func(e *testEnv, id string) { e.must(e.client.Runs.Discard(e.ctx, id, tfe.RunDiscardOptions{})) }, tfe.RunDiscarded},
		{"applied", func(e *testEnv, id string) { e.must(e.client.Runs.Apply(e.ctx, id, tfe.RunApplyOptions{})) }, tfe.RunApplied},
		{"admin force-cancel", func(e *testEnv, id string) {
			e.must(e.client.Admin.Runs.ForceCancel(e.ctx, id, tfe.AdminRunForceCancelOptions{}))
		}, tfe.RunCanceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tfesim.Options{})
			e.org("acme")
			ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
			first := e.run(ws.ID, tfe.RunCreateOptions{}) // waits for confirmation, holding the lock
			second := e.run(ws.ID, tfe.RunCreateOptions{})
			e.wantStatus(first.ID, tfe.RunPlanned)
			e.wantStatus(second.ID, tfe.RunPending)
			tc.end(e, first.ID)
			e.wantStatus(first.ID, tc.want)
			e.wantStatus(second.ID, tfe.RunPlanned)
			e.wantLockedByRun(ws.ID, second.ID)
		})
	}
}

func (e *testEnv) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// A user's lock: pending runs queue behind it; only its owner may unlock
// it, anyone may force-unlock it; a run then takes the workspace.
func TestUserLock(t *testing.T) {
	e := newEnv(t, tfesim.Options{UserTokens: []string{"user-token"}})
	other := e.newClient("user-token")
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})

	locked, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{Reason: tfe.String("maintenance")})
	if err != nil {
		t.Fatal(err)
	}
	me, err := e.client.Users.ReadCurrent(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !locked.Locked || locked.LockedBy == nil || locked.LockedBy.User == nil || locked.LockedBy.User.ID != me.ID {
		t.Fatalf("after lock: locked %v by %+v, want locked by %s", locked.Locked, locked.LockedBy, me.ID)
	}
	r := e.run(ws.ID, tfe.RunCreateOptions{})
	e.sim.Advance(time.Hour)
	e.wantStatus(r.ID, tfe.RunPending)

	if _, err := other.Workspaces.Unlock(e.ctx, ws.ID); !errors.Is(err, tfe.ErrWorkspaceLockedByUser) {
		t.Errorf("unlock by another user: got %v, want ErrWorkspaceLockedByUser", err)
	}
	if _, err := other.Workspaces.ForceUnlock(e.ctx, ws.ID); err != nil {
		t.Fatalf("force-unlock by another user: %v", err)
	}
	e.wantStatus(r.ID, tfe.RunApplied)
	if _, err := e.client.Workspaces.ForceUnlock(e.ctx, ws.ID); !errors.Is(err, tfe.ErrWorkspaceNotLocked) {
		t.Errorf("force-unlock of an unlocked workspace: got %v, want ErrWorkspaceNotLocked", err)
	}
}

// The current run is the run that most recently took the workspace, kept
// after it ends; include=current_run includes it whatever its status, in
// show (by ID and by name) and list. A workspace that never ran has none.
func TestCurrentRunInclude(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	idle := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("idle")})
	busy := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("busy")})
	first := e.run(busy.ID, tfe.RunCreateOptions{})
	e.must(e.client.Runs.Apply(e.ctx, first.ID, tfe.RunApplyOptions{}))
	second := e.run(busy.ID, tfe.RunCreateOptions{}) // waits for confirmation: now the current run
	queued := e.run(busy.ID, tfe.RunCreateOptions{}) // pending: not current

	inc := &tfe.WorkspaceReadOptions{Include: []tfe.WSIncludeOpt{tfe.WSCurrentRun}}
	byID, err := e.client.Workspaces.ReadByIDWithOptions(e.ctx, busy.ID, inc)
	if err != nil {
		t.Fatal(err)
	}
	byName, err := e.client.Workspaces.ReadWithOptions(e.ctx, "acme", "busy", inc)
	if err != nil {
		t.Fatal(err)
	}
	for name, ws := range map[string]*tfe.Workspace{"by ID": byID, "by name": byName} {
		if ws.CurrentRun == nil || ws.CurrentRun.ID != second.ID || ws.CurrentRun.Status != tfe.RunPlanned {
			t.Errorf("show %s: current run %+v, want %s planned (included)", name, ws.CurrentRun, second.ID)
		}
	}
	// Discarded, second stays current until queued takes the workspace;
	// discarded too, queued stays current.
	e.must(e.client.Runs.Discard(e.ctx, second.ID, tfe.RunDiscardOptions{}))
	e.wantStatus(queued.ID, tfe.RunPlanned)
	e.must(e.client.Runs.Discard(e.ctx, queued.ID, tfe.RunDiscardOptions{}))

	list, err := e.client.Workspaces.List(e.ctx, "acme", &tfe.WorkspaceListOptions{Include: []tfe.WSIncludeOpt{tfe.WSCurrentRun}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range list.Items {
		switch ws.ID {
		case idle.ID:
			if ws.CurrentRun != nil {
				t.Errorf("a workspace that never ran: current run %+v, want none", ws.CurrentRun)
			}
		case busy.ID:
			if ws.CurrentRun == nil || ws.CurrentRun.ID != queued.ID || ws.CurrentRun.Status != tfe.RunDiscarded {
				t.Errorf("list: current run %v, want %s discarded (a finished current run stays)", runID(ws.CurrentRun), queued.ID)
			}
		}
	}
}

func runID(r *tfe.Run) string {
	if r == nil {
		return "none"
	}
	return r.ID + " " + string(r.Status)
}

// Plan-only runs neither wait for the lock nor take it, as TFE documents.
func TestPlanOnlyRunsIgnoreLocks(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	if _, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{}); err != nil {
		t.Fatal(err)
	}
	r := e.run(ws.ID, tfe.RunCreateOptions{PlanOnly: tfe.Bool(true)})
	e.wantStatus(r.ID, tfe.RunPlannedAndFinished)
	got, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LockedBy == nil || got.LockedBy.User == nil {
		t.Errorf("locked by %+v, want still the user", got.LockedBy)
	}
	if got.CurrentRun != nil {
		t.Errorf("current run %+v, want none: a plan-only run is not the current run", got.CurrentRun)
	}
}
