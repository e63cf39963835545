package tfesim_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// An include an endpoint does not know answers 400 "Invalid include
// parameter", which go-tfe reads as ErrInvalidIncludeValue, on every
// endpoint that takes one.
func TestUnknownIncludeIsRefused(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	r := e.run(ws.ID, tfe.RunCreateOptions{})
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"admin runs", func() error {
			_, err := e.client.Admin.Runs.List(e.ctx, &tfe.AdminRunsListOptions{Include: []tfe.AdminRunIncludeOpt{"workpsace"}})
			return err
		}},
		{"workspace list", func() error {
			_, err := e.client.Workspaces.List(e.ctx, "acme", &tfe.WorkspaceListOptions{Include: []tfe.WSIncludeOpt{"current-run"}})
			return err
		}},
		{"workspace show", func() error {
			_, err := e.client.Workspaces.ReadByIDWithOptions(e.ctx, ws.ID, &tfe.WorkspaceReadOptions{Include: []tfe.WSIncludeOpt{"runs"}})
			return err
		}},
		{"run show", func() error {
			_, err := e.client.Runs.ReadWithOptions(e.ctx, r.ID, &tfe.RunReadOptions{Include: []tfe.RunIncludeOpt{"created-by"}})
			return err
		}},
		{"runs list", func() error {
			_, err := e.client.Runs.List(e.ctx, ws.ID, &tfe.RunListOptions{Include: []tfe.RunIncludeOpt{"organization"}})
			return err
		}},
		{"run triggers list", func() error {
			_, err := e.client.RunTriggers.List(e.ctx, ws.ID, &tfe.RunTriggerListOptions{
				RunTriggerType: tfe.RunTriggerInbound, Include: []tfe.RunTriggerIncludeOpt{"workspaces"}})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, tfe.ErrInvalidIncludeValue) {
				t.Errorf("got %v, want ErrInvalidIncludeValue", err)
			}
		})
	}
	// An include TFE documents but the simulator does not model is accepted.
	if _, err := e.client.Runs.ReadWithOptions(e.ctx, r.ID, &tfe.RunReadOptions{Include: []tfe.RunIncludeOpt{tfe.RunPlan}}); err != nil {
		t.Errorf("include=plan: %v", err)
	}
}

