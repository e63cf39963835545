package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

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
//
// What an event is worth is the core's to say (cascade.Relevant,
// cascade.AdmitRoot); this reads what they ask for and acts.
func (d *Dispatcher) Handle(ctx context.Context, ev *events.RunEvent) error {
	if err := validEvent(ev); err != nil {
		return permanent("invalid/"+ev.WorkspaceID, "a run event cannot be used: %v", err)
	}
	owners, _, err := d.store.owners(ctx, ev.WorkspaceID, 0)
	if err != nil {
		return err
	}
	if len(owners) == 0 {
		d.prefetch(ev)
	}
	cev := coreEvent(ev)
	at := d.opts.Now().Add(d.opts.Debounce)
	for _, id := range owners {
		member, err := d.memberOf(ctx, id, ev.WorkspaceID)
		if err != nil {
			return err
		}
		if cascade.Relevant(member, cev) {
			if err := d.store.markDirty(ctx, id, ev.WorkspaceID, at, false); err != nil {
				return err
			}
			d.nudge()
		}
	}
	return d.admit(ctx, ev, cev, owners)
}

func coreEvent(ev *events.RunEvent) cascade.Event {
	return cascade.Event{RunID: ev.RunID, WorkspaceID: ev.WorkspaceID, WorkspaceName: ev.WorkspaceName, Organization: ev.Organization, Status: ev.Status}
}

// memberOf reads the status of cascade id's member in workspace ws; nil
// when there is none or it cannot be read.
func (d *Dispatcher) memberOf(ctx context.Context, id, ws string) (*cascade.Status, error) {
	st, ok, err := d.store.member(ctx, id, ws)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, nil
	}
	return &st, nil
}

