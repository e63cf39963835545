package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
)

// maybeStart starts the cascade of a run that applied (C1), unless the run
// is a stray in a workspace an open cascade is about to run (C7) or its
// workspace triggers nothing.
func (d *Dispatcher) maybeStart(ctx context.Context, ev *events.RunEvent, progress func()) error {
	id := CascadeID(ev.RunID)
	if c, _, err := d.store.get(ctx, id); err == nil {
		return d.advance(ctx, c.ID, progress) // a redelivery: carry on
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return err
	}
	if owner, err := d.openMemberOf(ctx, ev.WorkspaceID); err != nil {
		return err
	} else if owner != "" {
		d.log.Info("applied run in a workspace a cascade is to run does not start a cascade",
			zap.String("run_id", ev.RunID), zap.String("workspace_id", ev.WorkspaceID), zap.String("cascade_id", owner))
		return nil
	}
	g, plan, err := d.deps.Planner.Plan(ctx, graph.Workspace{ID: ev.WorkspaceID, Name: ev.WorkspaceName})
	if err != nil {
		return fmt.Errorf("resolve run triggers from %s: %w", ev.WorkspaceName, err)
	}
	if len(plan.Layers) == 1 && len(plan.Blocked) == 0 {
		return nil // nothing downstream
	}
	now := d.opts.Now()
	c := &Cascade{
		ID: id, Organization: ev.Organization, RootID: ev.WorkspaceID, RootName: ev.WorkspaceName,
		RootRunID: ev.RunID, StartedAt: now, DryRun: d.opts.DryRun, Members: map[string]*Member{},
	}
	c.Members[ev.WorkspaceID] = &Member{Name: ev.WorkspaceName, State: Applied, RunID: ev.RunID, RunStatus: ev.Status, FinishedAt: now}
	for i, layer := range plan.Layers[1:] {
		for _, wsID := range layer {
			c.Members[wsID] = &Member{Name: g.Name(wsID), Layer: i + 1, Barrier: plan.Barriers[wsID], State: Waiting}
		}
	}
	for _, cy := range plan.Cycles {
		c.Cycles = append(c.Cycles, cy.Names(g))
	}
	for _, b := range plan.Blocked {
		reason := "downstream of cycle " + b.Cycle.Names(g)
		if b.OnCycle {
			reason = "on cycle " + b.Cycle.Names(g)
		}
		c.Members[b.ID] = &Member{Name: g.Name(b.ID), Layer: len(plan.Layers), Barrier: plan.Barriers[b.ID], State: Blocked, Reason: reason, FinishedAt: now}
	}
	created, err := d.store.create(ctx, c)
	if err != nil {
		return err
	}
	if created {
		d.metrics.cascadesStarted.Inc()
		d.log.Info("cascade started", zap.String("cascade_id", id), zap.String("workspace_id", ev.WorkspaceID),
			zap.String("run_id", ev.RunID), zap.Int("members", len(c.Members)-1), zap.Bool("dry_run", c.DryRun))
		for _, cy := range c.Cycles {
			d.deps.Alerts.Raise(ctx, alerts.Alert{
				Kind: alerts.KindCycle, Severity: alerts.SeverityCritical, Organization: c.Organization,
				Workspace: c.RootName, WorkspaceID: c.RootID, RunID: c.RootRunID, CascadeID: id,
				Message: fmt.Sprintf("cascade %s from %s: run triggers form a cycle %s; its workspaces and those downstream of it are not dispatched%s",
					id, c.RootName, cy, blockedList(c, func(m *Member) bool { return strings.Contains(m.Reason, cy) })),
				Key: "cycle/" + id + "/" + cy,
			})
		}
	}
	return d.advance(ctx, id, progress)
}

// blockedList names the members keep selects, for an alert.
func blockedList(c *Cascade, keep func(*Member) bool) string {
	var names []string
	for _, id := range c.ordered() {
		if m := c.Members[id]; m.State == Blocked && keep(m) {
			names = append(names, m.Name)
		}
	}
	if len(names) == 0 {
		return ""
	}
	return " (blocked: " + strings.Join(names, ", ") + ")"
}

// openMemberOf returns the ID of an open cascade in which workspace id is a
// member still to run, or "".
func (d *Dispatcher) openMemberOf(ctx context.Context, wsID string) (string, error) {
	ids, err := d.store.active(ctx)
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		c, _, err := d.store.get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if m := c.Members[wsID]; m != nil && wsID != c.RootID && !c.Done && (!m.State.final() || m.State == Applied) {
			return id, nil
		}
	}
	return "", nil
}

