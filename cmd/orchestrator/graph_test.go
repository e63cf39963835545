package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

// simFromScenario serves a simulator (token "sim-token") with the
// scenario at path loaded.
func simFromScenario(t *testing.T, path string) *simtest.Server {
	t.Helper()
	srv := simtest.Start(t, tfesim.Options{})
	if err := srv.Sim.LoadScenarioFile(path); err != nil {
		t.Fatal(err)
	}
	return srv
}

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr syncBuffer
	code := run(context.Background(), args, func(k string) string { return env[k] }, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestGraphFromTFEAndFromItsJSON(t *testing.T) {
	srv := simFromScenario(t, "testdata/graph-scenario.yaml")
	env := map[string]string{"TFE_ADDRESS": srv.URL, "TFE_TOKEN": "sim-token"}

	code, fromTFE, _ := runCmd(t, env, "graph", "--organization", "acme")
	if code != exitFindings {
		t.Errorf("exit code with a cycle: got %d, want 3", code)
	}
	for _, want := range []string{"7 workspaces, 8 run triggers", "network → cluster, dns, laptop", "cycle: app → db → app",
		"local_target: network → laptop"} {
		if !strings.Contains(fromTFE, want) {
			t.Errorf("text output does not contain %q:\n%s", want, fromTFE)
		}
	}

	code, jsonOut, _ := runCmd(t, env, "graph", "--organization", "acme", "--format", "json")
	// Read as CI reads it, by its keys: the cycle's workspaces and each
	// finding's as lists, not only inside a sentence.
	var doc struct {
		Findings []struct {
			Kind       string   `json:"kind"`
			Message    string   `json:"message"`
			Workspaces []string `json:"workspaces"`
		} `json:"findings"`
		Cycles []struct {
			Workspaces []string `json:"workspaces"`
			IDs        []string `json:"ids"`
			Members    []string `json:"members"`
		} `json:"cycles"`
	}
	if err := json.Unmarshal([]byte(jsonOut), &doc); err != nil {
		t.Fatal(err)
	}
	finding := func(kind, message string, workspaces ...string) bool {
		for _, f := range doc.Findings {
			if f.Kind == kind && f.Message == message && slices.Equal(f.Workspaces, workspaces) {
				return true
			}
		}
		return false
	}
	if code != exitFindings || !finding(graph.FindingCycle, "app → db → app", "app", "db", "app") ||
		!finding(graph.FindingLocalTarget, "network → laptop: laptop uses local execution and cannot run remotely", "network", "laptop") {
		t.Errorf("the JSON format's findings (exit %d): %+v; want the cycle and the local target with their workspaces, exit 3", code, doc.Findings)
	}
	if len(doc.Cycles) != 1 || !slices.Equal(doc.Cycles[0].Workspaces, []string{"app", "db", "app"}) || len(doc.Cycles[0].IDs) != 3 ||
		doc.Cycles[0].IDs[0] != doc.Cycles[0].IDs[2] || !strings.HasPrefix(doc.Cycles[0].IDs[0], "ws-") ||
		!slices.Equal(slices.Sorted(slices.Values(doc.Cycles[0].Members)), []string{"app", "db"}) {
		t.Errorf("the JSON format's cycles: %+v; want one, app → db → app, by name and ID", doc.Cycles)
	}
	file := filepath.Join(t.TempDir(), "graph.json")
	if err := os.WriteFile(file, []byte(jsonOut), 0o600); err != nil {
		t.Fatal(err)
	}
	code, fromFile, _ := runCmd(t, nil, "graph", "--input", file)
	if code != exitFindings || fromFile != fromTFE {
		t.Errorf("--input of its own JSON: exit %d, output\n%s\nwant exit 3 and\n%s", code, fromFile, fromTFE)
	}
	_, jsonAgain, _ := runCmd(t, nil, "graph", "--input", file, "--format", "json")
	if jsonAgain != jsonOut {
		t.Error("--input of its own JSON writes different JSON")
	}

	code, plan, _ := runCmd(t, env, "graph", "--organization", "acme", "--root", "network")
	for _, want := range []string{"cascade from network", "layer 1:\n    cluster  after network\n    dns  after network\n    laptop  after network",
		"layer 2:\n    apps  after cluster, dns", "blocked:\n    app  on cycle app → db → app\n    db  on cycle app → db → app"} {
		if !strings.Contains(plan, want) {
			t.Errorf("cascade output does not contain %q:\n%s", want, plan)
		}
	}
	if code != exitFindings {
		t.Errorf("--root with a cycle in the graph: exit %d, want 3", code)
	}
}

// The DOT output renders with Graphviz. CI installs Graphviz and sets
// REQUIRE_GRAPHVIZ=1; elsewhere the test is skipped without it.
func TestGraphDOTRenders(t *testing.T) {
	dot, err := exec.LookPath("dot")
	if err != nil {
		if os.Getenv("REQUIRE_GRAPHVIZ") != "" {
			t.Fatal("Graphviz's dot is required but not installed")
		}
		t.Skip("Graphviz's dot is not installed")
	}
	srv := simFromScenario(t, "testdata/graph-scenario.yaml")
	_, out, _ := runCmd(t, map[string]string{"TFE_ADDRESS": srv.URL, "TFE_TOKEN": "sim-token"}, "graph", "--organization", "acme", "--format", "dot")
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(out)
	svg, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dot failed: %v\n%s\ninput:\n%s", err, svg, out)
	}
	if !strings.Contains(string(svg), "<svg") || !strings.Contains(string(svg), "network") {
		t.Errorf("dot did not render the graph:\n%s", svg)
	}
}

func TestGraphUsage(t *testing.T) {
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.json")
	if err := os.WriteFile(clean, []byte(`{"workspaces":[{"id":"ws-a","name":"a"},{"id":"ws-b","name":"b"}],"edges":[{"source":"ws-a","target":"ws-b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"workspaces":[{"id":"ws-a","name":"a"},{"id":"ws-a","name":"b"}],"edges":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want int
		out  string
	}{
		{"clean graph", []string{"graph", "--input", clean}, exitOK, "a → b"},
		{"mermaid", []string{"graph", "--input", clean, "--format", "mermaid"}, exitOK, "flowchart LR"},
		{"cascade as JSON", []string{"graph", "--input", clean, "--root", "a", "--format", "json"}, exitOK, `"layers"`},
		{"neither source", []string{"graph"}, exitUsage, "exactly one"},
		{"both sources", []string{"graph", "--input", clean, "--organization", "acme"}, exitUsage, "exactly one"},
		{"bad format", []string{"graph", "--input", clean, "--format", "png"}, exitUsage, "--format"},
		{"root with dot", []string{"graph", "--input", clean, "--root", "a", "--format", "dot"}, exitUsage, "--root"},
		{"unknown root", []string{"graph", "--input", clean, "--root", "zzz"}, exitUsage, "not a workspace"},
		{"no token", []string{"graph", "--organization", "acme"}, exitUsage, "--tfe-token"},
		{"missing file", []string{"graph", "--input", filepath.Join(dir, "nope.json")}, exitError, "no such file"},
		{"duplicate IDs", []string{"graph", "--input", bad}, exitError, "appears twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, nil, tc.args...)
			if code != tc.want {
				t.Errorf("exit: got %d, want %d\n%s%s", code, tc.want, stdout, stderr)
			}
			if !strings.Contains(stdout+stderr, tc.out) {
				t.Errorf("output does not mention %q:\n%s%s", tc.out, stdout, stderr)
			}
		})
	}
}
