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
// for a retry, and intents whose dispatcher is gone, are dispatched.
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
	c, _, err := d.store.get(ctx, id)
	if err != nil {
		return err
	}
	now := d.opts.Now()
	for _, wsID := range c.ordered() {
		m := c.Members[wsID]
		if m.State != Dispatched || m.RunID == "" || now.Sub(m.SeenAt) < d.opts.ReconcileAfter {
			continue
		}
		run, err := d.deps.Runs.Read(ctx, m.RunID)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("reconcile: read run", zap.String("cascade_id", id), zap.String("run_id", m.RunID), zap.Error(err))
			continue
		}
		d.metrics.reconciled.Inc()
		ev := &events.RunEvent{
			Organization: c.Organization, WorkspaceID: wsID, WorkspaceName: m.Name, RunID: run.ID,
			RunMessage: run.Message, Status: string(run.Status), UpdatedAt: now,
		}
		d.log.Debug("reconciled run status", zap.String("cascade_id", id), zap.String("run_id", run.ID), zap.String("status", ev.Status))
		if err := d.onMemberEvent(ctx, id, ev, func() {}); err != nil {
			return err
		}
	}
	return d.advance(ctx, id, func() {})
}