// onMemberEvent records what happened to a cascade's run, then advances.
func (d *Dispatcher) onMemberEvent(ctx context.Context, id string, ev *events.RunEvent, progress func()) error {
	outcome := d.statusOutcome(ev.Status)
	now := d.opts.Now()
	c, err := d.store.mutate(ctx, id, func(c *Cascade) bool {
		m := c.Members[ev.WorkspaceID]
		if m == nil || ev.WorkspaceID == c.RootID {
			return false
		}
		switch {
		case m.RunID == "" && m.State == Dispatching:
			// Created, but the crash or race came before its ID was recorded.
			m.RunID, m.State, m.DispatchedAt = ev.RunID, Dispatched, now
		case m.RunID != ev.RunID:
			return false
		}
		if m.State.final() {
			return false // a late or repeated event
		}
		changed := m.RunStatus != ev.Status
		m.RunStatus = ev.Status
		if outcome != "" {
			m.State, m.FinishedAt = outcome, now
			m.Reason = "run " + ev.Status
			changed = true
		}
		if now.Sub(m.SeenAt) > d.opts.ReconcileAfter/2 {
			m.SeenAt, changed = now, true
		}
		return changed
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // state expired, or another deployment's cascade
	}
	if err != nil {
		return err
	}
	if outcome != "" {
		d.log.Info("cascade run finished", zap.String("cascade_id", id), zap.String("workspace_id", ev.WorkspaceID),
			zap.String("run_id", ev.RunID), zap.String("status", ev.Status))
	}
	if c.Done {
		return nil
	}
	return d.advance(ctx, id, progress)
}

// satisfied reports whether a barrier member lets its downstream run.
func (d *Dispatcher) satisfied(c *Cascade, m *Member) bool {
	switch m.State {
	case Applied:
		return true
	case NoChanges:
		return d.opts.NoChangesSatisfies
	case Skipped:
		return c.DryRun && m.Reason == reasonDryRun
	}
	return false
}

const reasonDryRun = "dry run: not dispatched"

// advance moves a cascade as far as its state allows: it blocks what can no
// longer run (C4), records the intent to dispatch what can (C3), takes over
// stale intents, dispatches, and repeats until nothing changes.
func (d *Dispatcher) advance(ctx context.Context, id string, progress func()) error {
	for {
		now := d.opts.Now()
		var ready []string
		var newlyBlocked []string
		var finished bool
		c, err := d.store.mutate(ctx, id, func(c *Cascade) bool {
			ready, newlyBlocked, finished = nil, nil, false
			if c.Done {
				return false
			}
			changed := false
			for _, wsID := range c.ordered() { // by layer: upstreams settle first
				m := c.Members[wsID]
				switch m.State {
				case Waiting:
					if reason, st := d.unsatisfiable(c, m); st != "" {
						m.State, m.Reason, m.FinishedAt = st, reason, now
						if st == Blocked {
							newlyBlocked = append(newlyBlocked, wsID)
						}
						changed = true
						continue
					}
					if !d.barrierMet(c, m) || now.Before(m.RetryAt) {
						continue
					}
					m.State, m.IntentAt, m.RetryAt = Dispatching, now, time.Time{}
					m.Attempts++
					ready, changed = append(ready, wsID), true
				case Dispatching:
					if now.Sub(m.IntentAt) >= d.opts.AckWait { // its dispatcher is gone: take over
						m.IntentAt = now
						m.Attempts++
						ready, changed = append(ready, wsID), true
					}
				}
			}
			if !changed && c.openCount() == 0 {
				c.Done, c.FinishedAt, finished, changed = true, now, true, true
			}
			return changed
		})
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return &unknownCascadeError{id: id}
		}
		if err != nil {
			return err
		}
		if len(newlyBlocked) > 0 {
			d.alertBlocked(ctx, c, newlyBlocked)
		}
		if finished {
			d.finished(c)
			return nil
		}
		if len(ready) == 0 {
			return nil
		}
		progress()
		if err := d.dispatchAll(ctx, c, ready); err != nil {
			return err
		}
	}
}

func (c *Cascade) openCount() int {
	n := 0
	for _, m := range c.Members {
		if !m.State.final() {
			n++
		}
	}
	return n
}

// barrierMet reports whether every upstream of m in the cascade has
// satisfied it.
func (d *Dispatcher) barrierMet(c *Cascade, m *Member) bool {
	for _, up := range m.Barrier {
		if u := c.Members[up]; u == nil || !d.satisfied(c, u) {
			return false
		}
	}
	return true
}

// unsatisfiable says why m can never run, with the state it ends in, or
// "" while it still may.
func (d *Dispatcher) unsatisfiable(c *Cascade, m *Member) (string, MemberState) {
	for _, up := range m.Barrier {
		u := c.Members[up]
		if u == nil {
			continue
		}
		switch u.State {
		case Failed:
			return "upstream " + u.Name + " " + strings.TrimPrefix(u.Reason, "run "), Blocked
		case Blocked:
			return "upstream " + u.Name + " is blocked", Blocked
		case NoChanges:
			if !d.opts.NoChangesSatisfies {
				return "upstream " + u.Name + " had no changes", Skipped
			}
		case Skipped:
			if !d.satisfied(c, u) {
				return "upstream " + u.Name + " was skipped", Skipped
			}
		}
	}
	return "", ""
}

