package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	tfe "github.com/hashicorp/go-tfe"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/events"
	"github.com/tfe-orchestrator/orchestrator/internal/graph"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// Events are hints: they say where to look, never what happened. An event
// about a workspace that open cascades hold asks each of them for a look;
// an applied run nothing holds may start a cascade once TFE confirms it.

var (
	runIDPattern       = regexp.MustCompile(`^run-[A-Za-z0-9]{8,32}$`)
	workspaceIDPattern = regexp.MustCompile(`^ws-[A-Za-z0-9]{8,32}$`)
	orgPattern         = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
	statusPattern      = regexp.MustCompile(`^[a-z_]{1,40}$`)
)

// validEvent checks what is read back from the stream: NATS is a wire
// like any other.
func validEvent(ev *events.RunEvent) error {
	switch {
	case !runIDPattern.MatchString(ev.RunID):
		return fmt.Errorf("run ID %q is not a TFE run ID", ev.RunID)
	case !workspaceIDPattern.MatchString(ev.WorkspaceID):
		return fmt.Errorf("workspace ID %q is not a TFE workspace ID", ev.WorkspaceID)
	case !orgPattern.MatchString(ev.Organization):
		return fmt.Errorf("organization %q is not a TFE organization name", ev.Organization)
	case !statusPattern.MatchString(ev.Status):
		return fmt.Errorf("run status %q is not a TFE run status", ev.Status)
	case len(ev.WorkspaceName) > 256 || len(ev.RunMessage) > 64<<10:
		return errors.New("a field is too long")
	}
	return nil
}

// Handle acts on one run event. It is idempotent: the same event twice,
// events out of order, forged or replayed ones change nothing that TFE
// does not confirm. Each event costs a bounded number of KV operations,
// whatever the number of open cascades.
func (d *Dispatcher) Handle(ctx context.Context, ev *events.RunEvent) error {
	if err := validEvent(ev); err != nil {
		return permanent("invalid/"+ev.WorkspaceID, "a run event cannot be used: %v", err)
	}
	owners, _, err := d.store.owners(ctx, ev.WorkspaceID)
	if err != nil {
		return err
	}
	if len(owners) == 0 {
		d.prefetch(ev)
	}
	at := d.opts.Now().Add(d.opts.Debounce)
	for _, id := range owners {
		look, err := d.worthALook(ctx, id, ev)
		if err != nil {
			return err
		}
		if look {
			if err := d.store.markDirty(ctx, id, ev.WorkspaceID, at, false); err != nil {
				return err
			}
			d.nudge()
		}
	}
	if len(owners) > 0 {
		if d.startsCascade(ev.Status) {
			d.log.Info("a run applied in a workspace an open cascade holds: it starts no cascade of its own",
				zap.String("run_id", ev.RunID), zap.String("workspace_id", ev.WorkspaceID), zap.String("workspace", ev.WorkspaceName),
				zap.String("cascade_id", owners[0]))
		}
		return nil
	}
	if !d.startsCascade(ev.Status) {
		return nil
	}
	return d.maybeStart(ctx, ev)
}

// worthALook says whether an event about a member's workspace can change
// a decision: news of a run other than the member's own, or of its own
// run finishing or waiting for a person. The member's own run moving
// between planning and applying changes nothing; it is read anyway when
// the cascade is next looked at.
func (d *Dispatcher) worthALook(ctx context.Context, id string, ev *events.RunEvent) (bool, error) {
	st, ok, err := d.store.member(ctx, id, ev.WorkspaceID)
	if err != nil {
		return false, err
	}
	if !ok {
		return true, nil
	}
	if st.Stopping == ev.RunID && (ev.Status == "canceled" || ev.Status == "discarded") {
		// The run the cascade stopped ended as it should; a held member's
		// release waits on it.
		return st.Hold == cascade.HoldHeld, nil
	}
	if st.RunID != ev.RunID {
		return true, nil
	}
	if cascade.Final(ev.Status) {
		return true, nil
	}
	switch ev.Status {
	case "planned", "cost_estimated", "policy_checked", "policy_override", "policy_soft_failed", "post_plan_awaiting_decision", "post_plan_completed":
		return true, nil
	}
	return false, nil
}

