package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/alerts"
	"github.com/tfe-orchestrator/orchestrator/internal/cascade"
	"github.com/tfe-orchestrator/orchestrator/internal/lease"
	"github.com/tfe-orchestrator/orchestrator/internal/tfeclient"
)

// act carries a decision's actions out: alerts at once, TFE writes at most
// MaxInFlight at a time, each bounded by the lease. A failed stop or apply
// is left to the next look, which sees where the run stands; a creation's
// outcome is stored as soon as it is known.
func (d *Dispatcher) act(ctx context.Context, l *lease.Lease, p *cascade.Plan, dec cascade.Decision, revs []uint64) error {
	var wg sync.WaitGroup
	var mu sync.Mutex // revs and st
	st := dec.Statuses
	errs := make([]error, len(dec.Actions))
	sem := make(chan struct{}, d.opts.MaxInFlight)
	for k, a := range dec.Actions {
		if a.Kind == cascade.ActAlert {
			d.raise(ctx, p, a.Notice)
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			switch a.Kind {
			case cascade.ActCreate:
				errs[k] = d.create(ctx, l, p, a, st, revs, &mu)
			case cascade.ActStop:
				errs[k] = d.stop(ctx, l, p, a)
			case cascade.ActApply:
				errs[k] = d.apply(ctx, l, p, a)
			case cascade.ActHold:
				errs[k] = d.hold(ctx, l, p, a, st, revs, &mu)
			case cascade.ActRelease:
				errs[k] = d.release(ctx, l, p, a, st, revs, &mu)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// writeContext bounds a TFE write by the lease and by timeout.
func (d *Dispatcher) writeContext(ctx context.Context, l *lease.Lease, timeout time.Duration) (context.Context, context.CancelFunc, error) {
	// A write starts only with a quarter of the lease left, and never runs
	// past it: a replica that takes the cascade over never writes beside
	// this one.
	until, err := l.Deadline(l.TTL() / 4)
	if err != nil {
		return nil, nil, err
	}
	if t := time.Now().Add(timeout); t.Before(until) {
		until = t
	}
	ctx, cancel := context.WithDeadline(ctx, until)
	return ctx, cancel, nil
}

// create creates a member's run, whose intent the look stored, and stores
// how it went. An unknown outcome (a timeout) stays an intent: a later
// look finds the run by the cascade's marker, or creates it once it can no
// longer appear.
func (d *Dispatcher) create(ctx context.Context, l *lease.Lease, p *cascade.Plan, a cascade.Action, st []cascade.Status, revs []uint64, mu *sync.Mutex) error {
	i := p.Index(a.Member)
	m := &p.Members[i]
	wctx, cancel, err := d.writeContext(ctx, l, d.opts.Policy.CreateTimeout)
	if err != nil {
		return err
	}
	defer cancel()
	rctx, status := tfeclient.Record(wctx)
	start := time.Now()
	run, err := d.deps.Runs.CreateRun(rctx, m.WorkspaceID, tfeclient.RunOptions{Message: a.Message, AutoApply: a.AutoApply, SetAutoApply: true})
	d.metrics.createSeconds.Observe(time.Since(start).Seconds())
	var created *cascade.Run
	refused := ""
	switch {
	case err == nil:
		r := runFacts(&run)
		created = &r
		d.metrics.dispatched.Inc()
		d.log.Info("cascade run created", zap.String("cascade_id", p.ID), zap.String("workspace", m.Name),
			zap.String("workspace_id", m.WorkspaceID), zap.String("run_id", run.ID), zap.Bool("auto_apply", a.AutoApply))
	case tfeclient.Classify(err, status) == tfeclient.Refused || tfeclient.Classify(err, status) == tfeclient.Gone:
		refused = oneLine(tfeSaid(err))
	case tfeclient.Classify(err, status) == tfeclient.Unauthorized:
		return fmt.Errorf("create the run in %s: %w", m.Name, errUnauthorized)
	case tfeclient.Classify(err, status) == tfeclient.NotSent:
		// TFE saw nothing: no attempt is spent, the member waits its turn.
		d.log.Debug("run creation not sent: no turn in the rate budget in time", zap.String("cascade_id", p.ID),
			zap.String("workspace", m.Name))
		if err := d.storeAfter(ctx, l, p, i, cascade.AfterNotSent(st, i), st, revs, mu); err != nil {
			return fmt.Errorf("store that the run in %s was not sent: %w", m.Name, err)
		}
		return d.store.markDirty(ctx, p.ID, m.WorkspaceID, d.opts.Now().Add(d.opts.Policy.Soon), false)
	default:
		d.log.Warn("run creation's outcome unknown; the next look finds out", zap.String("cascade_id", p.ID),
			zap.String("workspace", m.Name), zap.String("workspace_id", m.WorkspaceID), zap.Error(err))
		return nil
	}
	mu.Lock()
	defer mu.Unlock()
	s, acts := cascade.AfterCreate(p, st, i, created, refused, d.opts.Now())
	if _, err := l.Deadline(0); err != nil {
		return err
	}
	rev, err := d.store.putMember(ctx, p.ID, m.WorkspaceID, s, revs[i])
	if err != nil {
		return fmt.Errorf("store the run created in %s: %w", m.Name, err)
	}
	revs[i] = rev
	if created != nil {
		if err := d.store.recordRun(ctx, created.ID, runRecord{Cascade: p.ID, Workspace: m.WorkspaceID}); err != nil {
			return err
		}
	}
	for _, x := range acts {
		d.raise(ctx, p, x.Notice)
	}
	return nil
}

// stop discards or cancels a run with the cascade's comment.
func (d *Dispatcher) stop(ctx context.Context, l *lease.Lease, p *cascade.Plan, a cascade.Action) error {
	wctx, cancel, err := d.writeContext(ctx, l, 30*time.Second)
	if err != nil {
		return err
	}
	defer cancel()
	rctx, status := tfeclient.Record(wctx)
	verb := "cancel"
	if a.Discard {
		verb = "discard"
		err = d.deps.Runs.DiscardRun(rctx, a.RunID, a.Message)
	} else {
		err = d.deps.Runs.CancelRun(rctx, a.RunID, a.Message)
	}
	name := p.Name(a.Member)
	if err != nil {
		if tfeclient.Classify(err, status) == tfeclient.Unauthorized {
			return fmt.Errorf("%s run %s: %w", verb, a.RunID, errUnauthorized)
		}
		d.log.Info("stopping a run did not work now; looking again soon", zap.String("cascade_id", p.ID),
			zap.String("workspace", name), zap.String("run_id", a.RunID), zap.String("action", verb), zap.Error(err))
		return d.store.markDirty(ctx, p.ID, a.Member, d.opts.Now().Add(d.opts.Policy.Soon), false)
	}
	d.metrics.superseded.Inc()
	d.log.Info("run stopped", zap.String("cascade_id", p.ID), zap.String("workspace", name), zap.String("workspace_id", a.Member),
		zap.String("run_id", a.RunID), zap.String("action", verb), zap.String("why", a.Message))
	return nil
}

// apply confirms a run, as the apply policy says.
func (d *Dispatcher) apply(ctx context.Context, l *lease.Lease, p *cascade.Plan, a cascade.Action) error {
	wctx, cancel, err := d.writeContext(ctx, l, 30*time.Second)
	if err != nil {
		return err
	}
	defer cancel()
	rctx, status := tfeclient.Record(wctx)
	if err := d.deps.Runs.ApplyRun(rctx, a.RunID, a.Message); err != nil {
		if tfeclient.Classify(err, status) == tfeclient.Unauthorized {
			return fmt.Errorf("apply run %s: %w", a.RunID, errUnauthorized)
		}
		d.log.Info("applying a run did not work now; the next look sees where it stands", zap.String("cascade_id", p.ID),
			zap.String("workspace", p.Name(a.Member)), zap.String("run_id", a.RunID), zap.Error(err))
		return nil
	}
	d.log.Info("run applied by the cascade", zap.String("cascade_id", p.ID), zap.String("workspace", p.Name(a.Member)), zap.String("run_id", a.RunID))
	return nil
}

// raise sends a notice of the core as an alert, with the cascade's context
// and a link to the run.
func (d *Dispatcher) raise(ctx context.Context, p *cascade.Plan, n cascade.Notice) {
	a := alerts.Alert{
		Kind: n.Kind, Severity: n.Severity, Organization: p.Organization, Workspace: n.Name, WorkspaceID: n.WorkspaceID,
		RunID: n.RunID, CascadeID: p.ID, Message: n.Message, Key: n.Key,
	}
	if a.Workspace == "" {
		a.Workspace, a.WorkspaceID = p.Root.WorkspaceName, p.Root.WorkspaceID
	}
	if a.RunID != "" && a.Workspace != "" {
		a.RunURL = d.opts.runURL(p.Organization, a.Workspace, a.RunID)
	}
	d.deps.Alerts.Raise(ctx, a)
}