func (d *Dispatcher) alertBlocked(ctx context.Context, c *Cascade, ids []string) {
	var parts []string
	for _, id := range ids {
		m := c.Members[id]
		parts = append(parts, m.Name+" ("+m.Reason+")")
	}
	d.deps.Alerts.Raise(ctx, alerts.Alert{
		Kind: alerts.KindCascadeBlocked, Severity: alerts.SeverityWarning, Organization: c.Organization,
		Workspace: c.RootName, WorkspaceID: c.RootID, RunID: c.RootRunID, CascadeID: c.ID,
		Message: fmt.Sprintf("cascade %s from %s: %d workspace(s) blocked and not dispatched: %s",
			c.ID, c.RootName, len(ids), strings.Join(parts, ", ")),
		Key: "blocked/" + c.ID + "/" + strings.Join(ids, ","),
	})
	for _, id := range ids {
		d.log.Info("cascade member blocked", zap.String("cascade_id", c.ID), zap.String("workspace_id", id),
			zap.String("reason", c.Members[id].Reason))
	}
}

func (d *Dispatcher) finished(c *Cascade) {
	counts := map[MemberState]int{}
	for id, m := range c.Members {
		if id != c.RootID {
			counts[m.State]++
		}
	}
	outcome := "applied"
	switch {
	case counts[Blocked] > 0 || counts[Failed] > 0:
		outcome = "incomplete"
	case c.DryRun:
		outcome = "dry_run"
	}
	d.metrics.cascadesFinished.WithLabelValues(outcome).Inc()
	d.log.Info("cascade finished", zap.String("cascade_id", c.ID), zap.String("outcome", outcome),
		zap.Int("applied", counts[Applied]), zap.Int("no_changes", counts[NoChanges]), zap.Int("failed", counts[Failed]),
		zap.Int("blocked", counts[Blocked]), zap.Int("skipped", counts[Skipped]),
		zap.Duration("took", c.FinishedAt.Sub(c.StartedAt)))
}

// dispatchAll dispatches the members whose intent was just recorded, at
// most MaxInFlight at a time.
func (d *Dispatcher) dispatchAll(ctx context.Context, c *Cascade, ids []string) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, wsID := range ids {
		select {
		case d.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-d.sem }()
			errs[i] = d.dispatch(ctx, c, wsID)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// dispatch creates the run of one member whose intent is recorded: after
// preflight (C8), and after looking for a run a previous attempt may have
// created (C2), so that a crash never yields a second run.
func (d *Dispatcher) dispatch(ctx context.Context, c *Cascade, wsID string) error {
	m := c.Members[wsID]
	log := d.log.With(zap.String("cascade_id", c.ID), zap.String("workspace_id", wsID))
	if err := d.step("intent"); err != nil {
		return err
	}
	if c.DryRun {
		log.Info("dry run: would dispatch", zap.String("workspace", m.Name), zap.Strings("after", m.Barrier))
		return d.settle(ctx, c.ID, wsID, func(m *Member, now time.Time) {
			m.State, m.Reason, m.FinishedAt = Skipped, reasonDryRun, now
		})
	}
	if blocked, retry, err := d.preflight(ctx, c, wsID, log); err != nil || blocked || retry {
		return err
	}

	mark := marker(c.ID)
	var runID string
	if c.Members[wsID].Attempts > 1 { // an earlier attempt may have created it
		var err error
		if runID, err = d.findRun(ctx, wsID, mark); err != nil {
			return d.retryLater(ctx, c.ID, wsID, fmt.Errorf("look for an earlier run: %w", err))
		}
	}
	if runID != "" {
		log.Info("found the run an earlier attempt created", zap.String("run_id", runID))
	} else {
		msg := fmt.Sprintf("%s after %s run %s", mark, c.RootName, c.RootRunID)
		start := time.Now()
		run, err := d.deps.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: wsID}, Message: &msg})
		d.metrics.createSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			return d.createFailed(ctx, c, wsID, err)
		}
		runID = run.ID
		d.metrics.dispatched.Inc()
		log.Info("run dispatched", zap.String("run_id", runID), zap.String("workspace", m.Name))
	}
	if err := d.step("created"); err != nil {
		return err
	}
	if err := d.settle(ctx, c.ID, wsID, func(m *Member, now time.Time) {
		if m.RunID == "" {
			m.RunID = runID
		}
		if m.State == Dispatching {
			m.State, m.DispatchedAt, m.SeenAt = Dispatched, now, now
		}
	}); err != nil {
		return err
	}
	return d.step("recorded")
}

