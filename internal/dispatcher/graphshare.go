package dispatcher

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// GraphShare keeps the run triggers one replica read from TFE in a KV
// bucket, where the other replicas find them (tfegraph.Shared): several
// replicas read an organization's graph about once between them. Entries
// live for the graph cache's TTL. What is read back is checked like any
// other wire: an entry that is not what this package writes is ignored,
// and the graph is read from TFE instead.
type GraphShare struct {
	kv  jetstream.KeyValue
	log *zap.Logger
}

// graphEntry is a workspace's outbound run triggers as a replica read
// them, and when.
type graphEntry struct {
	Fetched time.Time         `json:"fetched"`
	Targets []graph.Workspace `json:"targets"`
}

// NewGraphShare sets the bucket up (name, TTL and replicas as given).
func NewGraphShare(ctx context.Context, js jetstream.JetStream, name string, ttl time.Duration, replicas int, log *zap.Logger) (*GraphShare, error) {
	if log == nil {
		log = zap.NewNop()
	}
	kv, err := events.EnsureKeyValue(ctx, js, jetstream.KeyValueConfig{
		Bucket: name, Description: "run triggers read from TFE, shared by the orchestrator's replicas",
		TTL: ttl, History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	return &GraphShare{kv: kv, log: log}, nil
}

// Load returns what a replica read of workspace id's run triggers.
func (g *GraphShare) Load(ctx context.Context, id string) ([]graph.Workspace, time.Time, bool) {
	if !workspaceIDPattern.MatchString(id) {
		return nil, time.Time{}, false
	}
	e, err := g.kv.Get(ctx, id)
	if err != nil {
		return nil, time.Time{}, false
	}
	var ge graphEntry
	if json.Unmarshal(e.Value(), &ge) != nil || ge.Fetched.IsZero() || len(ge.Targets) > 10000 {
		g.log.Warn("a shared run-trigger entry cannot be used; reading it from tfe", zap.String("workspace_id", id))
		return nil, time.Time{}, false
	}
	for _, t := range ge.Targets {
		if !workspaceIDPattern.MatchString(t.ID) || len(t.Name) > 256 {
			g.log.Warn("a shared run-trigger entry cannot be used; reading it from tfe", zap.String("workspace_id", id))
			return nil, time.Time{}, false
		}
	}
	return ge.Targets, ge.Fetched, true
}

// Store keeps what this replica read, for the others. A failure costs the
// others a read from TFE, nothing more.
func (g *GraphShare) Store(ctx context.Context, id string, targets []graph.Workspace, fetched time.Time) {
	if !workspaceIDPattern.MatchString(id) {
		return
	}
	data, err := json.Marshal(graphEntry{Fetched: fetched.UTC(), Targets: targets})
	if err == nil {
		_, err = g.kv.Put(ctx, id, data)
	}
	if err != nil {
		g.log.Debug("run triggers not shared", zap.String("workspace_id", id), zap.Error(err))
	}
}
