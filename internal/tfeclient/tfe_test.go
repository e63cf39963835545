package tfeclient_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

var simStart = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// simTFE runs the simulator on a manual clock, loaded with org, and
// returns it with a go-tfe client of it and the TFE over that client.
func simTFE(t *testing.T, org tfesim.OrganizationSpec) (*tfesim.Sim, *tfe.Client, *tfeclient.TFE) {
	t.Helper()
	clock := tfesim.NewManualClock(simStart)
	sim, err := tfesim.New(tfesim.Options{Token: "sim-token", Clock: clock, RateLimit: -1, Timing: &tfesim.Timing{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{org}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	c := client(t, srv.URL, tfeclient.Options{})
	return sim, c, tfeclient.New(c)
}

// A workspace reads the same listed as read by ID: its averages as
// durations (go-tfe's list leaves them in milliseconds), its organization,
// and who holds its lock; listed with current runs, each comes with its
// run, and when that run entered its status.
func TestWorkspaceListedAndReadAgree(t *testing.T) {
	sim, c, api := simTFE(t, tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{
		{Name: "slow", AutoApply: true, Behavior: tfesim.Behavior{PlanDurationMS: (4 * time.Hour).Milliseconds()}},
		{Name: "held"}, {Name: "idle"},
	}})
	ctx := context.Background()
	run := func(name string) string {
		r, err := c.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: sim.WorkspaceID("acme", name)}})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	run("slow")
	sim.Advance(5 * time.Hour) // planned in 4h, applied: slow's plan average is 4h
	planning := run("slow")
	sim.Advance(time.Minute)
	if _, err := c.Workspaces.Lock(ctx, sim.WorkspaceID("acme", "held"), tfe.WorkspaceLockOptions{}); err != nil {
		t.Fatal(err)
	}

	listed := map[string]tfeclient.Workspace{}
	err := api.ListWorkspaces(ctx, "acme", tfeclient.WorkspaceQuery{CurrentRun: true}, func(page []tfeclient.Workspace) (bool, error) {
		for _, w := range page {
			listed[w.Name] = w
		}
		return true, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slow := listed["slow"]
	if slow.PlanDurationAverage != 4*time.Hour {
		t.Errorf("listed plan average: got %s, want 4h", slow.PlanDurationAverage)
	}
	cur := slow.CurrentRun
	if cur == nil || cur.ID != planning || cur.Status != runstatus.Planning || cur.WorkspaceID != slow.ID {
		t.Fatalf("slow's current run: got %+v, want %s planning in %s", cur, planning, slow.ID)
	}
	if want := simStart.Add(5 * time.Hour); !cur.StatusAt.Equal(want) {
		t.Errorf("current run entered planning at %s, want %s", cur.StatusAt, want)
	}
	if held := listed["held"]; !held.Locked || held.LockedByRun != "" {
		t.Errorf("held: locked %v by run %q, want locked by a person", held.Locked, held.LockedByRun)
	}
	if !slow.Locked || slow.LockedByRun != planning {
		t.Errorf("slow: locked %v by run %q, want locked by %s", slow.Locked, slow.LockedByRun, planning)
	}
	for name, w := range listed {
		read, err := api.ReadWorkspace(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		w.CurrentRun = nil // a read does not include it
		if read != w || read.Organization != "acme" {
			t.Errorf("%s read\n%+v\nlisted\n%+v", name, read, w)
		}
	}
	if _, err := api.ReadWorkspace(ctx, "ws-nobody"); tfeclient.Classify(err, nil) != tfeclient.Gone {
		t.Errorf("reading an unknown workspace: %v, want an error classified Gone", err)
	}
}

// ListRunTriggers reads each direction of a workspace's triggers, every
// page of them, naming both ends.
func TestListRunTriggers(t *testing.T) {
	org := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{{Name: "root"}}}
	var targets []string
	for i := range tfeclient.PageSize + 5 {
		name := "t" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		targets = append(targets, name)
		org.Workspaces = append(org.Workspaces, tfesim.WorkspaceSpec{Name: name})
		org.RunTriggers = append(org.RunTriggers, tfesim.RunTriggerSpec{Source: "root", Target: name})
	}
	sim, _, api := simTFE(t, org)
	ctx := context.Background()
	root := sim.WorkspaceID("acme", "root")

	out, err := api.ListRunTriggers(ctx, root, tfeclient.Outbound)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rt := range out {
		got = append(got, rt.TargetName)
		if rt.SourceID != root || rt.TargetID != sim.WorkspaceID("acme", rt.TargetName) {
			t.Errorf("outbound trigger %+v: want from %s to %s's ID", rt, root, rt.TargetName)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, targets) {
		t.Errorf("outbound targets: got %d %v, want %d", len(got), got, len(targets))
	}

	in, err := api.ListRunTriggers(ctx, sim.WorkspaceID("acme", "taa"), tfeclient.Inbound)
	if err != nil {
		t.Fatal(err)
	}
	if len(in) != 1 || in[0].SourceID != root || in[0].SourceName != "root" || in[0].TargetName != "taa" {
		t.Errorf("inbound triggers of taa: got %+v, want one from root", in)
	}
	if out, err := api.ListRunTriggers(ctx, root, tfeclient.Inbound); err != nil || len(out) != 0 {
		t.Errorf("inbound triggers of root: got %+v, %v; want none", out, err)
	}
}

// A notification configuration is created generic and as asked; an update
// writes what it sets and leaves the rest.
func TestNotificationConfigurations(t *testing.T) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(receiver.Close)
	sim, _, api := simTFE(t, tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{{Name: "app"}}})
	ctx := context.Background()
	ws := sim.WorkspaceID("acme", "app")
	triggers := []string{tfeclient.NotifyRunCreated, tfeclient.NotifyRunCompleted}
	err := api.CreateNotificationConfiguration(ctx, ws, tfeclient.NotificationSettings{
		Name: "hook", URL: receiver.URL + "/a", Token: "secret", Enabled: true, Triggers: triggers})
	if err != nil {
		t.Fatal(err)
	}
	list, err := api.ListNotificationConfigurations(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "hook" || list[0].URL != receiver.URL+"/a" || !list[0].Enabled || !slices.Equal(list[0].Triggers, triggers) {
		t.Fatalf("created: got %+v, want hook to %s/a, enabled, on %v", list, receiver.URL, triggers)
	}
	if err := api.UpdateNotificationConfiguration(ctx, list[0].ID, tfeclient.NotificationSettings{URL: receiver.URL + "/b", Enabled: true}); err != nil {
		t.Fatal(err)
	}
	list, err = api.ListNotificationConfigurations(ctx, ws)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "hook" || list[0].URL != receiver.URL+"/b" || !slices.Equal(list[0].Triggers, triggers) {
		t.Errorf("updated: got %+v, want hook to %s/b, on %v still", list, receiver.URL, triggers)
	}
	if err := api.UpdateNotificationConfiguration(ctx, "nc-nobody", tfeclient.NotificationSettings{Enabled: true}); tfeclient.Classify(err, nil) != tfeclient.Gone {
		t.Errorf("updating an unknown configuration: %v, want an error classified Gone", err)
	}
}

// A run reads with what TFE allows of it; it stops with the action asked
// for, by the user's API or the admin's; the admin list reads the runs in
// the statuses asked for, with their workspaces.
func TestRunsReadListAndStop(t *testing.T) {
	sim, c, api := simTFE(t, tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{
		{Name: "manual"}, {Name: "stuck", AutoApply: true, Behavior: tfesim.Behavior{StuckIn: runstatus.Planning}},
	}})
	ctx := context.Background()
	run := func(name string) string {
		r, err := c.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: sim.WorkspaceID("acme", name)}})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	planned, stuck := run("manual"), run("stuck")
	sim.Advance(time.Minute)

	r, err := api.ReadRun(ctx, planned)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != runstatus.Planned || !r.Actions.Discardable || r.WorkspaceID != sim.WorkspaceID("acme", "manual") || r.StatusAt.IsZero() {
		t.Fatalf("read %+v: want planned, discardable, in manual, with its time", r)
	}
	if err := api.DiscardRun(ctx, planned, "not this one"); err != nil {
		t.Fatal(err)
	}
	if r, err := api.ReadRun(ctx, planned); err != nil || r.Status != runstatus.Discarded {
		t.Errorf("after the discard: %+v, %v; want discarded", r, err)
	}

	active, err := api.ListAdminRuns(ctx, []string{runstatus.Planning, runstatus.Planned})
	if err != nil {
		t.Fatal(err)
	}
	if len(active) != 1 || active[0].ID != stuck || active[0].WorkspaceID != sim.WorkspaceID("acme", "stuck") {
		t.Fatalf("admin list of planning and planned runs: got %+v, want %s alone, in stuck", active, stuck)
	}
	if err := api.AdminForceCancelRun(ctx, stuck, "stuck"); err != nil {
		t.Fatal(err)
	}
	if r, err := api.ReadRun(ctx, stuck); err != nil || r.Status != runstatus.Canceled {
		t.Errorf("after the admin's force-cancel: %+v, %v; want canceled", r, err)
	}
	if _, err := api.ReadRun(ctx, "run-nobody"); tfeclient.Classify(err, nil) != tfeclient.Gone {
		t.Errorf("reading an unknown run: %v, want an error classified Gone", err)
	}
	if err := api.CancelRun(ctx, "run-nobody", "x"); tfeclient.Classify(err, nil) != tfeclient.Gone {
		t.Errorf("cancelling an unknown run: %v, want an error classified Gone", err)
	}
}