func TestAdminRunsIncludesAndTimeFilter(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	var ids []string
	for range 3 {
		ids = append(ids, e.run(ws.ID, tfe.RunCreateOptions{}).ID)
		e.sim.Advance(time.Hour)
	}

	withOrg, err := e.client.Admin.Runs.List(e.ctx, &tfe.AdminRunsListOptions{Include: []tfe.AdminRunIncludeOpt{tfe.AdminRunWorkspaceOrg}})
	if err != nil {
		t.Fatal(err)
	}
	if w := withOrg.Items[0].Workspace; w == nil || w.Name != "net" || w.Organization == nil || w.Organization.Name != "acme" {
		t.Errorf("include=workspace.organization: got workspace %+v", w)
	}

	at := func(h int) string { return epoch.Add(time.Duration(h) * time.Hour).Format(time.RFC3339) }
	for _, tc := range []struct {
		name          string
		after, before string
		want          []string // newest first
	}{
		{"from", at(1), "", []string{ids[2], ids[1]}},
		{"to", "", at(1), []string{ids[1], ids[0]}},
		{"from and to", at(1), at(1), []string{ids[1]}},
		{"none", "", "", []string{ids[2], ids[1], ids[0]}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := e.client.Admin.Runs.List(e.ctx, &tfe.AdminRunsListOptions{CreatedAfter: tc.after, CreatedBefore: tc.before})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range list.Items {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	if code, _ := e.raw("GET", "/api/v2/admin/runs?filter%5Bfrom%5D=yesterday", adminToken, ""); code != http.StatusBadRequest {
		t.Errorf("filter[from]=yesterday: got %d, want 400", code)
	}
}

func TestRunListFilters(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net"), AutoApply: tfe.Bool(true)})
	apply := e.run(ws.ID, tfe.RunCreateOptions{Message: tfe.String("cascade c-1")})
	destroy := e.run(ws.ID, tfe.RunCreateOptions{IsDestroy: tfe.Bool(true)})
	plan := e.run(ws.ID, tfe.RunCreateOptions{PlanOnly: tfe.Bool(true), Message: tfe.String("cascade c-1 preview")})

	for _, tc := range []struct {
		name string
		opts tfe.RunListOptions
		want []string
	}{
		{"plan-only runs are left out by default", tfe.RunListOptions{}, []string{destroy.ID, apply.ID}},
		{"filter[operation] lets them in", tfe.RunListOptions{Operation: "plan_only,plan_and_apply"}, []string{plan.ID, apply.ID}},
		{"filter[operation]=destroy", tfe.RunListOptions{Operation: string(tfe.RunOperationDestroy)}, []string{destroy.ID}},
		{"filter[source]", tfe.RunListOptions{Source: string(tfe.RunSourceAPI)}, []string{destroy.ID, apply.ID}},
		{"filter[source] of another source", tfe.RunListOptions{Source: string(tfe.RunSourceUI)}, nil},
		{"search[basic]", tfe.RunListOptions{Search: "cascade c-1"}, []string{apply.ID}},
		{"search[basic] on an ID", tfe.RunListOptions{Search: destroy.ID}, []string{destroy.ID}},
		{"search[user] wins over search[basic]", tfe.RunListOptions{User: "someone", Search: "cascade c-1"}, nil},
		{"search[commit] wins over search[basic]", tfe.RunListOptions{Commit: "abc123", Search: "cascade c-1"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := e.client.Runs.List(e.ctx, ws.ID, &tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range list.Items {
				got = append(got, r.ID)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestWorkspaceListParameters(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ids := map[string]string{}
	for _, name := range []string{"app-prod", "app-dev", "db-prod", "idle"} {
		ids[name] = e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String(name), AutoApply: tfe.Bool(true)}).ID
	}
	// Current runs, oldest first: db-prod, app-dev (errored), app-prod. idle never ran.
	for _, name := range []string{"db-prod", "app-dev", "app-prod"} {
		if name == "app-dev" {
			e.behave(ids[name], tfesim.Behavior{Outcome: tfesim.OutcomeErrored})
		}
		e.run(ids[name], tfe.RunCreateOptions{})
		e.sim.Advance(time.Minute)
	}
	for name, tags := range map[string][]string{"app-prod": {"prod", "app"}, "app-dev": {"app"}, "db-prod": {"prod"}} {
		var list []*tfe.Tag
		for _, tag := range tags {
			list = append(list, &tfe.Tag{Name: tag})
		}
		e.must(e.client.Workspaces.AddTags(e.ctx, ids[name], tfe.WorkspaceAddTagsOptions{Tags: list}))
	}

	for _, tc := range []struct {
		name string
		opts tfe.WorkspaceListOptions
		want []string
	}{
		{"default: by name", tfe.WorkspaceListOptions{}, []string{"app-dev", "app-prod", "db-prod", "idle"}},
		{"-name", tfe.WorkspaceListOptions{Sort: "-name"}, []string{"idle", "db-prod", "app-prod", "app-dev"}},
		{"current-run.created-at: no run last", tfe.WorkspaceListOptions{Sort: "current-run.created-at"}, []string{"db-prod", "app-dev", "app-prod", "idle"}},
		{"-current-run.created-at: no run first", tfe.WorkspaceListOptions{Sort: "-current-run.created-at"}, []string{"idle", "app-prod", "app-dev", "db-prod"}},
		{"search[wildcard-name] suffix", tfe.WorkspaceListOptions{WildcardName: "*-prod"}, []string{"app-prod", "db-prod"}},
		{"search[wildcard-name] prefix", tfe.WorkspaceListOptions{WildcardName: "app-*"}, []string{"app-dev", "app-prod"}},
		{"search[wildcard-name] both", tfe.WorkspaceListOptions{WildcardName: "*p-p*"}, []string{"app-prod"}},
		{"search[wildcard-name] exact", tfe.WorkspaceListOptions{WildcardName: "idle"}, []string{"idle"}},
		{"search[name]", tfe.WorkspaceListOptions{Search: "PROD"}, []string{"app-prod", "db-prod"}},
		{"search[tags]", tfe.WorkspaceListOptions{Tags: "prod,app"}, []string{"app-prod"}},
		{"search[exclude-tags]", tfe.WorkspaceListOptions{ExcludeTags: "prod"}, []string{"app-dev", "idle"}},
		{"filter[current-run][status]", tfe.WorkspaceListOptions{CurrentRunStatus: "applied"}, []string{"app-prod", "db-prod"}},
		{"filter[current-run][status], several", tfe.WorkspaceListOptions{CurrentRunStatus: "errored,applied", Sort: "-current-run.created-at"}, []string{"app-prod", "app-dev", "db-prod"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list, err := e.client.Workspaces.List(e.ctx, "acme", &tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, ws := range list.Items {
				got = append(got, ws.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}

	t.Run("include=organization", func(t *testing.T) {
		list, err := e.client.Workspaces.List(e.ctx, "acme", &tfe.WorkspaceListOptions{Include: []tfe.WSIncludeOpt{tfe.WSOrganization}})
		if err != nil {
			t.Fatal(err)
		}
		if o := list.Items[0].Organization; o == nil || o.Email != "ops@acme.test" {
			t.Errorf("got organization %+v, want acme with its e-mail (included)", o)
		}
	})
	t.Run("unknown sort", func(t *testing.T) {
		if _, err := e.client.Workspaces.List(e.ctx, "acme", &tfe.WorkspaceListOptions{Sort: "created-at"}); err == nil {
			t.Error("sort=created-at was accepted")
		}
	})
	t.Run("paging -current-run.created-at", func(t *testing.T) {
		var got []string
		opts := &tfe.WorkspaceListOptions{Sort: "-current-run.created-at", Include: []tfe.WSIncludeOpt{tfe.WSCurrentRun}, ListOptions: tfe.ListOptions{PageSize: 3}}
		for {
			page, err := e.client.Workspaces.List(e.ctx, "acme", opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, ws := range page.Items {
				status := "none"
				if ws.CurrentRun != nil {
					status = string(ws.CurrentRun.Status)
				}
				got = append(got, ws.Name+"/"+status)
			}
			if page.NextPage == 0 {
				break
			}
			opts.PageNumber = page.NextPage
		}
		if want := []string{"idle/none", "app-prod/applied", "app-dev/errored", "db-prod/applied"}; !slices.Equal(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}

func TestWorkspaceTags(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	e.org("acme")
	ws := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("net")})
	other := e.workspace("acme", tfe.WorkspaceCreateOptions{Name: tfe.String("other")})
	e.must(e.client.Workspaces.AddTags(e.ctx, ws.ID, tfe.WorkspaceAddTagsOptions{Tags: []*tfe.Tag{{Name: "prod"}, {Name: "Core"}}}))
	list, err := e.client.Workspaces.ListTags(e.ctx, ws.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var prodID string
	for _, tag := range list.Items {
		names = append(names, tag.Name)
		if tag.Name == "prod" {
			prodID = tag.ID
		}
	}
	if !slices.Equal(names, []string{"core", "prod"}) || prodID == "" {
		t.Fatalf("tags: got %v, want core and prod with IDs", names)
	}
	// By ID onto another workspace: the organization's tag is shared.
	e.must(e.client.Workspaces.AddTags(e.ctx, other.ID, tfe.WorkspaceAddTagsOptions{Tags: []*tfe.Tag{{ID: prodID}}}))
	found, err := e.client.Workspaces.List(e.ctx, "acme", &tfe.WorkspaceListOptions{Tags: "prod"})
	if err != nil {
		t.Fatal(err)
	}
	if found.TotalCount != 2 {
		t.Errorf("search[tags]=prod: got %d workspaces, want 2", found.TotalCount)
	}
	e.must(e.client.Workspaces.RemoveTags(e.ctx, ws.ID, tfe.WorkspaceRemoveTagsOptions{Tags: []*tfe.Tag{{ID: prodID}, {Name: "nosuchtag"}}}))
	read, err := e.client.Workspaces.ReadByID(e.ctx, ws.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(read.TagNames, []string{"core"}) {
		t.Errorf("after remove: tag-names %v, want [core]", read.TagNames)
	}
	if err := e.client.Workspaces.AddTags(e.ctx, ws.ID, tfe.WorkspaceAddTagsOptions{Tags: []*tfe.Tag{{ID: "tag-doesnotexist0000"}}}); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("add an unknown tag ID: got %v, want ErrResourceNotFound", err)
	}
}

func TestOrganizationsListAndUpdate(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	for i := range 3 {
		e.org(fmt.Sprintf("org-%d", i))
	}
	all, err := e.client.Organizations.List(e.ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 3 || all.Items[0].Name != "org-0" {
		t.Errorf("list: got %d organizations, want the 3 by name", len(all.Items))
	}
	// Without page parameters the whole list comes back without pagination
	// metadata; with them, paged.
	_, body := e.raw("GET", "/api/v2/organizations", adminToken, "")
	var doc struct {
		Meta map[string]any `json:"meta"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.Meta != nil {
		t.Errorf("unpaged list: meta %v, want none", doc.Meta)
	}
	paged, err := e.client.Organizations.List(e.ctx, &tfe.OrganizationListOptions{ListOptions: tfe.ListOptions{PageSize: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if len(paged.Items) != 2 || paged.Pagination == nil || paged.TotalCount != 3 || paged.NextPage != 2 {
		t.Errorf("paged list: got %d items, pagination %+v", len(paged.Items), paged.Pagination)
	}
	q, err := e.client.Organizations.List(e.ctx, &tfe.OrganizationListOptions{Query: "org-1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.Items) != 1 || q.Items[0].Name != "org-1" {
		t.Errorf("q=org-1: got %d organizations", len(q.Items))
	}

	updated, err := e.client.Organizations.Update(e.ctx, "org-1", tfe.OrganizationUpdateOptions{
		Name: tfe.String("renamed"), Email: tfe.String("new@acme.test"), CostEstimationEnabled: tfe.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if updated.Name != "renamed" || updated.Email != "new@acme.test" || !updated.CostEstimationEnabled {
		t.Errorf("update: got %+v", updated)
	}
	if _, err := e.client.Organizations.Read(e.ctx, "org-1"); !errors.Is(err, tfe.ErrResourceNotFound) {
		t.Errorf("the old name: got %v, want ErrResourceNotFound", err)
	}
	if _, err := e.client.Organizations.Update(e.ctx, "renamed", tfe.OrganizationUpdateOptions{Name: tfe.String("org-2")}); err == nil {
		t.Error("renaming onto a taken name succeeded")
	}
}
