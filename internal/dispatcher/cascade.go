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
	if c, err := d.store.cascade(ctx, id); err == nil {
		if _, err := d.store.create(ctx, c); err != nil { // a crash may have left it half made
			return err
		}
		return d.evaluate(ctx, c, d.firstLayer(c), progress) // a redelivery: carry on
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
	c := newCascade(id, ev, g, plan, d.opts.Now(), d.opts.DryRun)
	created, err := d.store.create(ctx, c)
	if err != nil {
		return err
	}
	if created {
		d.metrics.cascadesStarted.Inc()
		d.log.Info("cascade started", zap.String("cascade_id", id), zap.String("workspace_id", ev.WorkspaceID),
			zap.String("run_id", ev.RunID), zap.Int("members", len(c.Members)), zap.Bool("dry_run", c.DryRun))
		for _, cy := range c.Cycles {
			d.deps.Alerts.Raise(ctx, alerts.Alert{
				Kind: alerts.KindCycle, Severity: alerts.SeverityCritical, Organization: c.Organization,
				Workspace: c.RootName, WorkspaceID: c.RootID, RunID: c.RootRunID, CascadeID: id,
				Message: fmt.Sprintf("cascade %s from %s: run triggers form a cycle %s; its workspaces and those downstream of it are not dispatched (blocked: %s)",
					id, c.RootName, cy, strings.Join(blockedBy(c, cy), ", ")),
				Key: "cycle/" + id + "/" + cy,
			})
		}
	}
	c, err = d.store.cascade(ctx, id) // the stored one, should another replica have won
	if err != nil {
		return err
	}
	return d.evaluate(ctx, c, d.firstLayer(c), progress)
}

