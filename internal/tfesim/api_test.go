package tfesim_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// raw sends a request with the given token and returns the status and body.
func (e *testEnv) raw(method, path, token, body string) (int, []byte) {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/vnd.api+json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return res.StatusCode, b
}

func TestOrganizations(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	got, err := e.client.Organizations.Read(e.ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "acme" || got.Email != "ops@acme.test" {
		t.Errorf("got %q <%s>, want acme <ops@acme.test>", got.Name, got.Email)
	}
	if _, err := e.client.Organizations.Create(e.ctx, tfe.OrganizationCreateOptions{Name: tfe.String("acme"), Email: tfe.String("x@y.z")}); err == nil {
		t.Error("creating a second organization named acme succeeded")
	}
	if err := e.client.Organizations.Delete(e.ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Organizations.Read(e.ctx, "acme"); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("read after delete: got %v, want ErrResourceNotFound", err)
	}
}

func TestAuthentication(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	if code, _ := e.raw("GET", "/api/v2/organizations/acme", "wrong", ""); code != http.StatusUnauthorized {
		t.Errorf("wrong token: got %d, want 401", code)
	}
	if code, _ := e.raw("GET", "/api/v2/organizations/acme", "", ""); code != http.StatusUnauthorized {
		t.Errorf("no token: got %d, want 401", code)
	}
}

func TestWorkspaces(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	for i := range 25 {
		opts := tfe.WorkspaceCreateOptions{Name: tfe.String(fmt.Sprintf("ws-%02d", i))}
		if i%5 == 0 {
			opts.Tags = []*tfe.Tag{{Name: "prod"}}
		}
		if _, err := e.client.Workspaces.Create(e.ctx, "acme", opts); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("list with paging", func(t *testing.T) {
		var names []string
		opts := &tfe.WorkspaceListOptions{ListOptions: tfe.ListOptions{PageSize: 10}}
		for {
			page, err := e.client.Workspaces.List(e.ctx, "acme", opts)
			if err != nil {
				t.Fatal(err)
			}
			if page.TotalCount != 25 || page.TotalPages != 3 {
				t.Fatalf("got total %d in %d pages, want 25 in 3", page.TotalCount, page.TotalPages)
			}
			for _, ws := range page.Items {
				names = append(names, ws.Name)
			}
			if page.NextPage == 0 {
				break
			}
			opts.PageNumber = page.NextPage
		}
		if len(names) != 25 || names[0] != "ws-00" || names[24] != "ws-24" {
			t.Errorf("got %d names %v…, want ws-00…ws-24", len(names), names[:min(3, len(names))])
		}
	})

	t.Run("search by name and tags", func(t *testing.T) {
		page, err := e.client.Workspaces.List(e.ctx, "acme", &tfe.WorkspaceListOptions{Search: "ws-1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 10 {
			t.Errorf("search[name]=ws-1: got %d, want 10", len(page.Items))
		}
		page, err = e.client.Workspaces.List(e.ctx, "acme", &tfe.WorkspaceListOptions{Tags: "prod"})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 5 {
			t.Errorf("search[tags]=prod: got %d, want 5", len(page.Items))
		}
	})

	t.Run("show by name and by id", func(t *testing.T) {
		byName, err := e.client.Workspaces.Read(e.ctx, "acme", "ws-05")
		if err != nil {
			t.Fatal(err)
		}
		byID, err := e.client.Workspaces.ReadByID(e.ctx, byName.ID)
		if err != nil {
			t.Fatal(err)
		}
		if byID.Name != "ws-05" || byID.Organization.Name != "acme" || !slices.Equal(byID.TagNames, []string{"prod"}) {
			t.Errorf("got %s in %s tags %v, want ws-05 in acme tags [prod]", byID.Name, byID.Organization.Name, byID.TagNames)
		}
		if _, err := e.client.Workspaces.Read(e.ctx, "acme", "nope"); !errors.Is(err, tfe.ErrResourceNotFound) {
			t.Errorf("unknown workspace: got %v, want ErrResourceNotFound", err)
		}
	})

	t.Run("update", func(t *testing.T) {
		ws, err := e.client.Workspaces.Update(e.ctx, "acme", "ws-01", tfe.WorkspaceUpdateOptions{
			AutoApply: tfe.Bool(true), AutoApplyRunTrigger: tfe.Bool(true), ExecutionMode: tfe.String("local"),
		})
		if err != nil {
			t.Fatal(err)
		}
		if !ws.AutoApply || !ws.AutoApplyRunTrigger || ws.ExecutionMode != "local" {
			t.Errorf("got auto-apply %v, auto-apply-run-trigger %v, mode %s; want true, true, local", ws.AutoApply, ws.AutoApplyRunTrigger, ws.ExecutionMode)
		}
		if _, err := e.client.Workspaces.Update(e.ctx, "acme", "ws-01", tfe.WorkspaceUpdateOptions{Name: tfe.String("ws-02")}); err == nil {
			t.Error("renaming onto an existing name succeeded")
		}
	})

	t.Run("lock twice, unlock twice", func(t *testing.T) {
		ws, err := e.client.Workspaces.Read(e.ctx, "acme", "ws-03")
		if err != nil {
			t.Fatal(err)
		}
		locked, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{Reason: tfe.String("maintenance")})
		if err != nil {
			t.Fatal(err)
		}
		if !locked.Locked || locked.LockedBy == nil || locked.LockedBy.User == nil {
			t.Errorf("after lock: locked %v, locked-by %+v; want locked by a user", locked.Locked, locked.LockedBy)
		}
		if _, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{}); !errors.Is(err, tfe.ErrWorkspaceLocked) {
			t.Errorf("second lock: got %v, want ErrWorkspaceLocked (409)", err)
		}
		if code, _ := e.raw("POST", "/api/v2/workspaces/"+ws.ID+"/actions/lock", adminToken, ""); code != http.StatusConflict {
			t.Errorf("second lock: got HTTP %d, want 409", code)
		}
		if _, err := e.client.Workspaces.Unlock(e.ctx, ws.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Workspaces.Unlock(e.ctx, ws.ID); !errors.Is(err, tfe.ErrWorkspaceNotLocked) {
			t.Errorf("second unlock: got %v, want ErrWorkspaceNotLocked", err)
		}
		if _, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Workspaces.ForceUnlock(e.ctx, ws.ID); err != nil {
			t.Errorf("force-unlock: %v", err)
		}
	})

	t.Run("delete and safe delete", func(t *testing.T) {
		if err := e.client.Workspaces.Delete(e.ctx, "acme", "ws-10"); err != nil {
			t.Fatal(err)
		}
		ws, err := e.client.Workspaces.Read(e.ctx, "acme", "ws-11")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.Workspaces.Lock(e.ctx, ws.ID, tfe.WorkspaceLockOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := e.client.Workspaces.SafeDeleteByID(e.ctx, ws.ID); !errors.Is(err, tfe.ErrWorkspaceLockedCannotDelete) {
			t.Errorf("safe delete of a locked workspace: got %v, want ErrWorkspaceLockedCannotDelete", err)
		}
		if _, err := e.client.Workspaces.Unlock(e.ctx, ws.ID); err != nil {
			t.Fatal(err)
		}
		if err := e.client.Workspaces.SafeDeleteByID(e.ctx, ws.ID); err != nil {
			t.Errorf("safe delete: %v", err)
		}
		page, err := e.client.Workspaces.List(e.ctx, "acme", nil)
		if err != nil {
			t.Fatal(err)
		}
		if page.TotalCount != 23 {
			t.Errorf("after two deletes: got %d workspaces, want 23", page.TotalCount)
		}
	})

	t.Run("validation", func(t *testing.T) {
		code, body := e.raw("POST", "/api/v2/organizations/acme/workspaces", adminToken,
			`{"data":{"type":"workspaces","attributes":{"name":"bad name!"}}}`)
		if code != http.StatusUnprocessableEntity {
			t.Errorf("invalid name: got %d, want 422", code)
		}
		var doc struct {
			Errors []struct{ Status, Title, Detail string } `json:"errors"`
		}
		if err := json.Unmarshal(body, &doc); err != nil || len(doc.Errors) != 1 || doc.Errors[0].Status != "422" {
			t.Errorf("got body %s, want one JSON:API error object with status 422", body)
		}
		if code, _ := e.raw("POST", "/api/v2/organizations/acme/workspaces", adminToken, `{"data":`); code != http.StatusBadRequest {
			t.Errorf("malformed JSON: got %d, want 400", code)
		}
		if code, _ := e.raw("POST", "/api/v2/organizations/acme/workspaces", adminToken,
			`{"data":{"type":"workspaces","attributes":{"name":"x","auto-apply":"yes"}}}`); code != http.StatusUnprocessableEntity {
			t.Errorf("wrong attribute type: got %d, want 422", code)
		}
	})
}

func TestRunTriggers(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	e.org("other")
	target := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("target")})
	var sources []*tfe.Workspace
	for i := range 21 {
		sources = append(sources, e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String(fmt.Sprintf("src-%02d", i))}))
	}
	for _, src := range sources[:20] {
		if _, err := e.client.RunTriggers.Create(e.ctx, target.ID, tfe.RunTriggerCreateOptions{Sourceable: src}); err != nil {
			t.Fatalf("create trigger from %s: %v", src.Name, err)
		}
	}

	t.Run("the 21st source is refused", func(t *testing.T) {
		_, err := e.client.RunTriggers.Create(e.ctx, target.ID, tfe.RunTriggerCreateOptions{Sourceable: sources[20]})
		if err == nil {
			t.Fatal("21st source accepted")
		}
		code, _ := e.raw("POST", "/api/v2/workspaces/"+target.ID+"/run-triggers", adminToken,
			`{"data":{"relationships":{"sourceable":{"data":{"id":"`+sources[20].ID+`","type":"workspaces"}}}}}`)
		if code != http.StatusUnprocessableEntity {
			t.Errorf("21st source: got %d, want 422", code)
		}
	})

	t.Run("inbound with paging and include", func(t *testing.T) {
		var got []string
		opts := &tfe.RunTriggerListOptions{
			RunTriggerType: tfe.RunTriggerInbound,
			ListOptions:    tfe.ListOptions{PageSize: 7},
			Include:        []tfe.RunTriggerIncludeOpt{tfe.RunTriggerSourceable},
		}
		for {
			page, err := e.client.RunTriggers.List(e.ctx, target.ID, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, rt := range page.Items {
				if rt.Sourceable == nil || rt.Sourceable.Name != rt.SourceableName {
					t.Fatalf("included sourceable: got %+v, want the workspace named %s", rt.Sourceable, rt.SourceableName)
				}
				if rt.Workspace.ID != target.ID || rt.WorkspaceName != "target" {
					t.Fatalf("workspace: got %s (%s), want %s (target)", rt.Workspace.ID, rt.WorkspaceName, target.ID)
				}
				got = append(got, rt.Sourceable.Name)
			}
			if page.NextPage == 0 {
				break
			}
			opts.PageNumber = page.NextPage
		}
		if len(got) != 20 || got[0] != "src-00" || got[19] != "src-19" {
			t.Errorf("got %d sources %v, want src-00…src-19 in creation order", len(got), got)
		}
	})

	t.Run("outbound", func(t *testing.T) {
		page, err := e.client.RunTriggers.List(e.ctx, sources[3].ID, &tfe.RunTriggerListOptions{RunTriggerType: tfe.RunTriggerOutbound})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Items) != 1 || page.Items[0].Workspace.ID != target.ID || page.Items[0].SourceableChoice.Workspace.ID != sources[3].ID {
			t.Errorf("outbound of src-03: got %d triggers, want one into target", len(page.Items))
		}
	})

	t.Run("show and delete", func(t *testing.T) {
		page, err := e.client.RunTriggers.List(e.ctx, target.ID, &tfe.RunTriggerListOptions{RunTriggerType: tfe.RunTriggerInbound})
		if err != nil {
			t.Fatal(err)
		}
		rt, err := e.client.RunTriggers.Read(e.ctx, page.Items[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if rt.SourceableName != "src-00" {
			t.Errorf("show: got source %s, want src-00", rt.SourceableName)
		}
		if err := e.client.RunTriggers.Delete(e.ctx, rt.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.RunTriggers.Read(e.ctx, rt.ID); !errors.Is(err, tfe.ErrResourceNotFound) {
			t.Errorf("show after delete: got %v, want ErrResourceNotFound", err)
		}
	})

	foreign := e.workspace("other", tfe.WorkspaceCreateOptions{Name: tfe.String("foreign")})
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   string
		want   int
	}{
		{"list without filter", "GET", "/api/v2/workspaces/" + target.ID + "/run-triggers", "", 400},
		{"list with a bad filter", "GET", "/api/v2/workspaces/" + target.ID + "/run-triggers?filter%5Brun-trigger%5D%5Btype%5D=sideways", "", 400},
		{"list of an unknown workspace", "GET", "/api/v2/workspaces/ws-doesnotexist0000/run-triggers?filter%5Brun-trigger%5D%5Btype%5D=inbound", "", 404},
		{"show unknown", "GET", "/api/v2/run-triggers/rt-doesnotexist0000", "", 404},
		{"create in unknown workspace", "POST", "/api/v2/workspaces/ws-doesnotexist0000/run-triggers", sourceBody(sources[0].ID), 404},
		{"create from unknown source", "POST", "/api/v2/workspaces/" + sources[1].ID + "/run-triggers", sourceBody("ws-doesnotexist0000"), 404},
		{"self trigger", "POST", "/api/v2/workspaces/" + sources[1].ID + "/run-triggers", sourceBody(sources[1].ID), 422},
		{"duplicate", "POST", "/api/v2/workspaces/" + target.ID + "/run-triggers", sourceBody(sources[5].ID), 422},
		{"other organization", "POST", "/api/v2/workspaces/" + sources[1].ID + "/run-triggers", sourceBody(foreign.ID), 422},
		{"no sourceable", "POST", "/api/v2/workspaces/" + sources[1].ID + "/run-triggers", `{"data":{}}`, 422},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if code, body := e.raw(tc.method, tc.path, adminToken, tc.body); code != tc.want {
				t.Errorf("got %d (%s), want %d", code, body, tc.want)
			}
		})
	}
}

func sourceBody(id string) string {
	return `{"data":{"relationships":{"sourceable":{"data":{"id":"` + id + `","type":"workspaces"}}}}}`
}

// go-tfe's Users.ReadCurrent (GET /account/details) answers the token's
// user, and 401 for a token the simulator does not know.
