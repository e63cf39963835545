package tfegraph_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
	"github.com/tfe-orchestrator/orchestrator/internal/tfegraph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim"
	"github.com/tfe-orchestrator/orchestrator/internal/tfesim/simtest"
)

const outboundRoute = "GET /api/v2/workspaces/{id}/run-triggers"

// scenario: root fans out to 120 workspaces (two pages of outbound
// triggers), f000 → deep → deeper, a diamond a → {b, c} → d elsewhere, and
// 10 workspaces nobody triggers.
func newSim(t *testing.T) (*tfesim.Sim, *tfe.Client) {
	t.Helper()
	org := tfesim.OrganizationSpec{Name: "acme", Email: "ops@acme.test"}
	add := func(names ...string) {
		for _, n := range names {
			org.Workspaces = append(org.Workspaces, tfesim.WorkspaceSpec{Name: n})
		}
	}
	edge := func(s, d string) {
		org.RunTriggers = append(org.RunTriggers, tfesim.RunTriggerSpec{Source: s, Target: d})
	}
	add("root", "deep", "deeper", "a", "b", "c", "d")
	for i := range 120 {
		name := fmt.Sprintf("f%03d", i)
		add(name)
		edge("root", name)
	}
	for i := range 10 {
		add(fmt.Sprintf("idle%02d", i))
	}
	edge("f000", "deep")
	edge("deep", "deeper")
	edge("a", "b")
	edge("a", "c")
	edge("b", "d")
	edge("c", "d")
	srv := simtest.Start(t, tfesim.Options{})
	if err := srv.Sim.LoadScenario(&tfesim.Scenario{Organizations: []tfesim.OrganizationSpec{org}}); err != nil {
		t.Fatal(err)
	}
	return srv.Sim, srv.Client
}

func TestCacheAPICost(t *testing.T) {
	sim, client := newSim(t)
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	cache := tfegraph.NewCache(tfeclient.New(client), time.Minute, func() time.Time { return now })
	root := graph.Workspace{ID: sim.WorkspaceID("acme", "root"), Name: "root"}

	sim.ResetStats()
	g, p, err := cache.Plan(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	closure, _ := g.Closure(root.ID)
	if len(closure) != 123 {
		t.Fatalf("closure: got %d workspaces, want 123 (root, 120 targets, deep, deeper)", len(closure))
	}
	// One list per member, and a second page for root's 120 triggers.
	if got, want := sim.Stats().Requests[outboundRoute], len(closure)+1; got != want {
		t.Errorf("cold: got %d run-trigger lists, want %d", got, want)
	}
	if got := strings.Join([]string{g.Name(p.Layers[2][0]), g.Name(p.Layers[3][0])}, " "); got != "deep deeper" {
		t.Errorf("layers 2 and 3: got %s, want deep deeper", got)
	}

	sim.ResetStats()
	if _, _, err := cache.Plan(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().Requests[outboundRoute]; got != 0 {
		t.Errorf("warm: got %d run-trigger lists, want 0", got)
	}

	cache.Invalidate(sim.WorkspaceID("acme", "deep"))
	if _, _, err := cache.Plan(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().Requests[outboundRoute]; got != 1 {
		t.Errorf("after invalidating one workspace: got %d lists, want 1", got)
	}

	sim.ResetStats()
	now = now.Add(time.Minute)
	if _, _, err := cache.Plan(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, want := sim.Stats().Requests[outboundRoute], len(closure)+1; got != want {
		t.Errorf("after the TTL: got %d lists, want %d", got, want)
	}
}

func TestLoadOrganization(t *testing.T) {
	sim, client := newSim(t)
	sim.ResetStats()
	g, err := tfegraph.LoadOrganization(context.Background(), tfeclient.New(client), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(g.Workspaces()); n != 137 {
		t.Errorf("got %d workspaces, want 137", n)
	}
	if n := len(g.Edges()); n != 126 {
		t.Errorf("got %d edges, want 126", n)
	}
	d, _ := g.Lookup("d")
	if got := g.Sources(d.ID); len(got) != 2 || g.Name(got[0]) != "b" || g.Name(got[1]) != "c" {
		t.Errorf("sources of d: got %v, want b and c", got)
	}
	st := sim.Stats().Requests
	if st["GET /api/v2/organizations/{org}/workspaces"] != 2 || st[outboundRoute] != 137 {
		t.Errorf("API cost: %d workspace pages and %d trigger lists, want 2 and 137", st["GET /api/v2/organizations/{org}/workspaces"], st[outboundRoute])
	}
}

// sharedMap is a Shared store in memory: what the replicas' KV bucket is.
type sharedMap struct {
	mu sync.Mutex
	m  map[string]sharedEntry
}

type sharedEntry struct {
	targets []graph.Workspace
	fetched time.Time
}

func (s *sharedMap) Load(_ context.Context, id string) ([]graph.Workspace, time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.m[id]
	return e.targets, e.fetched, ok
}

func (s *sharedMap) Store(_ context.Context, id string, targets []graph.Workspace, fetched time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[id] = sharedEntry{targets, fetched}
}

// Three replicas' caches share what they read: the first reads the graph
// from TFE, the others none of it, until the entries are older than the TTL.
func TestSharedCacheServesOtherReplicas(t *testing.T) {
	sim, client := newSim(t)
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	shared := &sharedMap{m: map[string]sharedEntry{}}
	root := graph.Workspace{ID: sim.WorkspaceID("acme", "root"), Name: "root"}
	sim.ResetStats()
	first, err := tfegraph.NewCache(tfeclient.New(client), time.Minute, clock).WithShared(shared).Closure(ctx, root)
	if err != nil {
		t.Fatal(err)
	}
	cold := sim.Stats().Requests[outboundRoute]
	if cold == 0 {
		t.Fatal("the first replica read nothing from TFE")
	}
	for range 2 {
		g, err := tfegraph.NewCache(tfeclient.New(client), time.Minute, clock).WithShared(shared).Closure(ctx, root)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := first.Workspaces(), g.Workspaces(); len(a) != len(b) {
			t.Errorf("another replica's closure: got %d workspaces, want %d", len(b), len(a))
		}
	}
	if got := sim.Stats().Requests[outboundRoute]; got != cold {
		t.Errorf("three replicas: got %d run-trigger lists, want %d (the first's only)", got, cold)
	}
	now = now.Add(time.Minute)
	if _, err := tfegraph.NewCache(tfeclient.New(client), time.Minute, clock).WithShared(shared).Closure(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got := sim.Stats().Requests[outboundRoute]; got != 2*cold {
		t.Errorf("after the TTL: got %d lists in all, want %d", got, 2*cold)
	}
}
