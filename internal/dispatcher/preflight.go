package dispatcher

import (
	"context"
	"fmt"
	"sync"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
)

// preflight checks a target before its run is created (C8). A target a
// user or team locked waits and is retried; one a run holds is not waited
// for, since TFE queues the new run behind that one. One that cannot run
// remotely, or whose Terraform version is disabled, is blocked with the
// reason. done reports that the dispatch ends here; followUp are then the
// members to evaluate.
func (d *Dispatcher) preflight(ctx context.Context, c *Cascade, wsID string, log *zap.Logger) (followUp []string, done bool, err error) {
	info, err := d.ws.get(ctx, wsID, false)
	if err == nil && info.manuallyLocked {
		info, err = d.ws.get(ctx, wsID, true) // the lock may be gone: look again
	}
	if err != nil {
		if httpStatus(err) == 404 {
			followUp, err = d.conclude(ctx, c, wsID, Blocked, "the workspace does not exist")
			return followUp, true, err
		}
		return nil, true, d.retryLater(ctx, c, wsID, fmt.Errorf("read workspace: %w", err))
	}
	block := func(reason string) ([]string, bool, error) {
		followUp, err := d.conclude(ctx, c, wsID, Blocked, reason)
		return followUp, true, err
	}
	switch {
	case info.executionMode == "local":
		return block("the workspace uses local execution and cannot run remotely")
	case !info.hasConfiguration:
		return block("the workspace has no configuration version to run")
	case info.tool.known && !info.tool.enabled:
		return block("Terraform " + info.terraformVersion + " is disabled on this installation")
	case info.manuallyLocked:
		return nil, true, d.locked(ctx, c, wsID, log)
	}
	if info.tool.deprecated {
		sp := c.Members[wsID]
		d.deps.Alerts.Raise(ctx, alerts.Alert{
			Kind: alerts.KindDeprecated, Severity: alerts.SeverityWarning, Organization: c.Organization,
			Workspace: sp.Name, WorkspaceID: wsID, CascadeID: c.ID,
			Message: fmt.Sprintf("cascade %s: %s uses Terraform %s, which is deprecated; dispatched anyway", c.ID, sp.Name, info.terraformVersion),
			Key:     "deprecated/" + wsID + "/" + info.terraformVersion,
		})
	}
	return nil, false, nil
}

// locked puts a locked target back to waiting, to be checked again after
// LockedRetry, and alerts once it has been locked LockedAlertAfter.
func (d *Dispatcher) locked(ctx context.Context, c *Cascade, wsID string, log *zap.Logger) error {
	now := d.opts.Now()
	alert := false
	_, after, err := d.store.mutate(ctx, c, wsID, func(st *Status) bool {
		if st.State != Dispatching {
			return false
		}
		if st.LockedSince.IsZero() {
			st.LockedSince = now
		}
		st.State, st.RetryAt, st.Reason = Waiting, now.Add(d.opts.LockedRetry), "workspace locked"
		alert = !st.LockAlerted && now.Sub(st.LockedSince) >= d.opts.LockedAlertAfter
		st.LockAlerted = st.LockAlerted || alert
		return true
	})
	if err != nil {
		return err
	}
	log.Info("target locked: waiting", zap.Duration("locked_for", now.Sub(after.LockedSince)))
	if alert {
		sp := c.Members[wsID]
		d.deps.Alerts.Raise(ctx, alerts.Alert{
			Kind: alerts.KindWorkspaceLocked, Severity: alerts.SeverityWarning, Organization: c.Organization,
			Workspace: sp.Name, WorkspaceID: wsID, CascadeID: c.ID,
			Message: fmt.Sprintf("cascade %s: %s has been locked for %s; its run waits until it is unlocked",
				c.ID, sp.Name, now.Sub(after.LockedSince).Round(time.Second)),
			Key: "locked/" + c.ID + "/" + wsID,
		})
	}
	return nil
}

type toolInfo struct {
	known, enabled, deprecated bool
}

type workspaceInfo struct {
	// manuallyLocked: a user or team locked the workspace. A run holding
	// it, as every active run does, does not count.
	manuallyLocked   bool
	executionMode    string
	hasConfiguration bool
	terraformVersion string
	tool             toolInfo
	fetched          time.Time
}

// workspaceCache keeps what preflight needs of each workspace for a TTL, so
// that a warm cascade costs one API call per run: its creation.
type workspaceCache struct {
	ws    Workspaces
	tools ToolVersions
	ttl   time.Duration
	now   func() time.Time

	mu      sync.Mutex
	entries map[string]workspaceInfo
	toolMap map[string]toolInfo
	toolsAt time.Time
}

func newWorkspaceCache(ws Workspaces, tools ToolVersions, ttl time.Duration, now func() time.Time) *workspaceCache {
	return &workspaceCache{ws: ws, tools: tools, ttl: ttl, now: now, entries: map[string]workspaceInfo{}}
}

func (c *workspaceCache) get(ctx context.Context, id string, fresh bool) (workspaceInfo, error) {
	c.mu.Lock()
	e, ok := c.entries[id]
	c.mu.Unlock()
	if ok && !fresh && c.now().Sub(e.fetched) < c.ttl {
		return e, nil
	}
	w, err := c.ws.ReadByID(ctx, id)
	if err != nil {
		return workspaceInfo{}, err
	}
	info := workspaceInfo{
		manuallyLocked:   w.Locked && (w.LockedBy == nil || w.LockedBy.Run == nil),
		executionMode:    w.ExecutionMode,
		hasConfiguration: w.CurrentConfigurationVersion != nil && w.CurrentConfigurationVersion.ID != "",
		terraformVersion: w.TerraformVersion,
		fetched:          c.now(),
	}
	info.tool = c.tool(ctx, w.TerraformVersion)
	c.mu.Lock()
	c.entries[id] = info
	c.mu.Unlock()
	return info, nil
}

// tool looks a Terraform version up in the admin list, read once per TTL.
// Without an admin API (nil, or refused) the check is skipped.
func (c *workspaceCache) tool(ctx context.Context, version string) toolInfo {
	if c.tools == nil || version == "" {
		return toolInfo{}
	}
	c.mu.Lock()
	stale := c.toolMap == nil || c.now().Sub(c.toolsAt) >= c.ttl
	c.mu.Unlock()
	if stale {
		m := map[string]toolInfo{}
		opts := &tfe.AdminTerraformVersionsListOptions{ListOptions: tfe.ListOptions{PageSize: 100}}
		for {
			page, err := c.tools.List(ctx, opts)
			if err != nil {
				return toolInfo{}
			}
			for _, tv := range page.Items {
				m[tv.Version] = toolInfo{known: true, enabled: tv.Enabled, deprecated: tv.Deprecated}
			}
			if page.Pagination == nil || page.NextPage == 0 {
				break
			}
			opts.PageNumber = page.NextPage
		}
		c.mu.Lock()
		c.toolMap, c.toolsAt = m, c.now()
		c.mu.Unlock()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.toolMap[version]
}
