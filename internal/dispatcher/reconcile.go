package dispatcher

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/tfe-orchestrator/orchestrator/internal/events"
)

// reconcileLoop checks the open cascades every ReconcileInterval.
func (d *Dispatcher) reconcileLoop(ctx context.Context) {
	t := time.NewTicker(d.opts.ReconcileInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := d.Reconcile(ctx); err != nil && ctx.Err() == nil {
				d.log.Warn("reconcile", zap.Error(err))
			}
		}
	}
}

// Reconcile brings every open cascade up to date without waiting for
// events: a dispatched run with no news for ReconcileAfter is read through
// the API (a lost webhook delays a cascade, never stalls it); members due
// for a retry, and intents whose dispatcher is gone, are dispatched; the
// open count is corrected.
func (d *Dispatcher) Reconcile(ctx context.Context) error {
	ids, err := d.store.active(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, id := range ids {
		if err := d.reconcileCascade(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (d *Dispatcher) reconcileCascade(ctx context.Context, id string) error {
	c, err := d.store.cascade(ctx, id)
	if err != nil {
		return err
	}
	statuses, err := d.store.members(ctx, c)
	if err != nil {
		return err
	}
	now := d.opts.Now()
	var waiting, stale []string
	open := 0
	for _, wsID := range c.ordered() {
		st := statuses[wsID]
		if !st.State.final() {
			open++
		}
		switch {
		case st.State == Waiting:
			waiting = append(waiting, wsID)
		case st.State == Dispatching && now.Sub(st.IntentAt) >= d.opts.AckWait:
			stale = append(stale, wsID)
		case st.State == Dispatched && st.RunID != "" && now.Sub(st.SeenAt) >= d.opts.ReconcileAfter:
			if err := d.readRun(ctx, c, wsID, st); err != nil {
				return err
			}
		}
	}
	if err := d.store.setOpen(ctx, id, open); err != nil {
		return err
	}
	if open == 0 {
		return d.finish(ctx, c)
	}
	if err := d.takeOver(ctx, c, stale); err != nil {
		return err
	}
	return d.evaluateWith(ctx, c, waiting, statuses, func() {})
}

// readRun learns a dispatched run's status through the API.
func (d *Dispatcher) readRun(ctx context.Context, c *Cascade, wsID string, st Status) error {
	run, err := d.deps.Runs.Read(ctx, st.RunID)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d.log.Warn("reconcile: read run", zap.String("cascade_id", c.ID), zap.String("run_id", st.RunID), zap.Error(err))
		return nil
	}
	d.metrics.reconciled.Inc()
	d.log.Debug("reconciled run status", zap.String("cascade_id", c.ID), zap.String("run_id", run.ID), zap.String("status", string(run.Status)))
	ev := &events.RunEvent{
		Organization: c.Organization, WorkspaceID: wsID, WorkspaceName: c.Members[wsID].Name, RunID: run.ID,
		RunMessage: run.Message, Status: string(run.Status), UpdatedAt: d.opts.Now(),
	}
	return d.onMemberEvent(ctx, c.ID, ev, func() {})
}

// takeOver claims intents whose dispatcher is gone and dispatches them.
func (d *Dispatcher) takeOver(ctx context.Context, c *Cascade, ids []string) error {
	now := d.opts.Now()
	var claimed []string
	for _, wsID := range ids {
		_, after, err := d.store.mutate(ctx, c, wsID, func(st *Status) bool {
			if st.State != Dispatching || now.Sub(st.IntentAt) < d.opts.AckWait {
				return false
			}
			st.IntentAt = now
			st.Attempts++
			return true
		})
		if err != nil {
			return err
		}
		if after.State == Dispatching && after.IntentAt.Equal(now) {
			d.log.Info("taking over a dispatch whose dispatcher is gone", zap.String("cascade_id", c.ID), zap.String("workspace_id", wsID))
			claimed = append(claimed, wsID)
		}
	}
	if len(claimed) == 0 {
		return nil
	}
	return d.dispatchAll(ctx, c, claimed, func() {})
}