func (d *Dispatcher) startsCascade(status string) bool {
	return status == string(tfe.RunApplied) || (d.opts.NoChangesStarts && status == string(tfe.RunPlannedAndFinished))
}

// nudge wakes the scheduler: a due entry may have moved closer.
func (d *Dispatcher) nudge() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// maybeStart starts the cascade of a run that applied, once TFE confirms
// it did, in the workspace and organization the event names, recently
// enough (C12). A root is handled once, however late a replay comes.
func (d *Dispatcher) maybeStart(ctx context.Context, ev *events.RunEvent) error {
	// A start's requests go before other looks' (the root's check, the run
	// triggers, the first look and its holds): the holds must be in place
	// before TFE's own runs downstream apply, however many cascades are
	// open.
	ctx = tfeclient.Urgent(ctx)
	if _, ours, err := d.store.runOwner(ctx, ev.RunID); err != nil || ours {
		return err // a cascade's own run: its downstream is in that cascade
	}
	id := cascade.ID(ev.RunID)
	switch _, err := d.store.plan(ctx, id); {
	case err == nil:
		return d.restart(ctx, id) // started before; a crash may have left it half made
	case errors.Is(err, errMalformed):
		return nil // reported and set aside
	case !isMissing(err):
		return err
	}
	if handled, err := d.store.rootHandled(ctx, ev.RunID); err != nil || handled {
		return err
	}
	root, recent, err := d.verifyRoot(ctx, ev)
	if err != nil || root == nil {
		return err
	}
	rctx, status := tfeclient.Record(ctx)
	g, gp, err := d.deps.Planner.Plan(rctx, graph.Workspace{ID: root.WorkspaceID, Name: root.WorkspaceName})
	if err != nil {
		return d.tfeError(err, status, "resolve the run triggers from "+root.WorkspaceName, "plan/"+root.WorkspaceID)
	}
	if len(gp.Layers) == 1 && len(gp.Blocked) == 0 {
		_, err := d.store.markRoot(ctx, ev.RunID, "nothing downstream")
		return err
	}
	p := cascade.NewPlan(g, gp, *root, ev.Organization, d.opts.Now(), d.opts.DryRun)
	if err := p.Validate(); err != nil {
		return permanent("plan/"+id, "cascade %s cannot be planned: %v", id, err)
	}
	created, err := d.store.createPlan(ctx, p)
	if err != nil || !created {
		if err == nil {
			err = d.restart(ctx, id) // another replica won: make sure it is whole
		}
		return err
	}
	if err := d.begin(ctx, p); err != nil {
		return err
	}
	d.metrics.started.Inc()
	// The first look at once, with the list the root's check read: it
	// shows the runs the root's apply queued in its targets. Should it
	// fail, the cascade is due and another look follows.
	if err := d.lookNow(ctx, id, recent); err != nil && !errors.Is(err, errLeaseHeld) && ctx.Err() == nil {
		d.log.Warn("a new cascade's first look failed; looking again later", zap.String("cascade_id", id), zap.Error(err))
	}
	d.log.Info("cascade started", zap.String("cascade_id", id), zap.String("workspace_id", root.WorkspaceID),
		zap.String("workspace", root.WorkspaceName), zap.String("run_id", root.RunID), zap.Int("members", len(p.Members)),
		zap.Bool("dry_run", p.DryRun))
	for _, cy := range p.Cycles {
		d.deps.Alerts.Raise(ctx, alerts.Alert{
			Kind: alerts.KindCycle, Severity: alerts.SeverityCritical, Organization: p.Organization,
			Workspace: root.WorkspaceName, WorkspaceID: root.WorkspaceID, RunID: root.RunID, CascadeID: id,
			RunURL: d.runURL(p.Organization, root.WorkspaceName, root.RunID),
			Message: fmt.Sprintf("run triggers form a cycle %s in %s; its workspaces and those downstream of it are not run by cascades (first seen in cascade %s from %s)",
				cy, p.Organization, id, root.WorkspaceName),
			Key: "cycle/" + p.Organization + "/" + cy,
		})
	}
	return nil
}

