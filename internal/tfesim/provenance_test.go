package tfesim_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// GET /account/details answers the token's user; a bad token gets 401.
func TestAccountDetails(t *testing.T) {
	e := newEnv(t, tfesim.Options{UserTokens: []string{"user-token"}})
	for _, tc := range []struct {
		token, username string
		siteAdmin       bool
	}{
		{adminToken, "admin", true},
		{"user-token", "user1", false},
	} {
		u, err := e.newClient(tc.token).Users.ReadCurrent(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if u.Username != tc.username || u.IsSiteAdmin == nil || *u.IsSiteAdmin != tc.siteAdmin || u.Email == "" || u.ID == "" {
			t.Errorf("token %s: got %+v, want %s, site admin %v, with an e-mail", tc.token, u, tc.username, tc.siteAdmin)
		}
	}
	if _, err := e.newClient("not-a-token").Users.ReadCurrent(e.ctx); !errors.Is(err, tfe.ErrUnauthorized) {
		t.Errorf("bad token: got %v, want ErrUnauthorized", err)
	}
}

// Runs say where they came from and who acted.
func TestRunProvenance(t *testing.T) {
	e := newEnv(t, tfesim.Options{UserTokens: []string{"user-token"}})
	user := e.newClient("user-token")
	me, err := user.Users.ReadCurrent(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	e.org("acme")
	up := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("up")})
	down := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("down")})
	if _, err := e.client.RunTriggers.Create(e.ctx, down.ID, tfe.RunTriggerCreateOptions{Sourceable: up}); err != nil {
		t.Fatal(err)
	}
	inc := &tfe.RunReadOptions{Include: []tfe.RunIncludeOpt{tfe.RunCreatedBy, tfe.RunWorkspace}}
	read := func(id string) *tfe.Run {
		t.Helper()
		r, err := e.client.Runs.ReadWithOptions(e.ctx, id, inc)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	created, err := user.Runs.Create(e.ctx, tfe.RunCreateOptions{Workspace: up, Message: tfe.String("deploy")})
	if err != nil {
		t.Fatal(err)
	}
	r := read(created.ID)
	if r.Source != tfe.RunSourceAPI || r.TriggerReason != "manual" || r.CreatedBy == nil || r.CreatedBy.ID != me.ID || r.CreatedBy.Username != "user1" {
		t.Errorf("API run: source %s, trigger-reason %q, created-by %+v; want tfe-api, manual, user1 (included)", r.Source, r.TriggerReason, r.CreatedBy)
	}
	if !r.HasChanges || r.ConfirmedBy != nil {
		t.Errorf("planned run: has-changes %v, confirmed-by %+v; want true and none", r.HasChanges, r.ConfirmedBy)
	}
	if r.Workspace == nil || r.Workspace.Name != "up" || r.Workspace.Organization == nil || r.Workspace.Organization.Name != "acme" {
		t.Errorf("include=workspace: got %+v, want the workspace up of acme", r.Workspace)
	}
	e.must(e.client.Runs.Apply(e.ctx, created.ID, tfe.RunApplyOptions{})) // the admin confirms
	r = read(created.ID)
	admin, err := e.client.Users.ReadCurrent(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != tfe.RunApplied || r.ConfirmedBy == nil || r.ConfirmedBy.ID != admin.ID {
		t.Errorf("applied run: status %s, confirmed-by %+v; want applied, confirmed by %s", r.Status, r.ConfirmedBy, admin.ID)
	}

	native, err := e.client.Runs.List(e.ctx, down.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(native.Items) != 1 {
		t.Fatalf("down: got %d runs, want the run trigger's", len(native.Items))
	}
	n := read(native.Items[0].ID)
	if n.Source != "tfe-run-trigger" || n.TriggerReason != "run_trigger" || n.Message != "Triggered by run "+created.ID+" in up" ||
		n.CreatedBy == nil || n.CreatedBy.ID != me.ID {
		t.Errorf("run-trigger run: source %s, trigger-reason %q, message %q, created-by %+v", n.Source, n.TriggerReason, n.Message, n.CreatedBy)
	}

	cv, err := e.client.ConfigurationVersions.Create(e.ctx, up.ID, tfe.ConfigurationVersionCreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.must(e.client.ConfigurationVersions.UploadTarGzip(e.ctx, cv.UploadURL, tarGz(t)))
	list, err := e.client.Runs.List(e.ctx, up.ID, &tfe.RunListOptions{Source: string(tfe.RunSourceConfigurationVersion)})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 || list.Items[0].ConfigurationVersion.ID != cv.ID {
		t.Errorf("filter[source]=tfe-configuration-version: got %d runs, want the upload's", len(list.Items))
	}
}

// Comments: created through the API or by an action, read one by one or
// listed.
func TestComments(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	r := e.run(ws.ID, tfe.RunCreateOptions{})
	c, err := e.client.Comments.Create(e.ctx, r.ID, tfe.CommentCreateOptions{Body: "looks fine"})
	if err != nil {
		t.Fatal(err)
	}
	e.must(e.client.Runs.Discard(e.ctx, r.ID, tfe.RunDiscardOptions{Comment: tfe.String("not today")}))
	got, err := e.client.Comments.Read(e.ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Body != "looks fine" {
		t.Errorf("read: got %q, want looks fine", got.Body)
	}
	list, err := e.client.Comments.List(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].Body != "looks fine" || list.Items[1].Body != "not today" {
		t.Errorf("list: got %+v, want the created comment then the discard's", list.Items)
	}
	withComments, err := e.client.Runs.Read(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(withComments.Comments) != 2 {
		t.Errorf("run's comments relationship: got %d, want 2", len(withComments.Comments))
	}
	if _, err := e.client.Comments.Read(e.ctx, "wsc-doesnotexist0000"); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("unknown comment: got %v, want ErrResourceNotFound", err)
	}
	if code, _ := e.raw("POST", "/api/v2/runs/"+r.ID+"/comments", adminToken, `{"data":{"type":"comments","attributes":{"body":""}}}`); code != http.StatusUnprocessableEntity {
		t.Errorf("empty body: got %d, want 422", code)
	}
	if _, err := e.client.Comments.Create(e.ctx, "run-doesnotexist0000", tfe.CommentCreateOptions{Body: "x"}); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("comment on an unknown run: got %v, want ErrResourceNotFound", err)
	}
}

// An auto-applied run has no confirmed-by: no one confirmed it.
func TestAutoAppliedRunHasNoConfirmer(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	r := e.run(ws.ID, tfe.RunCreateOptions{})
	e.sim.Advance(time.Second)
	got, err := e.client.Runs.Read(e.ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != tfe.RunApplied || got.ConfirmedBy != nil {
		t.Errorf("got %s confirmed by %+v, want applied with no confirmed-by", got.Status, got.ConfirmedBy)
	}
}
