package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/lease"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// Holds (C13, decided in internal/cascade/hold.go) are TFE workspace locks
// taken as the engine's user. The core recognises its locks by that user's
// ID, read once from TFE; until it is known, no hold is taken.

// selfCache keeps the ID of the TFE user the engine acts as.
type selfCache struct {
	mu       sync.Mutex
	id       string
	disabled bool // TFE will not say (a token that cannot read its account)
}

// get returns the engine's user ID. A transient failure (rate limit, a
// server error, a timeout) fails the look, which is tried again: a look
// made without it would take no hold. A token TFE refuses account details
// to turns holds off, with a warning.
func (c *selfCache) get(ctx context.Context, users Users, log *zap.Logger) (string, error) {
	if users == nil {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.id != "" || c.disabled {
		return c.id, nil
	}
	rctx, status := tfeclient.Record(ctx)
	u, err := users.CurrentUser(rctx)
	switch class := tfeclient.Classify(err, status); {
	case err == nil && u.ID != "":
		c.id = u.ID
		return c.id, nil
	case err == nil, class == tfeclient.Gone, class == tfeclient.Refused:
		c.disabled = true
		log.Warn("tfe does not say which user the engine's token is: members are not held (C13)", zap.Error(err))
		return "", nil
	default:
		return "", fmt.Errorf("read the engine's tfe user: %w", err)
	}
}

// hold locks a member's workspace for its cascade and stores that it did.
// Any failure leaves the hold being taken: the next look reads the
// workspace and decides.
func (d *Dispatcher) hold(ctx context.Context, l *lease.Lease, p *cascade.Plan, a cascade.Action, st []cascade.Status, revs []uint64, mu *sync.Mutex) error {
	i := p.Index(a.Member)
	wctx, cancel, err := d.writeContext(ctx, l, 30*time.Second)
	if err != nil {
		return err
	}
	defer cancel()
	rctx, status := tfeclient.Record(wctx)
	err = d.deps.Workspaces.LockWorkspace(rctx, a.Member, a.Message)
	switch {
	case err == nil:
		d.metrics.holds.WithLabelValues("taken").Inc()
		d.log.Info("cascade member held", zap.String("cascade_id", p.ID), zap.String("workspace", p.Name(a.Member)),
			zap.String("workspace_id", a.Member))
		return d.storeAfter(ctx, l, p, i, cascade.AfterHold(st, i, true), st, revs, mu)
	case tfeclient.Classify(err, status) == tfeclient.Unauthorized:
		return errors.Join(errUnauthorized, err)
	default:
		// Locked by a run or a person (409), or the answer was lost.
		d.log.Debug("holding a member did not work now; the next look sees why", zap.String("cascade_id", p.ID),
			zap.String("workspace", p.Name(a.Member)), zap.Error(err))
		return d.store.markDirty(ctx, p.ID, a.Member, d.opts.Now().Add(d.opts.Policy.Soon), false)
	}
}

// release unlocks a member's workspace its cascade held. TFE's answer that
// the workspace is not locked by the engine (unlocked already, or held by
// a run or someone else) means the cascade's lock is gone too.
func (d *Dispatcher) release(ctx context.Context, l *lease.Lease, p *cascade.Plan, a cascade.Action, st []cascade.Status, revs []uint64, mu *sync.Mutex) error {
	i := p.Index(a.Member)
	wctx, cancel, err := d.writeContext(ctx, l, 30*time.Second)
	if err != nil {
		return err
	}
	defer cancel()
	rctx, status := tfeclient.Record(wctx)
	err = d.deps.Workspaces.UnlockWorkspace(rctx, a.Member)
	gone := err == nil || errors.Is(err, tfeclient.ErrWorkspaceNotLocked) || errors.Is(err, tfeclient.ErrWorkspaceLockedByRun) ||
		errors.Is(err, tfeclient.ErrWorkspaceLockedByUser) || errors.Is(err, tfeclient.ErrWorkspaceLockedByTeam) ||
		tfeclient.Classify(err, status) == tfeclient.Gone
	switch {
	case gone:
		d.metrics.holds.WithLabelValues("released").Inc()
		d.log.Info("cascade member released", zap.String("cascade_id", p.ID), zap.String("workspace", p.Name(a.Member)),
			zap.String("workspace_id", a.Member))
		return d.storeAfter(ctx, l, p, i, cascade.AfterRelease(st, i, true), st, revs, mu)
	case tfeclient.Classify(err, status) == tfeclient.Unauthorized:
		return errors.Join(errUnauthorized, err)
	default:
		d.log.Info("releasing a member did not work now; looking again soon", zap.String("cascade_id", p.ID),
			zap.String("workspace", p.Name(a.Member)), zap.Error(err))
		return d.store.markDirty(ctx, p.ID, a.Member, d.opts.Now().Add(d.opts.Policy.Soon), false)
	}
}

// storeAfter stores a member's status after an action, under the lease.
func (d *Dispatcher) storeAfter(ctx context.Context, l *lease.Lease, p *cascade.Plan, i int, s cascade.Status, st []cascade.Status, revs []uint64, mu *sync.Mutex) error {
	mu.Lock()
	defer mu.Unlock()
	if _, err := l.Deadline(0); err != nil {
		return err
	}
	rev, err := d.store.putMember(ctx, p.ID, p.Members[i].WorkspaceID, s, revs[i])
	if err != nil {
		if isConflict(err) {
			return errors.Join(lease.ErrLost, err)
		}
		return err
	}
	st[i], revs[i] = s, rev
	return nil
}

// releaseAll unlocks, without the members' records, every workspace of
// cascade p that it may hold: TFE shows it locked by the engine's user and
// no other open cascade holds it.
func (d *Dispatcher) releaseAll(ctx context.Context, l *lease.Lease, p *cascade.Plan) error {
	self, err := d.self.get(ctx, d.deps.Users, d.log)
	if err != nil {
		return err
	}
	if self == "" || d.opts.DryRun {
		return nil
	}
	// The core decides (cascade.ReleaseSetAside); this reads what it asks
	// for, the claims first, TFE last.
	for i, m := range p.Members {
		if _, read := cascade.ReleaseSetAside(p, i, nil, nil, self); !read {
			continue // never held
		}
		owners, _, err := d.store.owners(ctx, m.WorkspaceID, 0)
		if err != nil {
			return err
		}
		var others []cascade.Claim
		for _, id := range owners {
			if id == p.ID {
				continue
			}
			om, _, err := d.store.meta(ctx, id)
			others = append(others, cascade.Claim{ID: id, Open: err == nil && om.open()})
		}
		if _, read := cascade.ReleaseSetAside(p, i, others, nil, self); !read {
			continue
		}
		var f cascade.Facts
		f.Workspaces = map[string]cascade.Workspace{}
		if _, err := d.readWorkspaces(ctx, []string{m.WorkspaceID}, &f); err != nil {
			return err
		}
		ws := f.Workspaces[m.WorkspaceID]
		if release, _ := cascade.ReleaseSetAside(p, i, others, &ws, self); !release {
			continue
		}
		wctx, cancel, err := d.writeContext(ctx, l, 30*time.Second)
		if err != nil {
			return err
		}
		err = d.deps.Workspaces.UnlockWorkspace(wctx, m.WorkspaceID)
		cancel()
		if err != nil && !errors.Is(err, tfeclient.ErrWorkspaceNotLocked) {
			return fmt.Errorf("let go of %s, held by set-aside cascade %s: %w", m.Name, p.ID, err)
		}
		d.metrics.holds.WithLabelValues("released").Inc()
		d.log.Warn("a set-aside cascade's member released", zap.String("cascade_id", p.ID), zap.String("workspace", m.Name),
			zap.String("workspace_id", m.WorkspaceID))
	}
	return nil
}
