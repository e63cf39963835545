// Package tfegraph reads the run-trigger graph from TFE, through
// internal/tfeclient's interfaces.
//
// LoadOrganization reads a whole organization, for the graph command.
// Cache serves the daemon: it resolves a cascade by reading the outbound
// run triggers of the closure's members only, keeps them for a TTL, and
// costs no API call for a warm closure. What it guarantees:
//
//   - Cold, resolving a cascade costs one outbound run-trigger list per
//     closure member per page (100 triggers a page); warm, none.
//   - An entry older than the TTL, or invalidated, is read again on next use.
//   - With a Shared store (replicas of the daemon share one), what one
//     process read serves the others until the TTL: several replicas cost
//     about what one does. The store is an optimisation: whatever it
//     answers or fails to, a stale or missing entry is read from TFE.
//   - Safe for concurrent use; no lock is held during an API call.
package tfegraph

import (
	"context"
	"time"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// OrganizationReader is what LoadOrganization reads: workspaces and their
// run triggers (*tfeclient.TFE is one).
type OrganizationReader interface {
	tfeclient.WorkspaceLister
	tfeclient.RunTriggerLister
}

// LoadOrganization reads every workspace of org and its inbound run
// triggers: one workspace list per page, then one run-trigger list per
// workspace per page.
func LoadOrganization(ctx context.Context, r OrganizationReader, org string) (*graph.Graph, error) {
	var ws []graph.Workspace
	err := r.ListWorkspaces(ctx, org, tfeclient.WorkspaceQuery{}, func(page []tfeclient.Workspace) (bool, error) {
		for _, w := range page {
			ws = append(ws, graph.Workspace{ID: w.ID, Name: w.Name, ExecutionMode: w.ExecutionMode})
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	var edges []graph.Edge
	for _, w := range ws {
		rts, err := r.ListRunTriggers(ctx, w.ID, tfeclient.Inbound)
		if err != nil {
			return nil, err
		}
		for _, rt := range rts {
			if rt.SourceID != "" {
				edges = append(edges, graph.Edge{Source: rt.SourceID, Target: w.ID})
			}
		}
	}
	return graph.New(ws, edges)
}

// Shared keeps what a Cache read where other processes see it. Load
// reports an entry and when it was read from TFE; ok is false when there
// is none (or it cannot be read). Store is best effort.
type Shared interface {
	Load(ctx context.Context, workspaceID string) (targets []graph.Workspace, fetched time.Time, ok bool)
	Store(ctx context.Context, workspaceID string, targets []graph.Workspace, fetched time.Time)
}

// Cache resolves cascades from the outbound run triggers of the closure's
// members, read lazily and kept for a TTL.
type Cache struct {
	triggers tfeclient.RunTriggerLister
	now      func() time.Time
	shared   Shared // nil: this process only

	entries *tfeclient.Cache[string, []graph.Workspace] // workspace ID → its targets
}

// DefaultTTL is how long the daemon trusts a workspace's run triggers
// unless told otherwise (--graph-cache-ttl).
const DefaultTTL = 5 * time.Minute

// NewCache returns a cache whose entries live for ttl; a ttl of 0 (or
// less) trusts nothing: every use reads again. now is the clock; nil means
// time.Now.
func NewCache(triggers tfeclient.RunTriggerLister, ttl time.Duration, now func() time.Time) *Cache {
	if now == nil {
		now = time.Now
	}
	return &Cache{triggers: triggers, now: now, entries: tfeclient.NewCache[string, []graph.Workspace](ttl, now)}
}

// WithShared makes the cache share what it reads through s, and returns it.
func (c *Cache) WithShared(s Shared) *Cache {
	c.shared = s
	return c
}

// Invalidate drops what the cache knows of workspace id, so that its
// triggers are read again on next use.
func (c *Cache) Invalidate(id string) { c.entries.Invalidate(id) }

// InvalidateAll empties the cache.
func (c *Cache) InvalidateAll() { c.entries.InvalidateAll() }

// targets returns ws's downstream workspaces, from the cache if fresh.
// Readers of the same workspace at once share one read (a cascade's start
// and the read made while its root planned).
func (c *Cache) targets(ctx context.Context, id string) ([]graph.Workspace, error) {
	if targets, ok := c.entries.Get(id); ok {
		return targets, nil
	}
	var fromShared time.Time
	targets, err := c.entries.Load(ctx, id, func(ctx context.Context) ([]graph.Workspace, error) {
		if c.shared != nil {
			if targets, fetched, ok := c.shared.Load(ctx, id); ok && c.now().Sub(fetched) < c.entries.TTL() && !fetched.After(c.now().Add(time.Minute)) {
				fromShared = fetched
				return targets, nil
			}
		}
		rts, err := c.triggers.ListRunTriggers(ctx, id, tfeclient.Outbound)
		if err != nil {
			return nil, err
		}
		targets := make([]graph.Workspace, 0, len(rts))
		for _, rt := range rts {
			if rt.TargetID != "" {
				targets = append(targets, graph.Workspace{ID: rt.TargetID, Name: rt.TargetName})
			}
		}
		if c.shared != nil {
			c.shared.Store(ctx, id, targets, c.now())
		}
		return targets, nil
	})
	if err == nil && !fromShared.IsZero() {
		c.entries.PutAt(id, targets, fromShared) // trusted as long as the read it came from
	}
	return targets, err
}

// Closure reads the graph reachable from root (ID and name) and returns it.
func (c *Cache) Closure(ctx context.Context, root graph.Workspace) (*graph.Graph, error) {
	known := map[string]graph.Workspace{root.ID: root}
	queue := []string{root.ID}
	var edges []graph.Edge
	for len(queue) > 0 {
		id := queue[0]
		queue = queue[1:]
		targets, err := c.targets(ctx, id)
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			edges = append(edges, graph.Edge{Source: id, Target: t.ID})
			if _, seen := known[t.ID]; !seen {
				known[t.ID] = t
				queue = append(queue, t.ID)
			}
		}
	}
	ws := make([]graph.Workspace, 0, len(known))
	for _, w := range known {
		ws = append(ws, w)
	}
	return graph.New(ws, edges)
}

// Plan resolves the cascade that root starts.
func (c *Cache) Plan(ctx context.Context, root graph.Workspace) (*graph.Graph, *graph.Plan, error) {
	g, err := c.Closure(ctx, root)
	if err != nil {
		return nil, nil, err
	}
	p, err := g.Plan(root.ID)
	if err != nil {
		return nil, nil, err
	}
	return g, p, nil
}