func (d *Dispatcher) step(name string) error {
	if d.hook == nil {
		return nil
	}
	return d.hook(name)
}

// findRun looks for the run an earlier attempt of this dispatch created,
// by the cascade's marker in its message. Only a member's first attempt
// skips it.
func (d *Dispatcher) findRun(ctx context.Context, wsID, mark string) (string, error) {
	list, err := d.deps.Runs.List(ctx, wsID, &tfe.RunListOptions{Search: mark, ListOptions: tfe.ListOptions{PageSize: 20}})
	if err != nil {
		return "", err
	}
	for _, r := range list.Items {
		if strings.HasPrefix(r.Message, mark) {
			return r.ID, nil
		}
	}
	return "", nil
}

// settle applies change to a member still being dispatched.
func (d *Dispatcher) settle(ctx context.Context, id, wsID string, change func(*Member, time.Time)) error {
	now := d.opts.Now()
	_, err := d.store.mutate(ctx, id, func(c *Cascade) bool {
		m := c.Members[wsID]
		if m == nil || (m.State != Dispatching && m.State != Dispatched) {
			return false
		}
		change(m, now)
		return true
	})
	return err
}

// retryLater puts a member back to waiting for a later attempt.
func (d *Dispatcher) retryLater(ctx context.Context, id, wsID string, cause error) error {
	d.log.Warn("dispatch will be retried", zap.String("cascade_id", id), zap.String("workspace_id", wsID), zap.Error(cause))
	retryAt := d.opts.Now().Add(d.opts.LockedRetry)
	return d.settle(ctx, id, wsID, func(m *Member, _ time.Time) {
		if m.State == Dispatching {
			m.State, m.RetryAt = Waiting, retryAt
		}
	})
}

// createFailed handles a failed run creation: TFE's refusals block the
// member and alert; anything else is retried.
func (d *Dispatcher) createFailed(ctx context.Context, c *Cascade, wsID string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var refused bool
	switch {
	case httpStatus(err) == 404, strings.Contains(err.Error(), "invalid attribute"), strings.Contains(err.Error(), "configuration version"):
		refused = true
	}
	if !refused {
		return d.retryLater(ctx, c.ID, wsID, err)
	}
	m := c.Members[wsID]
	d.deps.Alerts.Raise(ctx, alerts.Alert{
		Kind: alerts.KindDispatchFailed, Severity: alerts.SeverityCritical, Organization: c.Organization,
		Workspace: m.Name, WorkspaceID: wsID, CascadeID: c.ID,
		Message: fmt.Sprintf("cascade %s: TFE refused the run in %s: %v", c.ID, m.Name, err),
		Key:     "dispatch-failed/" + c.ID + "/" + wsID,
	})
	return d.settle(ctx, c.ID, wsID, func(m *Member, now time.Time) {
		m.State, m.Reason, m.FinishedAt = Blocked, "TFE refused the run: "+firstLine(err.Error()), now
	})
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// maybeSupersede discards (or cancels) a run TFE's native run triggers
// queued in a workspace an open cascade is to run (C7), so the workspace
// does not end with two applied runs for one cascade.
func (d *Dispatcher) maybeSupersede(ctx context.Context, ev *events.RunEvent) error {
	owner, err := d.openMemberOf(ctx, ev.WorkspaceID)
	if err != nil || owner == "" {
		return err
	}
	run, err := d.deps.Runs.Read(ctx, ev.RunID)
	if err != nil {
		if httpStatus(err) == 404 {
			return nil
		}
		return err
	}
	if run.Source != "tfe-run-trigger" {
		return nil // a person's run: not ours to touch
	}
	if d.opts.DryRun {
		d.log.Info("dry run: would supersede a native run-trigger run", zap.String("cascade_id", owner), zap.String("run_id", ev.RunID))
		return nil
	}
	if claimed, err := d.store.claimSupersede(ctx, ev.RunID); err != nil || !claimed {
		return err
	}
	comment := fmt.Sprintf("superseded by cascade %s: the orchestrator runs this workspace once, after all its upstreams", owner)
	err = d.deps.Runs.Discard(ctx, ev.RunID, tfe.RunDiscardOptions{Comment: &comment})
	if err != nil {
		err = d.deps.Runs.Cancel(ctx, ev.RunID, tfe.RunCancelOptions{Comment: &comment})
	}
	if err != nil {
		return fmt.Errorf("supersede run %s: %w", ev.RunID, err)
	}
	d.metrics.superseded.Inc()
	d.log.Info("native run-trigger run superseded", zap.String("cascade_id", owner), zap.String("workspace_id", ev.WorkspaceID),
		zap.String("run_id", ev.RunID))
	return nil
}
