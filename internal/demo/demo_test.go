package demo_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/demo"
)

// The shipped demo scenario runs to the end and its expectations hold.
func TestShippedScenario(t *testing.T) {
	sc, err := demo.LoadScenario("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	picture := filepath.Join(t.TempDir(), "cascade.mmd")
	var out bytes.Buffer
	rep, err := demo.Run(context.Background(), demo.Options{Scenario: sc, Out: &out, Picture: picture})
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	if len(rep.Failures) > 0 {
		t.Fatalf("expectations failed: %v\n%s", rep.Failures, out.String())
	}
	for _, want := range []string{"WORKSPACE", "WAITED FOR", "cluster, dns", "on run-trigger cycle app → db → app", "alerts", "done: incomplete",
		"waits for a person to confirm it", "a person reviewed run", "approved by a person", "taken as its run"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	pic, err := os.ReadFile(picture)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pic), "flowchart LR") || !strings.Contains(string(pic), `["apps<br/>applied"]:::applied`) {
		t.Errorf("picture:\n%s", pic)
	}
}

// A scenario whose expectations do not hold is reported as such.
func TestFailedExpectations(t *testing.T) {
	sc, err := demo.LoadScenario("../../examples/demo.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Expect.Applied = append(sc.Expect.Applied, "payments")
	sc.Expect.Alerts = append(sc.Expect.Alerts, "dispatch_failed")
	var out bytes.Buffer
	rep, err := demo.Run(context.Background(), demo.Options{Scenario: sc, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) != 2 {
		t.Errorf("got failures %v, want payments not applied and no dispatch_failed alert", rep.Failures)
	}
}

func TestBadScenario(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown field": "organization: a\nroot: x\ncolour: red\n",
		"no root":       "organization: a\n",
		"bad budget":    "organization: a\nroot: x\nwatchdog_budgets: [\"lunch=1h\"]\n",
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yaml")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := demo.LoadScenario(path); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
