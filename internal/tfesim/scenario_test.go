package tfesim_test

import (
	"strings"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
)

func TestExampleScenario(t *testing.T) {
	e := newEnv(t, tfesim.Options{})
	if err := e.sim.LoadScenarioFile("../../examples/scenario.yaml"); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.Workspaces.List(e.ctx, "acme", nil)
	if err != nil {
		t.Fatal(err)
	}
	if list.TotalCount != 5 {
		t.Errorf("got %d workspaces, want 5", list.TotalCount)
	}
	apps, err := e.client.Workspaces.Read(e.ctx, "acme", "apps")
	if err != nil {
		t.Fatal(err)
	}
	if apps.CurrentConfigurationVersion == nil {
		t.Error("a scenario workspace has no configuration version")
	}
	inbound, err := e.client.RunTriggers.List(e.ctx, apps.ID, &tfe.RunTriggerListOptions{RunTriggerType: tfe.RunTriggerInbound})
	if err != nil {
		t.Fatal(err)
	}
	if len(inbound.Items) != 2 {
		t.Errorf("apps: got %d sources, want 2", len(inbound.Items))
	}
	ncs, err := e.client.NotificationConfigurations.List(e.ctx, apps.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ncs.Items) != 1 || ncs.Items[0].URL != "http://127.0.0.1:8080/webhooks/tfe" {
		t.Errorf("apps: got %d notification configurations, want the orchestrator's", len(ncs.Items))
	}

	// The scenario's timing and behaviours hold: network queues 1s, plans
	// 0.5s, queues 1s, applies 1s.
	if got := e.sim.Timing(); got != (tfesim.Timing{Queue: time.Second, Plan: 4 * time.Second, Apply: 4 * time.Second}) {
		t.Errorf("timing: got %+v, want queue 1s, plan 4s, apply 4s", got)
	}
	network := e.sim.WorkspaceID("acme", "network")
	r := e.run(network, tfe.RunCreateOptions{})
	e.sim.Advance(3499 * time.Millisecond)
	e.wantStatus(r.ID, tfe.RunApplying)
	e.sim.Advance(time.Millisecond)
	e.wantStatus(r.ID, tfe.RunApplied)

	// Its run triggers: cluster (auto_apply_run_trigger) applies on its
	// own, dns has no changes, apps (neither setting) waits for a person.
	e.sim.Advance(time.Minute)
	for name, want := range map[string]tfe.RunStatus{"cluster": tfe.RunApplied, "dns": tfe.RunPlannedAndFinished, "apps": tfe.RunPlanned} {
		list, err := e.client.Runs.List(e.ctx, e.sim.WorkspaceID("acme", name), nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 1 || list.Items[0].Status != want {
			t.Errorf("%s: got %d runs, the newest %v; want one %s", name, len(list.Items), runID(first(list.Items)), want)
		}
	}
}

func first(rs []*tfe.Run) *tfe.Run {
	if len(rs) == 0 {
		return nil
	}
	return rs[0]
}

func TestScenarioErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "organizations:\n  - name: a\n    email: a@b.c\n    colour: red\n", "colour"},
		{"bad workspace name", "organizations:\n  - name: a\n    email: a@b.c\n    workspaces: [{name: 'no spaces'}]\n", "workspace"},
		{"unknown trigger end", "organizations:\n  - name: a\n    email: a@b.c\n    workspaces: [{name: x}]\n    run_triggers: [{source: x, target: y}]\n", "unknown workspace"},
		{"self trigger", "organizations:\n  - name: a\n    email: a@b.c\n    workspaces: [{name: x}]\n    run_triggers: [{source: x, target: x}]\n", "same"},
		{"bad outcome", "organizations:\n  - name: a\n    email: a@b.c\n    workspaces: [{name: x, behavior: {outcome: boom}}]\n", "outcome"},
		{"bad notification", "organizations:\n  - name: a\n    email: a@b.c\n    workspaces: [{name: x}]\n    notifications: [{name: n, url: 'ftp://x'}]\n", "url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tfesim.Options{})
			sc, err := tfesim.ParseScenario(strings.NewReader(tc.yaml))
			if err == nil {
				err = e.sim.LoadScenario(sc)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one mentioning %q", err, tc.want)
			}
			// Nothing was half-loaded.
			if _, err := e.client.Organizations.Read(e.ctx, "a"); err == nil {
				t.Error("the organization of a rejected scenario exists")
			}
		})
	}
}