// begin writes what a new cascade needs besides its plan: its meta, the
// index of the workspaces it holds, and a first look, due now. Each write
// is idempotent, so restart can redo it after a crash.
func (d *Dispatcher) begin(ctx context.Context, p *cascade.Plan) error {
	if _, _, err := d.store.meta(ctx, p.ID); isMissing(err) {
		m := Meta{State: StateRunning, Organization: p.Organization, Root: p.Root.WorkspaceName, StartedAt: p.StartedAt, Members: len(p.Members)}
		if _, err := d.store.putMeta(ctx, p.ID, m, 0); err != nil && !isConflict(err) {
			return fmt.Errorf("store the meta of %s: %w", p.ID, err)
		}
	} else if err != nil {
		return err
	}
	for _, m := range p.Members {
		if err := d.store.hold(ctx, m.WorkspaceID, p.ID, false); err != nil {
			return fmt.Errorf("hold %s for %s: %w", m.Name, p.ID, err)
		}
	}
	if err := d.store.markDirty(ctx, p.ID, "", d.opts.Now(), true); err != nil {
		return err
	}
	d.nudge()
	return nil
}

// restart completes a cascade whose start was cut short; a running one
// only gets a full look.
func (d *Dispatcher) restart(ctx context.Context, id string) error {
	p, err := d.store.plan(ctx, id)
	if err != nil {
		if errors.Is(err, errMalformed) {
			return nil
		}
		return err
	}
	m, _, err := d.store.meta(ctx, id)
	switch {
	case isMissing(err):
		return d.begin(ctx, p)
	case errors.Is(err, errMalformed):
		return nil
	case err != nil:
		return err
	case m.State != StateRunning:
		return nil
	}
	return d.store.markDirty(ctx, id, "", d.opts.Now(), true)
}

