package tfenotify_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfenotify"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

// Install reaches every workspace of an organization longer than a page
// of TFE's list, and a second install changes nothing; a configuration of
// the same name with another URL is updated.
func TestInstallCoversEveryPageAndIsIdempotent(t *testing.T) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(receiver.Close)

	sim, err := tfesim.New(tfesim.Options{Token: "sim-token", RateLimit: -1, Timing: &tfesim.Timing{}})
	if err != nil {
		t.Fatal(err)
	}
	const n = 105
	org := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Notifications: []tfesim.ScenarioNotification{{
		NotificationSpec: tfesim.NotificationSpec{Name: tfenotify.DefaultName, URL: receiver.URL + "/old", Token: "t"},
		Workspaces:       []string{"ws-007"},
	}}}
	for i := range n {
		org.Workspaces = append(org.Workspaces, tfesim.WorkspaceSpec{Name: fmt.Sprintf("ws-%03d", i)})
	}
	if err := sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{org}}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	client, err := tfe.NewClient(&tfe.Config{Address: srv.URL, Token: "sim-token", HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := tfenotify.Options{Organization: "acme", URL: receiver.URL + "/hook", Token: "secret"}

	results, err := tfenotify.Install(ctx, tfeclient.New(client), opts)
	if err != nil {
		t.Fatal(err)
	}
	actions := count(results)
	if len(results) != n || actions["created"] != n-1 || actions["updated"] != 1 {
		t.Fatalf("first install: %d results %v, want %d: %d created, 1 updated", len(results), actions, n, n-1)
	}
	seen := map[string]bool{}
	for _, r := range results {
		seen[r.Workspace] = true
	}
	if len(seen) != n {
		t.Errorf("first install reached %d distinct workspaces, want %d", len(seen), n)
	}

	results, err = tfenotify.Install(ctx, tfeclient.New(client), opts)
	if err != nil {
		t.Fatal(err)
	}
	if actions := count(results); len(results) != n || actions["unchanged"] != n {
		t.Fatalf("second install: %d results %v, want %d unchanged", len(results), actions, n)
	}
}

func count(results []tfenotify.Result) map[string]int {
	m := map[string]int{}
	for _, r := range results {
		m[r.Action]++
	}
	return m
}
