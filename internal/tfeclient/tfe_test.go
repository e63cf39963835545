package tfeclient_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

var simStart = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

// simTFE runs the simulator on a manual clock, loaded with org, and
// returns it with a go-tfe client of it and the TFE over that client.
func simTFE(t *testing.T, org tfesim.OrganizationSpec) (*tfesim.Sim, *tfe.Client, *tfeclient.TFE) {
	t.Helper()
	srv := simtest.Start(t, tfesim.Options{Clock: tfesim.NewManualClock(simStart), RateLimit: -1, Timing: &tfesim.Timing{}})
	if err := srv.Sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{org}}); err != nil {
		t.Fatal(err)
	}
	c := client(t, srv.URL, tfeclient.Options{})
	return srv.Sim, c, tfeclient.New(c)
}

// createRun queues a run in workspace ws, as a person would, and returns
// its ID.
func createRun(t *testing.T, c *tfe.Client, ws string) string {
	t.Helper()
	r, err := c.Runs.Create(context.Background(), tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: ws}})
	if err != nil {
		t.Fatal(err)
	}
	return r.ID
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
	run := func(name string) string { return createRun(t, c, sim.WorkspaceID("acme", name)) }
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
		if !reflect.DeepEqual(read, w) || read.Organization != "acme" {
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
	run := func(name string) string { return createRun(t, c, sim.WorkspaceID("acme", name)) }
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
	srv := simtest.Start(t, tfesim.Options{Clock: tfesim.NewManualClock(simStart), RateLimit: -1, Timing: &tfesim.Timing{}})
	sim := srv.Sim
	err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{{Name: "acme", Email: "ops@acme.test",
		Workspaces: []tfesim.WorkspaceSpec{{Name: "manual"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	api, err := tfeclient.Connect(srv.URL, simtest.Token)
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

// A workspace reads with its settings and who holds its lock; the token's
// user locks and unlocks it, and TFE's refusals are tfeclient's errors; a
// read with its current run, and a page of the list newest current run
// first (only workspaces that have one), show that run.
func TestWorkspaceLocksAndCurrentRuns(t *testing.T) {
	sim, c, api := simTFE(t, tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{
		{Name: "app", AutoApplyRunTrigger: true, TerraformVersion: "1.9.8", Tags: []string{"team-a"}},
		{Name: "busy", AutoApply: true, Behavior: tfesim.Behavior{StuckIn: runstatus.Planning}},
		{Name: "older"}, {Name: "never", NoConfiguration: true},
	}})
	ctx := context.Background()
	id := func(name string) string { return sim.WorkspaceID("acme", name) }
	me, err := api.CurrentUser(ctx)
	if err != nil || me.ID == "" || me.Username == "" {
		t.Fatalf("the token's user: %+v, %v; want an ID and a username", me, err)
	}

	app, err := api.ReadWorkspace(ctx, id("app"))
	if err != nil {
		t.Fatal(err)
	}
	if !app.AutoApplyRunTrigger || app.AutoApply || app.TerraformVersion != "1.9.8" || !slices.Equal(app.Tags, []string{"team-a"}) ||
		!app.HasConfiguration || app.Locked {
		t.Errorf("app read as %+v: want its settings, a configuration, unlocked", app)
	}
	if never, err := api.ReadWorkspace(ctx, id("never")); err != nil || never.HasConfiguration {
		t.Errorf("never read as %+v, %v: want no configuration", never, err)
	}

	if err := api.LockWorkspace(ctx, id("app"), "held for a cascade"); err != nil {
		t.Fatal(err)
	}
	app, err = api.ReadWorkspace(ctx, id("app"))
	if err != nil || !app.Locked || app.LockedByUser != me.ID || app.LockedByRun != "" || app.LockedByTeam != "" {
		t.Errorf("app after the lock: %+v, %v; want locked by %+v", app, err, me)
	}
	if err := api.LockWorkspace(ctx, id("app"), "again"); !errors.Is(err, tfeclient.ErrWorkspaceLocked) {
		t.Errorf("locking a locked workspace: %v, want ErrWorkspaceLocked", err)
	}
	if err := api.UnlockWorkspace(ctx, id("app")); err != nil {
		t.Fatal(err)
	}
	if err := api.UnlockWorkspace(ctx, id("app")); !errors.Is(err, tfeclient.ErrWorkspaceNotLocked) {
		t.Errorf("unlocking an unlocked workspace: %v, want ErrWorkspaceNotLocked", err)
	}

	run := func(name string) string {
		r, err := c.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: id(name)}})
		if err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	run("older")
	sim.Advance(time.Minute)
	planning := run("busy")
	sim.Advance(time.Minute)
	if err := api.UnlockWorkspace(ctx, id("busy")); !errors.Is(err, tfeclient.ErrWorkspaceLockedByRun) || tfeclient.Classify(err, nil) == tfeclient.Gone {
		t.Errorf("unlocking a run's lock: %v, want ErrWorkspaceLockedByRun", err)
	}
	busy, err := api.ReadWorkspaceWithCurrentRun(ctx, id("busy"))
	if err != nil {
		t.Fatal(err)
	}
	if cur := busy.CurrentRun; cur == nil || cur.ID != planning || cur.Status != runstatus.Planning || cur.WorkspaceID != busy.ID ||
		!cur.Actions.Cancelable || busy.LockedByRun != planning {
		t.Errorf("busy with its current run: %+v, run %+v; want %s planning, cancelable, holding the lock", busy, busy.CurrentRun, planning)
	}
	if w, err := api.ReadWorkspaceWithCurrentRun(ctx, id("app")); err != nil || w.CurrentRun != nil {
		t.Errorf("app with its current run: %+v, %v; want none", w, err)
	}

	page, err := api.ListWorkspacesPage(ctx, "acme", tfeclient.WorkspaceQuery{CurrentRun: true, Sort: "-current-run.created-at",
		CurrentRunStatus: strings.Join(runstatus.All(), ",")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, w := range page.Items {
		names = append(names, w.Name)
	}
	if !slices.Equal(names, []string{"busy", "older"}) || page.Next != 0 || page.Items[0].CurrentRun == nil || page.Items[0].CurrentRun.ID != planning {
		t.Errorf("the list newest current run first: %v (next %d), want busy (with %s) then older, one page", names, page.Next, planning)
	}
}

// A run reads with its workspace's name and organization, its source and
// message; a workspace's runs list newest first, as many as asked; a run
// created with SetAutoApply and AutoApply false waits for a confirmation
// in a workspace that auto-applies.
func TestRunsWithWorkspaceAndLatest(t *testing.T) {
	sim, _, api := simTFE(t, tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{
		{Name: "auto", AutoApply: true}}})
	ctx := context.Background()
	ws := sim.WorkspaceID("acme", "auto")
	var ids []string
	for _, m := range []string{"first", "second", "third"} {
		r, err := api.CreateRun(ctx, ws, tfeclient.RunOptions{Message: m, AutoApply: m != "third", SetAutoApply: true})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.ID)
		sim.Advance(time.Minute)
	}
	r, err := api.ReadRunWithWorkspace(ctx, ids[2])
	if err != nil {
		t.Fatal(err)
	}
	if r.WorkspaceID != ws || r.WorkspaceName != "auto" || r.Organization != "acme" || r.Message != "third" || r.Source != "tfe-api" ||
		r.AutoApply || r.Status != runstatus.Planned || !r.Actions.Confirmable {
		t.Errorf("read with its workspace: %+v; want in acme/auto, third, from the API, planned and confirmable", r)
	}
	latest, err := api.ListRuns(ctx, ws, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 2 || latest[0].ID != ids[2] || latest[1].ID != ids[1] || latest[0].Message != "third" || latest[0].WorkspaceID != ws {
		t.Errorf("the two latest runs: %+v, want %s then %s", latest, ids[2], ids[1])
	}
	if _, err := api.ListRuns(ctx, "ws-nobody", 2); tfeclient.Classify(err, nil) != tfeclient.Gone {
		t.Errorf("listing the runs of an unknown workspace: %v, want an error classified Gone", err)
	}
}

// An organization reads by name, one TFE does not know is Gone; the admin
// list of Terraform versions reads every version with its state.
func TestOrganizationsAndTerraformVersions(t *testing.T) {
	_, _, api := simTFE(t, tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test"})
	ctx := context.Background()
	if o, err := api.ReadOrganization(ctx, "acme"); err != nil || o.Name != "acme" {
		t.Errorf("read acme: %+v, %v", o, err)
	}
	if _, err := api.ReadOrganization(ctx, "nosuch"); tfeclient.Classify(err, nil) != tfeclient.Gone {
		t.Errorf("reading an unknown organization: %v, want an error classified Gone", err)
	}
	versions, err := api.ListTerraformVersions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]tfeclient.TerraformVersion{}
	for _, v := range versions {
		got[v.Version] = v
	}
	if v := got["0.11.8"]; v.Enabled {
		t.Errorf("0.11.8: %+v, want disabled", v)
	}
	if v := got["0.12.31"]; !v.Enabled || !v.Deprecated {
		t.Errorf("0.12.31: %+v, want enabled and deprecated", v)
	}
	if v := got["1.9.8"]; !v.Enabled || v.Deprecated {
		t.Errorf("1.9.8: %+v, want enabled, not deprecated", v)
	}
}

// A workspace's newest state versions read with their outputs, numbers to
// every digit and sensitive values null, and TFE's time; a sensitive
// output reads with its value one at a time; a workspace TFE does not
// know is a *StatusError.
func TestStateVersionsAndOutputs(t *testing.T) {
	sim, _, api := simTFE(t, tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Workspaces: []tfesim.WorkspaceSpec{
		{Name: "net", AutoApply: true, Behavior: tfesim.Behavior{Outputs: map[string]tfesim.Output{
			"id": {Value: json.Number("12345678901234567890")}, "key": {Value: "s3cret", Sensitive: true}}}}}})
	ctx := context.Background()
	ws := sim.WorkspaceID("acme", "net")
	var runs []string
	for range 2 {
		r, err := api.CreateRun(ctx, ws, tfeclient.RunOptions{AutoApply: true})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, r.ID)
		sim.Advance(time.Hour)
	}
	list, at, err := api.NewestStateVersions(ctx, "acme", "net", 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].RunID != runs[1] || list[1].RunID != runs[0] || !list[0].Processed || list[0].Partial || at.IsZero() {
		t.Fatalf("newest state versions: %+v at %s; want those of %v, newest first, processed, with TFE's time", list, at, runs)
	}
	var key string
	for _, o := range list[0].Outputs {
		switch o.Name {
		case "id":
			if string(o.Value) != "12345678901234567890" || o.Sensitive {
				t.Errorf("id: %s, want every digit", o.Value)
			}
		case "key":
			key = o.ID
			if string(o.Value) != "null" || !o.Sensitive {
				t.Errorf("key listed as %s, want null and sensitive", o.Value)
			}
		}
	}
	if key == "" {
		t.Fatalf("outputs of the newest state version: %+v, want id and key", list[0].Outputs)
	}
	o, err := api.ReadStateOutput(ctx, key)
	if err != nil || string(o.Value) != `"s3cret"` || o.Name != "key" {
		t.Errorf("key read alone: %+v, %v; want its value", o, err)
	}
	var se *tfeclient.StatusError
	if _, _, err := api.NewestStateVersions(ctx, "acme", "nosuch", 2); !errors.As(err, &se) || tfeclient.Classify(err, nil) != tfeclient.Gone {
		t.Errorf("state versions of an unknown workspace: %v, want a *StatusError classified Gone", err)
	}
}
