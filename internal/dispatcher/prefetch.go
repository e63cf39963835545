package dispatcher

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// Reading a cascade's run triggers cold costs a call per member, and a
// cascade can hold its fan-ins only once it knows them. So a run that
// starts planning in a workspace no cascade holds has its run triggers'
// closure read while it plans (tens of seconds in TFE): should it apply,
// the cascade it starts finds them in the graph cache (--graph-cache-ttl)
// and takes its holds in its first look. The read is a hint's: it is
// skipped when prefetchers are busy, waits for its turn behind every
// other request in the rate budget, and its failure is only logged.
const (
	maxPrefetches   = 4
	prefetchTimeout = time.Minute
)

// prefetch reads, in the background, the run triggers of the closure of
// the workspace a run starts planning in.
func (d *Dispatcher) prefetch(ctx context.Context, ev *events.RunEvent) {
	if ev.Status != "planning" {
		return
	}
	select {
	case d.prefetching <- struct{}{}:
	default:
		return // busy: a hint may be dropped
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), prefetchTimeout)
	go func() {
		defer func() { <-d.prefetching }()
		defer cancel()
		if _, _, err := d.deps.Planner.Plan(ctx, graph.Workspace{ID: ev.WorkspaceID, Name: ev.WorkspaceName}); err != nil {
			d.log.Debug("read the run triggers of a workspace that plans", zap.String("workspace", ev.WorkspaceName), zap.Error(err))
		}
	}()
}