// A run created with AutoApply applies once planned; one created without
// waits for a person in a workspace that does not auto-apply, and applies
// once confirmed.
func TestRunsCreateAndApply(t *testing.T) {
	clock := tfesim.NewManualClock(simStart)
	sim, err := tfesim.New(tfesim.Options{Token: "sim-token", Clock: clock, RateLimit: -1, Timing: &tfesim.Timing{}})
	if err != nil {
		t.Fatal(err)
	}
	err = sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{{Name: "acme", Email: "ops@acme.test",
		Workspaces: []tfesim.WorkspaceSpec{{Name: "manual"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	api, err := tfeclient.Connect(srv.URL, "sim-token")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	ws := sim.WorkspaceID("acme", "manual")
	auto, err := api.CreateRun(ctx, ws, tfeclient.RunOptions{Message: "auto", AutoApply: true})
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Minute)
	if r, err := api.ReadRun(ctx, auto.ID); err != nil || r.Status != runstatus.Applied {
		t.Fatalf("auto-applied run: %+v, %v; want applied", r, err)
	}
	manual, err := api.CreateRun(ctx, ws, tfeclient.RunOptions{Message: "manual"})
	if err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Minute)
	if r, err := api.ReadRun(ctx, manual.ID); err != nil || r.Status != runstatus.Planned {
		t.Fatalf("run without auto-apply: %+v, %v; want planned", r, err)
	}
	if err := api.ApplyRun(ctx, manual.ID, "reviewed"); err != nil {
		t.Fatal(err)
	}
	sim.Advance(time.Minute)
	if r, err := api.ReadRun(ctx, manual.ID); err != nil || r.Status != runstatus.Applied {
		t.Errorf("confirmed run: %+v, %v; want applied", r, err)
	}
}
