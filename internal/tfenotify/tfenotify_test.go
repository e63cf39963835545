package tfenotify_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfenotify"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

// Install reaches every workspace of an organization longer than a page
// of TFE's list, and a second install changes nothing; a configuration of
// the same name with another URL is updated.
func TestInstallCoversEveryPageAndIsIdempotent(t *testing.T) {
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	t.Cleanup(receiver.Close)

	srv := simtest.Start(t, tfesim.Options{})
	const n = 105
	org := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test", Notifications: []tfesim.ScenarioNotification{{
		NotificationSpec: tfesim.NotificationSpec{Name: tfenotify.DefaultName, URL: receiver.URL + "/old", Token: "t"},
		Workspaces:       []string{"ws-007"},
	}}}
	for i := range n {
		org.Workspaces = append(org.Workspaces, tfesim.WorkspaceSpec{Name: fmt.Sprintf("ws-%03d", i)})
	}
	if err := srv.Sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{org}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := tfenotify.Options{Organization: "acme", URL: receiver.URL + "/hook", Token: "secret"}

	results, err := tfenotify.Install(ctx, tfeclient.New(srv.Client), opts)
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

	results, err = tfenotify.Install(ctx, tfeclient.New(srv.Client), opts)
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
