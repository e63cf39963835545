package tfesim_test

import (
	"testing"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

func (e *testEnv) currentCV(wsID string) string {
	e.t.Helper()
	ws, err := e.client.Workspaces.ReadByID(e.ctx, wsID)
	if err != nil {
		e.t.Fatal(err)
	}
	if ws.CurrentConfigurationVersion == nil {
		return ""
	}
	return ws.CurrentConfigurationVersion.ID
}

func (e *testEnv) createCV(wsID string, opts tfe.ConfigurationVersionCreateOptions) *tfe.ConfigurationVersion {
	e.t.Helper()
	cv, err := e.client.ConfigurationVersions.Create(e.ctx, wsID, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return cv
}

// The upload URL is in the create answer only; the archive may be
// uploaded to it again.
func TestConfigurationVersionUploadURL(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws, err := e.client.Workspaces.Create(e.ctx, "acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	if err != nil {
		t.Fatal(err)
	}
	cv := e.createCV(ws.ID, tfe.ConfigurationVersionCreateOptions{AutoQueueRuns: tfe.Bool(true)})
	if cv.UploadURL == "" {
		t.Fatal("create: no upload-url")
	}
	read, err := e.client.ConfigurationVersions.Read(e.ctx, cv.ID)
	if err != nil {
		t.Fatal(err)
	}
	list, err := e.client.ConfigurationVersions.List(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if read.UploadURL != "" || len(list.Items) != 1 || list.Items[0].UploadURL != "" {
		t.Errorf("upload-url after create: show %q, list %+v; want none", read.UploadURL, list.Items)
	}
	for range 2 {
		if err := e.client.ConfigurationVersions.UploadTarGzip(e.ctx, cv.UploadURL, tarGz(t)); err != nil {
			t.Fatalf("upload: %v", err)
		}
	}
	runs, err := e.client.Runs.List(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs.Items) != 1 {
		t.Errorf("after two uploads: got %d runs, want the one the first upload queued", len(runs.Items))
	}
}

// A version that is neither speculative nor provisional is current from
// its creation, before its upload; a run in a workspace whose current
// version is not uploaded yet is refused.
func TestCurrentConfigurationVersion(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	uploaded := e.currentCV(ws.ID)

	spec := e.createCV(ws.ID, tfe.ConfigurationVersionCreateOptions{Speculative: tfe.Bool(true)})
	prov := e.createCV(ws.ID, tfe.ConfigurationVersionCreateOptions{Provisional: tfe.Bool(true), AutoQueueRuns: tfe.Bool(false)})
	if !prov.Provisional {
		t.Error("provisional: false in the create answer")
	}
	if got := e.currentCV(ws.ID); got != uploaded {
		t.Errorf("after speculative %s and provisional %s: current %s, want still %s", spec.ID, prov.ID, got, uploaded)
	}

	pending := e.createCV(ws.ID, tfe.ConfigurationVersionCreateOptions{AutoQueueRuns: tfe.Bool(false)})
	if got := e.currentCV(ws.ID); got != pending.ID {
		t.Errorf("after a plain create: current %s, want %s (current from creation)", got, pending.ID)
	}
	if _, err := e.client.Runs.Create(e.ctx, tfe.RunCreateOptions{Workspace: ws}); err == nil {
		t.Error("a run on a current version not yet uploaded was created")
	}
}

// A provisional version becomes current when a run using it applies,
// unless a newer version is current by then.
func TestProvisionalConfigurationVersion(t *testing.T) {
	for _, tc := range []struct {
		name       string
		newerFirst bool
	}{
		{"becomes current", false},
		{"a newer version stays current", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tfesim.Options{})
			e.org("acme")
			ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
			prov := e.createCV(ws.ID, tfe.ConfigurationVersionCreateOptions{Provisional: tfe.Bool(true), AutoQueueRuns: tfe.Bool(false)})
			e.must(e.client.ConfigurationVersions.UploadTarGzip(e.ctx, prov.UploadURL, tarGz(t)))
			r := e.run(ws.ID, tfe.RunCreateOptions{ConfigurationVersion: prov})
			want := prov.ID
			if tc.newerFirst {
				newer := e.createCV(ws.ID, tfe.ConfigurationVersionCreateOptions{AutoQueueRuns: tfe.Bool(false)})
				want = newer.ID
			}
			e.must(e.client.Runs.Apply(e.ctx, r.ID, tfe.RunApplyOptions{}))
			e.wantStatus(r.ID, tfe.RunApplied)
			if got := e.currentCV(ws.ID); got != want {
				t.Errorf("current: got %s, want %s", got, want)
			}
		})
	}
}

// A speculative version's upload queues a plan-only run, which the runs
// list leaves out unless asked for.
func TestSpeculativeUploadQueuesPlanOnlyRun(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	cv := e.createCV(ws.ID, tfe.ConfigurationVersionCreateOptions{Speculative: tfe.Bool(true)})
	e.must(e.client.ConfigurationVersions.UploadTarGzip(e.ctx, cv.UploadURL, tarGz(t)))
	list, err := e.client.Runs.List(e.ctx, ws.ID, &tfe.RunListOptions{Operation: string(tfe.RunOperationPlanOnly)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || !list.Items[0].PlanOnly || list.Items[0].Status != tfe.RunPlannedAndFinished {
		t.Fatalf("plan-only runs: got %d, want one planned_and_finished", len(list.Items))
	}
	all, err := e.client.Runs.List(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 0 {
		t.Errorf("default list: got %d runs, want the plan-only run left out", len(all.Items))
	}
}