// verifyRoot reads the run an applied event names and checks that it
// applied, recently, in the workspace and organization the event says. It
// returns nil (and no error) when the run is not, or not yet, a root.
//
// It reads the organization's workspace list, newest current run first:
// a run that just applied is its workspace's current run, at the top, and
// the same page shows the runs its apply queued downstream, which the new
// cascade's first look needs (recent). Otherwise it reads the run.
func (d *Dispatcher) verifyRoot(ctx context.Context, ev *events.RunEvent) (*cascade.Root, map[string]cascade.Workspace, error) {
	// The alerts of refused events are keyed by organization, not by run:
	// a flood of events about runs TFE does not have (forged, or another
	// organization's) is one alert per de-duplication window.
	alertKey := "root/" + ev.Organization
	recent := map[string]cascade.Workspace{}
	var cur *cascade.Run
	var wsName string
	if d.opts.WalkPages > 0 {
		_, err := d.recent(ctx, ev.Organization, 1, func(w cascade.Workspace, _ time.Time) bool {
			recent[w.ID] = w
			if w.ID == ev.WorkspaceID {
				cur, wsName = w.Current, w.Name
			}
			return false
		})
		if err != nil && errors.Is(err, errUnauthorized) {
			return nil, nil, err
		}
	}
	var st cascade.Run
	if cur != nil && cur.ID == ev.RunID {
		st = *cur // the workspace is in the organization, the run is its current one
	} else {
		rctx, status := tfeclient.Record(ctx)
		run, err := d.deps.Runs.ReadWithOptions(rctx, ev.RunID, &tfe.RunReadOptions{Include: []tfe.RunIncludeOpt{tfe.RunWorkspace}})
		if err != nil {
			return nil, nil, d.tfeError(err, status, fmt.Sprintf("read run %s, which an event says applied in %s/%s", ev.RunID, ev.Organization, ev.WorkspaceName), alertKey)
		}
		wsID, org := "", ""
		if run.Workspace != nil {
			wsID, wsName = run.Workspace.ID, run.Workspace.Name
			if run.Workspace.Organization != nil {
				org = run.Workspace.Organization.Name
			}
		}
		if wsID != "" && org == "" {
			ws, err := d.deps.Workspaces.ReadByIDWithOptions(rctx, wsID, nil)
			if err != nil {
				return nil, nil, d.tfeError(err, status, "read workspace "+wsID, alertKey)
			}
			wsName = ws.Name
			if ws.Organization != nil {
				org = ws.Organization.Name
			}
		}
		if wsID != ev.WorkspaceID || org != ev.Organization {
			return nil, nil, permanent("mismatch/"+alertKey, "an event says run %s applied in %s/%s (%s), but TFE has it in %s/%s (%s): no cascade starts",
				ev.RunID, ev.Organization, ev.WorkspaceName, ev.WorkspaceID, org, wsName, wsID)
		}
		st = runFacts(run)
	}
	if _, ours := cascade.OfMessage(st.Message); ours {
		return nil, nil, nil // a cascade's run: its downstream belongs to that cascade
	}
	switch {
	case st.Status == string(tfe.RunApplied):
	case st.Status == string(tfe.RunPlannedAndFinished) && d.opts.NoChangesStarts:
	default:
		d.log.Info("an event says a run finished, TFE says otherwise: no cascade starts yet", zap.String("run_id", ev.RunID),
			zap.String("workspace", wsName), zap.String("event_status", ev.Status), zap.String("status", st.Status))
		return nil, nil, nil
	}
	now := d.opts.Now()
	finished := st.StatusAt
	if finished.IsZero() {
		finished = now // later than TFE's: what follows waits longer, never less
	}
	if age := now.Sub(finished); age > d.opts.RootMaxAge {
		d.log.Warn("a run that applied too long ago starts no cascade", zap.String("run_id", ev.RunID), zap.String("workspace", wsName),
			zap.Duration("age", age.Round(time.Second)), zap.Duration("max_age", d.opts.RootMaxAge))
		_, err := d.store.markRoot(ctx, ev.RunID, "applied too long ago")
		return nil, nil, err
	}
	return &cascade.Root{WorkspaceID: ev.WorkspaceID, WorkspaceName: wsName, RunID: ev.RunID, FinishedAt: finished, Status: st.Status}, recent, nil
}

// tfeError classifies a failed TFE call made while handling an event: what
// TFE will never accept ends the event with an alert, a refused token
// waits for an operator, the rest is retried.
func (d *Dispatcher) tfeError(err error, status *tfeclient.Status, what, key string) error {
	switch tfeclient.Classify(err, status) {
	case tfeclient.Gone:
		return permanent("gone/"+key, "%s: TFE does not know it, or the token cannot read it (%v): the event is dropped", what, oneLine(err))
	case tfeclient.Refused:
		return permanent("refused/"+key, "%s: TFE refused (%v): the event is dropped", what, oneLine(err))
	case tfeclient.Unauthorized:
		return fmt.Errorf("%s: %w", what, errUnauthorized)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// oneLine is an error as one line, at most 300 bytes: go-tfe writes TFE's
// errors as "title\n\ndetail", and the detail is what says what is wrong.
func oneLine(err error) string {
	var parts []string
	for _, l := range strings.Split(err.Error(), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	s := strings.Join(parts, ": ")
	if len(s) > 300 {
		s = strings.ToValidUTF8(s[:300], "") + "…"
	}
	return s
}
