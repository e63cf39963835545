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

// preflight checks a target before its run is created (C8). A locked
// target waits and is retried (retry); one that cannot run remotely, or
// whose Terraform version is disabled, is blocked with the reason.
func (d *Dispatcher) preflight(ctx context.Context, c *Cascade, wsID string, log *zap.Logger) (blocked, retry bool, err error) {
	info, err := d.ws.get(ctx, wsID, false)
	if err == nil && info.locked {
		info, err = d.ws.get(ctx, wsID, true) // the lock may be gone: look again
	}
	if err != nil {
		if httpStatus(err) == 404 {
			return true, false, d.block(ctx, c, wsID, "the workspace does not exist")
		}
		return false, true, d.retryLater(ctx, c.ID, wsID, fmt.Errorf("read workspace: %w", err))
	}
	switch {
	case info.executionMode == "local":
		return true, false, d.block(ctx, c, wsID, "the workspace uses local execution and cannot run remotely")
	case !info.hasConfiguration:
		return true, false, d.block(ctx, c, wsID, "the workspace has no configuration version to run")
	case info.tool.known && !info.tool.enabled:
		return true, false, d.block(ctx, c, wsID, "Terraform "+info.terraformVersion+" is disabled on this installation")
	case info.locked:
		return false, true, d.locked(ctx, c, wsID, log)
	}
	if info.tool.deprecated {
		m := c.Members[wsID]
		d.deps.Alerts.Raise(ctx, alerts.Alert{
			Kind: alerts.KindDeprecated, Severity: alerts.SeverityWarning, Organization: c.Organization,
			Workspace: m.Name, WorkspaceID: wsID, CascadeID: c.ID,
			Message: fmt.Sprintf("cascade %s: %s uses Terraform %s, which is deprecated; dispatched anyway", c.ID, m.Name, info.terraformVersion),
			Key:     "deprecated/" + wsID + "/" + info.terraformVersion,
		})
	}
	return false, false, nil
}

func (d *Dispatcher) block(ctx context.Context, c *Cascade, wsID, reason string) error {
	if err := d.settle(ctx, c.ID, wsID, func(m *Member, now time.Time) {
		m.State, m.Reason, m.FinishedAt = Blocked, reason, now
	}); err != nil {
		return err
	}
	d.alertBlocked(ctx, withReason(c, wsID, reason), []string{wsID})
	return nil
}

func withReason(c *Cascade, wsID, reason string) *Cascade {
	m := *c.Members[wsID]
	m.Reason = reason
	cp := *c
	cp.Members = map[string]*Member{wsID: &m}
	return &cp
}

// locked puts a locked target back to waiting, to be checked again after
// LockedRetry, and alerts once it has been locked LockedAlertAfter.
func (d *Dispatcher) locked(ctx context.Context, c *Cascade, wsID string, log *zap.Logger) error {
	now := d.opts.Now()
	var since time.Time
	alert := false
	err := d.settle(ctx, c.ID, wsID, func(m *Member, now time.Time) {
		if m.LockedSince.IsZero() {
			m.LockedSince = now
		}
		m.State, m.RetryAt, m.Reason = Waiting, now.Add(d.opts.LockedRetry), "workspace locked"
		since = m.LockedSince
		if !m.LockAlerted && now.Sub(m.LockedSince) >= d.opts.LockedAlertAfter {
			m.LockAlerted, alert = true, true
		}
	})
	if err != nil {
		return err
	}
	log.Info("target locked: waiting", zap.Duration("locked_for", now.Sub(since)))
	if alert {
		m := c.Members[wsID]
		d.deps.Alerts.Raise(ctx, alerts.Alert{
			Kind: alerts.KindWorkspaceLocked, Severity: alerts.SeverityWarning, Organization: c.Organization,
			Workspace: m.Name, WorkspaceID: wsID, CascadeID: c.ID,
			Message: fmt.Sprintf("cascade %s: %s has been locked for %s; its run waits until it is unlocked",
				c.ID, m.Name, now.Sub(since).Round(time.Second)),
			Key: "locked/" + c.ID + "/" + wsID,
		})
	}
	return nil
}

type toolInfo struct {
	known, enabled, deprecated bool
}

type workspaceInfo struct {
	locked           bool
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
		locked:           w.Locked,
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
