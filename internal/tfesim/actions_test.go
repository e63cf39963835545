package tfesim_test

import (
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// runIn returns a fresh simulator and a run in the given status.
func runIn(t *testing.T, status tfe.RunStatus) (*testEnv, string) {
	t.Helper()
	e := newEnv(t, tfesim.Options{Timing: &tfesim.Timing{Queue: time.Second, Plan: time.Second, Apply: time.Second}})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	switch status {
	case tfe.RunPlannedAndFinished:
		e.behave(ws.ID, tfesim.Behavior{Outcome: tfesim.OutcomeNoChanges})
	case tfe.RunErrored:
		e.behave(ws.ID, tfesim.Behavior{Outcome: tfesim.OutcomeErrored})
	case "force_canceled":
		e.behave(ws.ID, tfesim.Behavior{StuckIn: tfesim.StatusPlanning})
	}
	r := e.run(ws.ID, tfe.RunCreateOptions{}).ID
	planned := func() {
		e.sim.Advance(2 * time.Second)
		e.wantStatus(r, tfe.RunPlanned)
	}
	switch status {
	case tfe.RunPending:
		planned()
		r = e.run(ws.ID, tfe.RunCreateOptions{}).ID // behind the planned run
	case tfe.RunPlanQueued:
	case tfe.RunPlanning:
		e.sim.Advance(time.Second)
	case tfe.RunPlanned:
		planned()
	case tfe.RunApplyQueued, tfe.RunApplying, tfe.RunApplied:
		planned()
		e.must(e.client.Runs.Apply(e.ctx, r, tfe.RunApplyOptions{}))
		if status != tfe.RunApplyQueued {
			e.sim.Advance(time.Second)
		}
		if status == tfe.RunApplied {
			e.sim.Advance(time.Second)
		}
	case tfe.RunPlannedAndFinished, tfe.RunErrored:
		e.sim.Advance(2 * time.Second)
	case tfe.RunCanceled:
		e.sim.Advance(time.Second)
		e.must(e.client.Runs.Cancel(e.ctx, r, tfe.RunCancelOptions{}))
	case tfe.RunDiscarded:
		planned()
		e.must(e.client.Runs.Discard(e.ctx, r, tfe.RunDiscardOptions{}))
	case "force_canceled":
		e.sim.Advance(time.Second)
		e.must(e.client.Runs.Cancel(e.ctx, r, tfe.RunCancelOptions{}))
		e.sim.Advance(time.Hour)
		e.must(e.client.Runs.ForceCancel(e.ctx, r, tfe.RunForceCancelOptions{}))
	}
	e.wantStatus(r, status)
	return e, r
}

// Each action on each status: the run's actions.is-*able flags say exactly
// what the action endpoints accept (a false flag answers 409), and an
// accepted action ends the run as TFE does.
func TestActionsByStatus(t *testing.T) {
	type allowed struct{ apply, cancel, discard, adminForceCancel bool }
	open := allowed{cancel: true, adminForceCancel: true}
	for _, tc := range []struct {
		status tfe.RunStatus
		allow  allowed
	}{
		{tfe.RunPending, allowed{cancel: true, discard: true, adminForceCancel: true}},
		{tfe.RunPlanQueued, open},
		{tfe.RunPlanning, open},
		{tfe.RunPlanned, allowed{apply: true, discard: true, adminForceCancel: true}},
		{tfe.RunApplyQueued, open},
		{tfe.RunApplying, open},
		{tfe.RunApplied, allowed{}},
		{tfe.RunPlannedAndFinished, allowed{}},
		{tfe.RunErrored, allowed{}},
		{tfe.RunCanceled, allowed{}},
		{tfe.RunDiscarded, allowed{}},
		{"force_canceled", allowed{}},
	} {
		t.Run(string(tc.status), func(t *testing.T) {
			e, id := runIn(t, tc.status)
			r, err := e.client.Runs.Read(e.ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			got := allowed{r.Actions.IsConfirmable, r.Actions.IsCancelable, r.Actions.IsDiscardable, tc.allow.adminForceCancel}
			if got != tc.allow || r.Actions.IsForceCancelable {
				t.Errorf("actions: got %+v (force-cancelable %v), want %+v and not force-cancelable", r.Actions, r.Actions.IsForceCancelable, tc.allow)
			}
			if p := r.Permissions; !p.CanApply || !p.CanCancel || !p.CanDiscard || !p.CanForceCancel || !p.CanForceExecute {
				t.Errorf("permissions: got %+v, want all (every simulated user is a workspace admin)", p)
			}
		})
		for _, act := range []struct {
			name    string
			allowed bool
			do      func(e *testEnv, id string) error
			ends    tfe.RunStatus
		}{
			{"apply", tc.allow.apply, func(e *testEnv, id string) error { return e.client.Runs.Apply(e.ctx, id, tfe.RunApplyOptions{}) }, tfe.RunApplyQueued},
			{"cancel", tc.allow.cancel, func(e *testEnv, id string) error { return e.client.Runs.Cancel(e.ctx, id, tfe.RunCancelOptions{}) }, tfe.RunCanceled},
			{"discard", tc.allow.discard, func(e *testEnv, id string) error { return e.client.Runs.Discard(e.ctx, id, tfe.RunDiscardOptions{}) }, tfe.RunDiscarded},
			{"force-cancel", false, func(e *testEnv, id string) error {
				return e.client.Runs.ForceCancel(e.ctx, id, tfe.RunForceCancelOptions{})
			}, ""},
			{"admin force-cancel", tc.allow.adminForceCancel, func(e *testEnv, id string) error {
				return e.client.Admin.Runs.ForceCancel(e.ctx, id, tfe.AdminRunForceCancelOptions{})
			}, tfe.RunCanceled},
		} {
			t.Run(string(tc.status)+"/"+act.name, func(t *testing.T) {
				e, id := runIn(t, tc.status)
				err := act.do(e, id)
				if act.allowed != (err == nil) {
					t.Fatalf("got error %v, want allowed %v", err, act.allowed)
				}
				if !act.allowed {
					e.wantStatus(id, tc.status)
					return
				}
				e.wantStatus(id, act.ends)
				if act.name == "cancel" {
					r, err := e.client.Runs.Read(e.ctx, id)
					if err != nil {
						t.Fatal(err)
					}
					if r.CanceledAt.IsZero() || !r.ForceCancelAvailableAt.After(r.CanceledAt) {
						t.Errorf("canceled-at %v, force-cancel-available-at %v: want both, the second later", r.CanceledAt, r.ForceCancelAvailableAt)
					}
				}
			})
		}
	}
}