// nudge wakes the scheduler: a due entry may have moved closer.
func (d *Dispatcher) nudge() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// admit starts the cascade of a run, when cascade.AdmitRoot says it is a
// root (C1, C12). It reads, in turn, the facts AdmitRoot asks for, the
// cheap ones (KV) first and TFE last, and acts on its answer. owners are
// the open cascades that claim the event's workspace.
func (d *Dispatcher) admit(ctx context.Context, ev *events.RunEvent, cev cascade.Event, owners []string) error {
	f := cascade.RootFacts{Event: cev, Claimed: len(owners) > 0}
	pol := cascade.RootPolicy{NoChangesStarts: d.opts.NoChangesStarts, MaxAge: d.opts.RootMaxAge}
	// A start's requests go before other looks' (the root's check, the run
	// triggers, the first look and its holds): the holds must be in place
	// before TFE's own runs downstream apply, however many cascades are
	// open.
	ctx = tfeclient.Urgent(ctx)
	id := cascade.ID(ev.RunID)
	var g *graph.Graph
	var recent map[string]cascade.Workspace
	for range 8 {
		now := d.opts.Now()
		a := cascade.AdmitRoot(f, pol, now)
		switch a.Kind {
		case cascade.AdmitIgnore:
			if a.Reason != "" {
				fields := []zap.Field{zap.String("run_id", ev.RunID), zap.String("workspace_id", ev.WorkspaceID), zap.String("workspace", ev.WorkspaceName),
					zap.String("event_status", ev.Status)}
				if len(owners) > 0 {
					fields = append(fields, zap.String("cascade_id", owners[0]))
				}
				if f.Run != nil {
					fields = append(fields, zap.String("status", f.Run.Status))
				}
				d.log.Info(a.Reason, fields...)
			}
			return nil
		case cascade.AdmitResume:
			return d.restart(ctx, id) // started before; a crash may have left it half made
		case cascade.AdmitRefuse:
			return permanent("mismatch/root/"+ev.Organization, "%s", a.Reason)
		case cascade.AdmitRecord:
			log := d.log.Info
			if a.Warn {
				log = d.log.Warn
			}
			log("a run starts no cascade: "+a.Reason, zap.String("run_id", ev.RunID), zap.String("workspace", a.Root.WorkspaceName),
				zap.Duration("age", now.Sub(a.Root.FinishedAt).Round(time.Second)), zap.Duration("max_age", d.opts.RootMaxAge))
			_, err := d.store.markRoot(ctx, ev.RunID, a.Reason)
			return err
		case cascade.AdmitStart:
			return d.start(ctx, g, f.Closure, a.Root, ev.Organization, recent)
		}
		var err error
		switch a.Need {
		case cascade.NeedRecorded:
			var ours bool
			_, ours, err = d.store.runOwner(ctx, ev.RunID)
			f.Recorded = &ours
		case cascade.NeedStarted:
			_, err = d.store.plan(ctx, id)
			started := err == nil
			switch {
			case errors.Is(err, errMalformed):
				return nil // reported and set aside
			case started || isMissing(err):
				f.Started, err = &started, nil
			}
		case cascade.NeedHandled:
			var handled bool
			handled, err = d.store.rootHandled(ctx, ev.RunID)
			f.Handled = &handled
		case cascade.NeedRun:
			f.Run, recent, err = d.readRoot(ctx, ev)
		case cascade.NeedClosure:
			rctx, status := tfeclient.Record(ctx)
			g, f.Closure, err = d.deps.Planner.Plan(rctx, graph.Workspace{ID: a.Root.WorkspaceID, Name: a.Root.WorkspaceName})
			if err != nil {
				err = d.tfeError(err, status, "resolve the run triggers from "+a.Root.WorkspaceName, "plan/"+a.Root.WorkspaceID)
			}
		default:
			err = fmt.Errorf("the decision core asks for %q about root %s, which the engine cannot read", a.Need, ev.RunID)
		}
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("admit root %s: the decision core keeps asking for more", ev.RunID)
}

// start starts the cascade of a root the core admitted: it stores its
// plan (the first writer wins), begins it and gives it its first look.
func (d *Dispatcher) start(ctx context.Context, g *graph.Graph, gp *graph.Plan, root cascade.Root, org string, recent map[string]cascade.Workspace) error {
	p := cascade.NewPlan(g, gp, root, org, d.opts.Now(), d.opts.DryRun)
	id := p.ID
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
	if err := d.lookNow(ctx, id, recent); err != nil && !errors.Is(err, ErrLeaseHeld) && ctx.Err() == nil {
		d.log.Warn("a new cascade's first look failed; looking again later", zap.String("cascade_id", id), zap.Error(err))
	}
	d.log.Info("cascade started", zap.String("cascade_id", id), zap.String("workspace_id", root.WorkspaceID),
		zap.String("workspace", root.WorkspaceName), zap.String("run_id", root.RunID), zap.Int("members", len(p.Members)),
		zap.Bool("dry_run", p.DryRun))
	for _, cy := range p.Cycles {
		d.deps.Alerts.Raise(ctx, alerts.Alert{
			Kind: alerts.KindCycle, Severity: alerts.SeverityCritical, Organization: p.Organization,
			Workspace: root.WorkspaceName, WorkspaceID: root.WorkspaceID, RunID: root.RunID, CascadeID: id,
			RunURL: d.opts.runURL(p.Organization, root.WorkspaceName, root.RunID),
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

// readRoot reads the run an event names, and where TFE has it, for the
// core to check (cascade.AdmitRoot).
//
// It reads the organization's workspace list, newest current run first:
// a run that just applied is its workspace's current run, at the top, and
// the same page shows the runs its apply queued downstream, which the new
// cascade's first look needs (recent). Otherwise it reads the run.
func (d *Dispatcher) readRoot(ctx context.Context, ev *events.RunEvent) (*cascade.RootRun, map[string]cascade.Workspace, error) {
	// The alerts of refused events are keyed by organization, not by run:
	// a flood of events about runs TFE does not have (forged, or another
	// organization's) is one alert per de-duplication window.
	alertKey := "root/" + ev.Organization
	recent := map[string]cascade.Workspace{}
	var cur *cascade.Run
	var wsName string
	if d.opts.WalkPages > 0 {
		_, err := d.recent(ctx, ev.Organization, 1, time.Time{}, func(w cascade.Workspace, _ time.Time) bool {
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
	if cur != nil && cur.ID == ev.RunID {
		// The workspace is in the organization, the run is its current one.
		return &cascade.RootRun{Run: *cur, WorkspaceID: ev.WorkspaceID, WorkspaceName: wsName, Organization: ev.Organization}, recent, nil
	}
	rctx, status := tfeclient.Record(ctx)
	run, err := d.deps.Runs.ReadRunWithWorkspace(rctx, ev.RunID)
	if err != nil {
		return nil, nil, d.tfeError(err, status, fmt.Sprintf("read run %s, which an event says applied in %s/%s", ev.RunID, ev.Organization, ev.WorkspaceName), alertKey)
	}
	r := &cascade.RootRun{Run: runFacts(&run), WorkspaceID: run.WorkspaceID, WorkspaceName: run.WorkspaceName, Organization: run.Organization}
	if r.WorkspaceID != "" && r.Organization == "" {
		ws, err := d.deps.Workspaces.ReadWorkspace(rctx, r.WorkspaceID)
		if err != nil {
			return nil, nil, d.tfeError(err, status, "read workspace "+r.WorkspaceID, alertKey)
		}
		r.WorkspaceName, r.Organization = ws.Name, ws.Organization
	}
	return r, recent, nil
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

// tfeSaid is what TFE answered of a failed call of tfeclient's, without
// the context tfeclient wraps it in (the call and what it names, which a
// member's status says already).
func tfeSaid(err error) error {
	if inner := errors.Unwrap(err); inner != nil {
		return inner
	}
	return err
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
