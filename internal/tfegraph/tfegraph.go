// Package tfegraph reads the run-trigger graph from TFE through go-tfe.
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
	"fmt"
	"time"

	tfe "github.com/hashicorp/go-tfe"

	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// WorkspaceLister is the part of go-tfe's Workspaces this package uses.
type WorkspaceLister interface {
	List(ctx context.Context, organization string, options *tfe.WorkspaceListOptions) (*tfe.WorkspaceList, error)
}

// RunTriggerLister is the part of go-tfe's RunTriggers this package uses.
type RunTriggerLister interface {
	List(ctx context.Context, workspaceID string, options *tfe.RunTriggerListOptions) (*tfe.RunTriggerList, error)
}

// LoadOrganization reads every workspace of org and its inbound run
// triggers: one workspace list per page, then one run-trigger list per
// workspace per page.
func LoadOrganization(ctx context.Context, workspaces WorkspaceLister, triggers RunTriggerLister, org string) (*graph.Graph, error) {
	opts := &tfe.WorkspaceListOptions{}
	all, err := tfeclient.All(ctx, func(ctx context.Context, page tfe.ListOptions) ([]*tfe.Workspace, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := workspaces.List(ctx, org, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list workspaces of %s: %w", org, err)
		}
		return l.Items, l.Pagination, nil
	})
	if err != nil {
		return nil, err
	}
	ws := make([]graph.Workspace, 0, len(all))
	for _, w := range all {
		ws = append(ws, graph.Workspace{ID: w.ID, Name: w.Name, ExecutionMode: w.ExecutionMode})
	}
	var edges []graph.Edge
	for _, w := range ws {
		rts, err := listAll(ctx, triggers, w.ID, tfe.RunTriggerInbound)
		if err != nil {
			return nil, err
		}
		for _, rt := range rts {
			if src := sourceOf(rt); src != "" {
				edges = append(edges, graph.Edge{Source: src, Target: w.ID})
			}
		}
	}
	return graph.New(ws, edges)
}

func sourceOf(rt *tfe.RunTrigger) string {
	switch {
	case rt.SourceableChoice != nil && rt.SourceableChoice.Workspace != nil:
		return rt.SourceableChoice.Workspace.ID
	case rt.Sourceable != nil:
		return rt.Sourceable.ID
	}
	return ""
}

func listAll(ctx context.Context, triggers RunTriggerLister, wsID string, typ tfe.RunTriggerFilterOp) ([]*tfe.RunTrigger, error) {
	opts := &tfe.RunTriggerListOptions{RunTriggerType: typ}
	return tfeclient.All(ctx, func(ctx context.Context, page tfe.ListOptions) ([]*tfe.RunTrigger, *tfe.Pagination, error) {
		opts.ListOptions = page
		l, err := triggers.List(ctx, wsID, opts)
		if err != nil {
			return nil, nil, fmt.Errorf("list %s run triggers of %s: %w", typ, wsID, err)
		}
		return l.Items, l.Pagination, nil
	})
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
	triggers RunTriggerLister
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
func NewCache(triggers RunTriggerLister, ttl time.Duration, now func() time.Time) *Cache {
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
		rts, err := listAll(ctx, c.triggers, id, tfe.RunTriggerOutbound)
		if err != nil {
			return nil, err
		}
		targets := make([]graph.Workspace, 0, len(rts))
		for _, rt := range rts {
			if rt.Workspace != nil {
				targets = append(targets, graph.Workspace{ID: rt.Workspace.ID, Name: rt.WorkspaceName})
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
