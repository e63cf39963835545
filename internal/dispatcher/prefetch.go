package dispatcher

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient/runstatus"
)

// Reading a cascade's run triggers cold costs a call per member, and a
// cascade can hold its fan-ins only once it knows them. So a run that
// starts planning in a workspace no cascade holds has its run triggers'
// closure read while it plans (tens of seconds in TFE): should it apply,
// the cascade it starts finds them in the graph cache (--graph-cache-ttl)
// and takes its holds in its first look. The reads are a hint's: queued
// (up to maxPrefetchQueue, beyond which they are dropped) for
// prefetchWorkers, each waiting for its turn behind every other request in
// the rate budget; a failure is only logged.
const (
	prefetchWorkers  = 4
	maxPrefetchQueue = 1024
	prefetchTimeout  = time.Minute
)

// prefetch queues the read of the run triggers of the closure of the
// workspace a run starts planning in.
func (d *Dispatcher) prefetch(ev *events.RunEvent) {
	if ev.Status != runstatus.Planning {
		return
	}
	select {
	case d.prefetches <- graph.Workspace{ID: ev.WorkspaceID, Name: ev.WorkspaceName}:
	default: // full: a hint may be dropped
	}
}

// prefetcher reads the closures prefetch queued until ctx ends.
func (d *Dispatcher) prefetcher(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ws := <-d.prefetches:
			rctx, cancel := context.WithTimeout(ctx, prefetchTimeout)
			if _, _, err := d.deps.Planner.Plan(rctx, ws); err != nil && ctx.Err() == nil {
				d.log.Debug("read the run triggers of a workspace that plans", zap.String("workspace", ws.Name), zap.Error(err))
			}
			cancel()
		}
	}
}