// newCascade turns a plan into a cascade.
func newCascade(id string, ev *events.RunEvent, g *graph.Graph, plan *graph.Plan, now time.Time, dryRun bool) *Cascade {
	c := &Cascade{
		ID: id, Organization: ev.Organization, RootID: ev.WorkspaceID, RootName: ev.WorkspaceName,
		RootRunID: ev.RunID, StartedAt: now, DryRun: dryRun, Members: map[string]*Spec{},
	}
	for i, layer := range plan.Layers[1:] {
		for _, wsID := range layer {
			c.Members[wsID] = &Spec{Name: g.Name(wsID), Layer: i + 1, Barrier: plan.Barriers[wsID], Initial: Waiting}
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
		c.Members[b.ID] = &Spec{Name: g.Name(b.ID), Layer: len(plan.Layers), Barrier: plan.Barriers[b.ID], Initial: Blocked, Reason: reason}
	}
	for wsID, sp := range c.Members {
		for _, up := range sp.Barrier {
			if u := c.Members[up]; u != nil {
				u.Downstream = append(u.Downstream, wsID)
			}
		}
	}
	return c
}

func blockedBy(c *Cascade, cycle string) []string {
	var names []string
	for _, id := range c.ordered() {
		if sp := c.Members[id]; sp.Initial == Blocked && strings.HasSuffix(sp.Reason, cycle) {
			names = append(names, sp.Name)
		}
	}
	return names
}

// firstLayer lists the members that wait on nothing but the root.
func (d *Dispatcher) firstLayer(c *Cascade) []string {
	var out []string
	for _, id := range c.ordered() {
		if c.Members[id].Layer == 1 {
			out = append(out, id)
		}
	}
	return out
}

// openMemberOf returns the ID of an open cascade that workspace id is a
// member of (other than its root), or "". The cascade owns the workspace
// while it is open: what it blocked must not run either.
func (d *Dispatcher) openMemberOf(ctx context.Context, wsID string) (string, error) {
	ids, err := d.store.active(ctx)
	if err != nil {
		return "", err
	}
	for _, id := range ids {
		c, err := d.store.cascade(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		if c.Members[wsID] != nil {
			return id, nil
		}
	}
	return "", nil
}

// onMemberEvent records what happened to a cascade's run and, when it
// finished, moves the cascade on.
func (d *Dispatcher) onMemberEvent(ctx context.Context, id string, ev *events.RunEvent, progress func()) error {
	c, err := d.store.cascade(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil // state expired, or another deployment's cascade
	}
	if err != nil {
		return err
	}
	if c.Members[ev.WorkspaceID] == nil {
		return nil
	}
	outcome := d.statusOutcome(ev.Status)
	now := d.opts.Now()
	before, after, err := d.store.mutate(ctx, c, ev.WorkspaceID, func(st *Status) bool {
		switch {
		case st.RunID == "" && st.State == Dispatching:
			// Created, but the crash or race came before its ID was recorded.
			st.RunID, st.State, st.DispatchedAt = ev.RunID, Dispatched, now
		case st.RunID != ev.RunID || st.State.final():
			return false // another run, or a late or repeated event
		case outcome == "" && now.Sub(st.SeenAt) < d.opts.ReconcileAfter/2:
			return false // nothing worth a write
		}
		st.RunStatus, st.SeenAt = ev.Status, now
		if outcome != "" {
			st.State, st.FinishedAt, st.Reason = outcome, now, "run "+ev.Status
		}
		return true
	})
	if err != nil {
		return err
	}
	if outcome != "" && id == cascadeFromMessage(ev) {
		// Cascades that share this run (C6) hear of its end too.
		followers, err := d.store.followers(ctx, ev.RunID)
		if err != nil {
			return err
		}
		for _, f := range followers {
			if err := d.onMemberEvent(ctx, f, ev, progress); err != nil {
				return err
			}
		}
	}
	if before.State.final() || !after.State.final() {
		return nil
	}
	d.log.Info("cascade run finished", zap.String("cascade_id", id), zap.String("workspace_id", ev.WorkspaceID),
		zap.String("run_id", ev.RunID), zap.String("status", ev.Status))
	return d.finalized(ctx, c, ev.WorkspaceID, progress)
}

// supersede discards a run, or cancels it once it is planning or
// applying. Between those, TFE allows neither for a moment (confirmed):
// the run is read again until one is allowed, or it has ended.
func (d *Dispatcher) supersede(ctx context.Context, run *tfe.Run, comment string) error {
	for attempt := 0; ; attempt++ {
		act := run.Actions
		var err error
		switch {
		case act != nil && act.IsDiscardable:
			err = d.deps.Runs.Discard(ctx, run.ID, tfe.RunDiscardOptions{Comment: &comment})
		case act != nil && act.IsCancelable:
			err = d.deps.Runs.Cancel(ctx, run.ID, tfe.RunCancelOptions{Comment: &comment})
		case d.statusOutcome(string(run.Status)) != "":
			if run.Status == tfe.RunApplied {
				d.log.Warn("a native run-trigger run applied before it could be superseded", zap.String("run_id", run.ID))
			}
			return nil
		default:
			err = errors.New("neither discard nor cancel is allowed in status " + string(run.Status))
		}
		if err == nil || attempt == 20 || ctx.Err() != nil {
			return err
		}
		select { // the run moves on within moments: look again
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if run, err = d.deps.Runs.Read(ctx, run.ID); err != nil {
			return err
		}
	}
}

func cascadeFromMessage(ev *events.RunEvent) string {
	id, _ := cascadeOfMessage(ev.RunMessage)
	return id
}

// finalized counts a member that just became final and evaluates what
// depends on it.
func (d *Dispatcher) finalized(ctx context.Context, c *Cascade, wsID string, progress func()) error {
	if err := d.countFinal(ctx, c); err != nil {
		return err
	}
	return d.evaluate(ctx, c, c.Members[wsID].Downstream, progress)
}

// countFinal takes a member that just became final off the open count,
// and finishes the cascade when it was the last.
func (d *Dispatcher) countFinal(ctx context.Context, c *Cascade) error {
	open, err := d.store.addOpen(ctx, c.ID, -1)
	if err != nil || open > 0 {
		return err
	}
	return d.finish(ctx, c)
}

// satisfied reports whether a barrier member in status st lets its
// downstream run.
func (d *Dispatcher) satisfied(c *Cascade, st Status) bool {
	switch st.State {
	case Applied:
		return true
	case NoChanges:
		return d.opts.NoChangesSatisfies
	case Skipped:
		return c.DryRun && st.Reason == reasonDryRun
	}
	return false
}

const reasonDryRun = "dry run: not dispatched"

// verdict is what a waiting member's barrier allows.
type verdict struct {
	ready  bool
	final  MemberState // Blocked or Skipped when it can never run
	reason string
}

// judge reads the barrier of member wsID. statuses, when given, holds
// statuses already read.
func (d *Dispatcher) judge(ctx context.Context, c *Cascade, wsID string, statuses map[string]Status) (verdict, error) {
	ready := true
	for _, up := range c.Members[wsID].Barrier {
		if up == c.RootID {
			continue // the root applied: that is what started the cascade
		}
		st, ok := statuses[up]
		if !ok {
			var err error
			if st, _, err = d.store.member(ctx, c, up); err != nil {
				return verdict{}, err
			}
		}
		name := c.Members[up].Name
		switch st.State {
		case Failed:
			return verdict{final: Blocked, reason: "upstream " + name + " " + strings.TrimPrefix(st.Reason, "run ")}, nil
		case Blocked:
			return verdict{final: Blocked, reason: "upstream " + name + " is blocked"}, nil
		case NoChanges, Skipped:
			if !d.satisfied(c, st) {
				return verdict{final: Skipped, reason: "upstream " + name + " " + map[MemberState]string{NoChanges: "had no changes", Skipped: "was skipped"}[st.State]}, nil
			}
		}
		if !d.satisfied(c, st) {
			ready = false
		}
	}
	return verdict{ready: ready}, nil
}

// evaluate looks at the given members: those that can no longer run are
// blocked or skipped (C4), and so on downstream; those whose barrier is
// met get an intent recorded and are dispatched (C3).
func (d *Dispatcher) evaluate(ctx context.Context, c *Cascade, candidates []string, progress func()) error {
	return d.evaluateWith(ctx, c, candidates, nil, progress)
}

func (d *Dispatcher) evaluateWith(ctx context.Context, c *Cascade, candidates []string, statuses map[string]Status, progress func()) error {
	var ready, blocked []string
	queue := append([]string(nil), candidates...)
	seen := map[string]bool{}
	for len(queue) > 0 {
		wsID := queue[0]
		queue = queue[1:]
		if seen[wsID] {
			continue
		}
		seen[wsID] = true
		v, err := d.judge(ctx, c, wsID, statuses)
		if err != nil {
			return err
		}
		now := d.opts.Now()
		before, after, err := d.store.mutate(ctx, c, wsID, func(st *Status) bool {
			if st.State != Waiting {
				return false
			}
			switch {
			case v.final != "":
				st.State, st.Reason, st.FinishedAt = v.final, v.reason, now
			case v.ready && !now.Before(st.RetryAt):
				st.State, st.IntentAt, st.RetryAt = Dispatching, now, time.Time{}
				st.Attempts++
			default:
				return false
			}
			return true
		})
		if err != nil {
			return err
		}
		if before.State != Waiting || after.State == Waiting {
			continue
		}
		if statuses != nil {
			statuses[wsID] = after
		}
		if after.State == Dispatching {
			ready = append(ready, wsID)
			continue
		}
		if after.State == Blocked {
			blocked = append(blocked, wsID)
		}
		if err := d.countFinal(ctx, c); err != nil {
			return err
		}
		queue = append(queue, c.Members[wsID].Downstream...)
	}
	if len(blocked) > 0 {
		d.alertBlocked(ctx, c, blocked, statuses)
	}
	if len(ready) == 0 {
		return nil
	}
	progress()
	return d.dispatchAll(ctx, c, ready, progress)
}

func (d *Dispatcher) alertBlocked(ctx context.Context, c *Cascade, ids []string, statuses map[string]Status) {
	var parts []string
	for _, id := range ids {
		st, _, err := d.store.member(ctx, c, id)
		if err != nil {
			st = statuses[id]
		}
		parts = append(parts, c.Members[id].Name+" ("+st.Reason+")")
		d.log.Info("cascade member blocked", zap.String("cascade_id", c.ID), zap.String("workspace_id", id), zap.String("reason", st.Reason))
	}
	d.deps.Alerts.Raise(ctx, alerts.Alert{
		Kind: alerts.KindCascadeBlocked, Severity: alerts.SeverityWarning, Organization: c.Organization,
		Workspace: c.RootName, WorkspaceID: c.RootID, RunID: c.RootRunID, CascadeID: c.ID,
		Message: fmt.Sprintf("cascade %s from %s: %d workspace(s) blocked and not dispatched: %s",
			c.ID, c.RootName, len(ids), strings.Join(parts, ", ")),
		Key: "blocked/" + c.ID + "/" + strings.Join(ids, ","),
	})
}

// finish marks the cascade done (once, whichever replica gets there) and
// reports how it ended.
func (d *Dispatcher) finish(ctx context.Context, c *Cascade) error {
	done, err := d.store.finish(ctx, c.ID)
	if err != nil || !done {
		return err
	}
	statuses, err := d.store.members(ctx, c)
	if err != nil {
		return err
	}
	counts := map[MemberState]int{}
	for _, st := range statuses {
		counts[st.State]++
	}
	outcome := "applied"
	switch {
	case counts[Blocked] > 0 || counts[Failed] > 0:
		outcome = "incomplete"
	case c.DryRun:
		outcome = "dry_run"
	}
	if err := d.store.markDone(ctx, c.ID, outcome); err != nil {
		return err
	}
	d.metrics.cascadesFinished.WithLabelValues(outcome).Inc()
	d.log.Info("cascade finished", zap.String("cascade_id", c.ID), zap.String("outcome", outcome),
		zap.Int("applied", counts[Applied]), zap.Int("no_changes", counts[NoChanges]), zap.Int("failed", counts[Failed]),
		zap.Int("blocked", counts[Blocked]), zap.Int("skipped", counts[Skipped]),
		zap.Duration("took", d.opts.Now().Sub(c.StartedAt)))
	return nil
}

// dispatchAll dispatches the members whose intent was just recorded, at
// most MaxInFlight at a time, then evaluates what depends on those that
// ended at once (blocked by preflight, refused, dry run).
func (d *Dispatcher) dispatchAll(ctx context.Context, c *Cascade, ids []string, progress func()) error {
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	next := make([][]string, len(ids))
	for i, wsID := range ids {
		select {
		case d.sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-d.sem }()
			next[i], errs[i] = d.dispatch(ctx, c, wsID)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	var followUp []string
	for _, n := range next {
		followUp = append(followUp, n...)
	}
	if len(followUp) == 0 {
		return nil
	}
	return d.evaluate(ctx, c, followUp, progress)
}

// dispatch creates the run of one member whose intent is recorded: after
// preflight (C8), and, on any attempt but the first, after looking for a
// run an earlier attempt may have created (C2), so that a crash never
// yields a second run.
//
// It returns the members to evaluate next when the member ended at once.
func (d *Dispatcher) dispatch(ctx context.Context, c *Cascade, wsID string) (followUp []string, err error) {
	sp := c.Members[wsID]
	log := d.log.With(zap.String("cascade_id", c.ID), zap.String("workspace_id", wsID))
	if err := d.step("intent"); err != nil {
		return nil, err
	}
	if c.DryRun {
		log.Info("dry run: would dispatch", zap.String("workspace", sp.Name), zap.Strings("after", sp.Barrier))
		return d.conclude(ctx, c, wsID, Skipped, reasonDryRun)
	}
	st, _, err := d.store.member(ctx, c, wsID)
	if err != nil {
		return nil, err
	}
	if st.State != Dispatching {
		return nil, nil // settled meanwhile, by an event or another replica
	}
	if followUp, done, err := d.preflight(ctx, c, wsID, log); err != nil || done {
		return followUp, err
	}

	mark := marker(c.ID)
	runID := st.RunID
	if runID == "" && st.Attempts > 1 { // an earlier attempt may have created it
		if runID, err = d.findRun(ctx, wsID, mark); err != nil {
			return nil, d.retryLater(ctx, c, wsID, fmt.Errorf("look for an earlier run: %w", err))
		}
		if runID != "" {
			log.Info("found the run an earlier attempt created", zap.String("run_id", runID))
		}
	}
	created := false
	if runID == "" {
		if runID, err = d.followUp(ctx, c, wsID, log); err != nil {
			return nil, d.retryLater(ctx, c, wsID, fmt.Errorf("look for a follow-up run to share: %w", err))
		}
	}
	if runID == "" {
		msg := fmt.Sprintf("%s after %s run %s", mark, c.RootName, c.RootRunID)
		start := time.Now()
		run, err := d.deps.Runs.Create(ctx, tfe.RunCreateOptions{Workspace: &tfe.Workspace{ID: wsID}, Message: &msg})
		d.metrics.createSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			return d.createFailed(ctx, c, wsID, err)
		}
		runID, created = run.ID, true
		d.metrics.dispatched.Inc()
		log.Info("run dispatched", zap.String("run_id", runID), zap.String("workspace", sp.Name))
	}
	if err := d.step("created"); err != nil {
		return nil, err
	}
	now := d.opts.Now()
	if _, _, err := d.store.mutate(ctx, c, wsID, func(st *Status) bool {
		if st.State != Dispatching {
			return false // an event got here first
		}
		st.State, st.RunID, st.DispatchedAt, st.SeenAt = Dispatched, runID, now, now
		return true
	}); err != nil {
		return nil, err
	}
	if created {
		if err := d.store.setLatest(ctx, wsID, latestRun{RunID: runID, CascadeID: c.ID}); err != nil {
			return nil, err
		}
	}
	return nil, d.step("recorded")
}

// followUp applies C6: when another cascade's run in the workspace has not
// started yet, this cascade shares it rather than queue a second follow-up
// behind the running one. It returns the shared run, or "".
func (d *Dispatcher) followUp(ctx context.Context, c *Cascade, wsID string, log *zap.Logger) (string, error) {
	latest, ok, err := d.store.latest(ctx, wsID)
	if err != nil || !ok || latest.CascadeID == c.ID {
		return "", err
	}
	// Only a run its cascade still waits on can be pending; one whose
	// member is final is not worth an API call.
	other, err := d.store.cascade(ctx, latest.CascadeID)
	if errors.Is(err, jetstream.ErrKeyNotFound) || (err == nil && other.Members[wsID] == nil) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	st, _, err := d.store.member(ctx, other, wsID)
	if err != nil || st.State.final() || st.RunID != latest.RunID {
		return "", err
	}
	run, err := d.deps.Runs.Read(ctx, latest.RunID)
	if err != nil {
		if httpStatus(err) == 404 {
			return "", nil
		}
		return "", err
	}
	if run.Status != tfe.RunPending {
		return "", nil // running or done: a new run queues behind it
	}
	if err := d.store.follow(ctx, latest.RunID, c.ID); err != nil {
		return "", err
	}
	log.Info("sharing the follow-up run another cascade queued", zap.String("run_id", latest.RunID),
		zap.String("with_cascade_id", latest.CascadeID))
	return latest.RunID, nil
}

func (d *Dispatcher) step(name string) error {
	if d.hook == nil {
		return nil
	}
	return d.hook(name)
}

// findRun looks for the run an earlier attempt of this dispatch created,
// by the cascade's marker in its message.
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

// conclude ends a member being dispatched in a final state, and returns
// the members that depend on it, to evaluate next.
func (d *Dispatcher) conclude(ctx context.Context, c *Cascade, wsID string, state MemberState, reason string) ([]string, error) {
	now := d.opts.Now()
	before, after, err := d.store.mutate(ctx, c, wsID, func(st *Status) bool {
		if st.State != Dispatching {
			return false
		}
		st.State, st.Reason, st.FinishedAt = state, reason, now
		return true
	})
	if err != nil || before.State != Dispatching || after.State != state {
		return nil, err
	}
	if state == Blocked {
		d.alertBlocked(ctx, c, []string{wsID}, nil)
	}
	return c.Members[wsID].Downstream, d.countFinal(ctx, c)
}

// retryLater puts a member back to waiting for a later attempt; the
// reconciler picks it up.
func (d *Dispatcher) retryLater(ctx context.Context, c *Cascade, wsID string, cause error) error {
	d.log.Warn("dispatch will be retried", zap.String("cascade_id", c.ID), zap.String("workspace_id", wsID), zap.Error(cause))
	retryAt := d.opts.Now().Add(d.opts.LockedRetry)
	_, _, err := d.store.mutate(ctx, c, wsID, func(st *Status) bool {
		if st.State != Dispatching {
			return false
		}
		st.State, st.RetryAt = Waiting, retryAt
		return true
	})
	return err
}

// createFailed handles a failed run creation: TFE's refusals block the
// member and alert; anything else is retried.
func (d *Dispatcher) createFailed(ctx context.Context, c *Cascade, wsID string, err error) ([]string, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	refused := httpStatus(err) == 404 || strings.Contains(err.Error(), "invalid attribute") || strings.Contains(err.Error(), "configuration version")
	if !refused {
		return nil, d.retryLater(ctx, c, wsID, err)
	}
	sp := c.Members[wsID]
	d.deps.Alerts.Raise(ctx, alerts.Alert{
		Kind: alerts.KindDispatchFailed, Severity: alerts.SeverityCritical, Organization: c.Organization,
		Workspace: sp.Name, WorkspaceID: wsID, CascadeID: c.ID,
		Message: fmt.Sprintf("cascade %s: TFE refused the run in %s: %v", c.ID, sp.Name, err),
		Key:     "dispatch-failed/" + c.ID + "/" + wsID,
	})
	return d.conclude(ctx, c, wsID, Blocked, "TFE refused the run: "+firstLine(err.Error()))
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
	if err := d.supersede(ctx, run, comment); err != nil {
		d.store.releaseSupersede(ctx, ev.RunID) // let the redelivery try again
		return fmt.Errorf("supersede run %s: %w", ev.RunID, err)
	}
	d.metrics.superseded.Inc()
	d.log.Info("native run-trigger run superseded", zap.String("cascade_id", owner), zap.String("workspace_id", ev.WorkspaceID),
		zap.String("run_id", ev.RunID))
	return nil
}
